"""Low-precision maps are ranked and transformed in float32; finite float32 maps whose power overflows float32 get
their EF from the float64 spectrum; an all-zero map has EF 0 like a constant map."""
import numpy as np
import pytest
import torch

import spectral_xai as sx


def _numpy_ef(m: np.ndarray, ranked: bool) -> float:
    """EF of one (H, W) map by numpy's FFT + integer-radius ring means (the recipe of docs/methods.md §7)."""
    from scipy.stats import rankdata

    r = rankdata(m, method="average").reshape(m.shape) / m.size if ranked else m.astype(np.float64)
    p = np.abs(np.fft.fftshift(np.fft.fft2(r))) ** 2
    H, W = m.shape
    u, v = np.meshgrid(np.arange(H) - H // 2, np.arange(W) - W // 2, indexing="ij")
    k = np.floor(np.sqrt(u**2 + v**2)).astype(int)
    s = np.bincount(k.ravel(), p.ravel()) / np.bincount(k.ravel())
    return float((s * np.arange(s.size) / (s.size - 1)).sum() / s.sum())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_maps_ranked_in_float32(dtype):
    maps = torch.rand(2, 96, 96, generator=torch.Generator().manual_seed(0)).to(dtype)
    got = sx.expected_frequency(maps)
    want = [_numpy_ef(m.float().numpy(), ranked=True) for m in maps]
    np.testing.assert_allclose(got.double().numpy(), want, rtol=1e-5)     # was off by up to 0.5 % in float16
    from scipy.stats import rankdata

    ranks = sx.rank_normalize(maps)                  # in float16 ranks / N would be rounded to 11 bits
    assert ranks.dtype == torch.float32
    want = np.stack([rankdata(m.float().numpy().ravel(), method="average").reshape(96, 96) / m.numel() for m in maps])
    np.testing.assert_allclose(ranks.numpy(), want, rtol=1e-6)


def test_float32_maps_near_the_top_of_the_range():
    maps = torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(1)) * 3e38
    got = sx.expected_frequency(maps, rank_normalize=False)
    want = [_numpy_ef(m.double().numpy(), ranked=False) for m in maps]
    np.testing.assert_allclose(got.double().numpy(), want, rtol=1e-6)
    with pytest.raises(ValueError, match=r"argument 'maps'.*overflows torch.float32.*float64"):
        sx.radial_power_spectrum(maps)
    assert bool(torch.isfinite(sx.radial_power_spectrum(maps.double())).all())
    with pytest.raises(ValueError, match="NaN or Inf"):
        sx.expected_frequency(torch.full((1, 8, 8), float("inf")), rank_normalize=False)


def test_all_zero_map_has_ef_zero_like_a_constant_map():
    zero, const = torch.zeros(1, 12, 12), torch.full((1, 12, 12), 3.0)
    for ranked in (True, False):
        assert sx.expected_frequency(zero, rank_normalize=ranked).item() == 0.0
        assert sx.expected_frequency(const, rank_normalize=ranked).item() == 0.0
