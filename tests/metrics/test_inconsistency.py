"""inconsistency / scale_rank_correlation (docs/methods.md §6): numpy references, degenerate maps, argument checks."""
import numpy as np
import pytest
import scipy.stats
import torch

import spectral_xai as sx


def _area(m: np.ndarray, d: int) -> np.ndarray:
    """(S, H, W) with H, W divisible by d -> (S, H/d * W/d) block means."""
    S, H, W = m.shape
    return m.reshape(S, H // d, d, W // d, d).mean(axis=(2, 4)).reshape(S, -1)


def _reference(maps: np.ndarray, d: int, measure: str) -> float:
    v = _area(maps, d)
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    if measure == "cosine":
        return 1 - float(np.mean([v[0] @ v[t] for t in range(1, len(v))]))
    vals = []
    for t in range(1, len(v)):
        mu0, mut, sd0, sdt = v[0].mean(), v[t].mean(), v[0].std(), v[t].std()
        lum = (2 * mu0 * mut + 1e-4) / (mu0**2 + mut**2 + 1e-4)
        con = (2 * sd0 * sdt + 9e-4) / (sd0**2 + sdt**2 + 9e-4)
        vals.append((1 - lum * con) / 2)
    return float(np.mean(vals))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("measure", ["cosine", "dssim"])
def test_inconsistency_matches_numpy_and_keeps_the_maps_dtype(dtype, measure):
    maps = torch.randn(3, 4, 20, 15, generator=torch.Generator().manual_seed(0), dtype=torch.float64).to(dtype)
    got = sx.inconsistency(maps, measure=measure, downsample=5)
    assert got.dtype == dtype and got.shape == (3,)
    want = [_reference(maps[b].double().numpy(), 5, measure) for b in range(3)]
    np.testing.assert_allclose(got.double().numpy(), want, rtol=1e-6 if dtype == torch.float32 else 1e-12)
    torch.testing.assert_close(got, torch.tensor(want, dtype=dtype))   # no "Double did not match Float"


def test_all_zero_maps_are_perfectly_consistent():
    zero = torch.zeros(2, 3, 10, 10)
    for measure in ("cosine", "dssim"):
        torch.testing.assert_close(sx.inconsistency(zero, measure=measure), torch.zeros(2))
    one_zero = torch.rand(1, 2, 10, 10, generator=torch.Generator().manual_seed(1))
    one_zero[:, 1] = 0
    torch.testing.assert_close(sx.inconsistency(one_zero), torch.ones(1))   # nothing shared with a zero map
    rho = sx.scale_rank_correlation(torch.cat([zero[:1], one_zero[:, :1] + 1], dim=1))   # 3 constant + 1 map
    want = torch.ones(4, 4)
    want[3, :3] = want[:3, 3] = 0
    torch.testing.assert_close(rho[0], want)


def test_nan_maps_and_bad_downsample_raise():
    maps = torch.rand(1, 2, 12, 12)
    bad = maps.clone()
    bad[0, 1, 3, 3] = float("nan")
    for fn in (sx.inconsistency, sx.scale_rank_correlation):
        with pytest.raises(ValueError, match="'per_sigma_maps'.*NaN"):
            fn(bad)
    with pytest.raises(ValueError, match="'downsample'"):
        sx.inconsistency(torch.rand(1, 2, 4, 4))              # 4 x 4 maps, factor 5: nothing left
    with pytest.raises(ValueError, match="'downsample'"):
        sx.inconsistency(maps, downsample=-3)
    for value in (2.5, True, "2"):
        with pytest.raises(TypeError, match="'downsample'"):
            sx.inconsistency(maps, downsample=value)
    with pytest.raises(TypeError, match="'per_sigma_maps'"):
        sx.inconsistency(torch.ones(1, 2, 10, 10, dtype=torch.int64))
    assert float(sx.inconsistency(torch.rand(1, 2, 10, 4), downsample=4)) >= 0   # 2 x 1 pixels is enough


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scale_rank_correlation_matches_scipy_and_dtype(dtype):
    maps = torch.rand(2, 3, 8, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64).to(dtype)
    rho = sx.scale_rank_correlation(maps)
    assert rho.dtype == dtype
    for b in range(2):
        want = scipy.stats.spearmanr(maps[b].double().flatten(1).T.numpy()).statistic
        np.testing.assert_allclose(rho[b].double().numpy(), want, rtol=1e-6, atol=1e-6)


def test_inconsistency_bounds_and_spearman():
    g = torch.Generator().manual_seed(0)
    m = torch.rand(2, 1, 20, 20, generator=g)
    same = m.repeat(1, 4, 1, 1)
    for measure in ("cosine", "dssim"):
        torch.testing.assert_close(sx.inconsistency(same, measure=measure), torch.zeros(2))   # float32 maps
    left = torch.zeros(1, 1, 20, 20)
    left[..., :10] = 1
    disjoint = torch.cat([left, left.flip(-1)], dim=1)
    torch.testing.assert_close(sx.inconsistency(disjoint), torch.ones(1))
    maps = torch.rand(1, 3, 9, 9, generator=g)
    rho = sx.scale_rank_correlation(maps.double())
    want = scipy.stats.spearmanr(maps[0].flatten(1).T.numpy()).statistic
    np.testing.assert_allclose(rho[0].numpy(), want, rtol=1e-10, atol=1e-12)
    ties = torch.tensor([[[[1.0, 1.0, 2.0, 3.0]], [[4.0, 3.0, 3.0, 1.0]]]])
    want = scipy.stats.spearmanr(ties[0, 0, 0].numpy(), ties[0, 1, 0].numpy()).statistic
    assert float(sx.scale_rank_correlation(ties)[0, 0, 1]) == pytest.approx(want)
    with pytest.raises(ValueError, match="'measure'"):
        sx.inconsistency(same, measure="l2")
