"""EF from G sample groups and its jackknife error (spectral_xai.ef_error) against independent truths: numpy's
FFT and ring means, an exact expectation over every sign pattern of the groups' noise, a direct numpy
delete-a-group jackknife, and the halves' formulas of expected_frequency(a, b)."""
import itertools

import numpy as np
import pytest
import torch

import spectral_xai as sx
from spectral_xai.ef_error import group_cross_spectrum


def _ring_means(power: np.ndarray) -> np.ndarray:
    """Ring means of a centred-radius power (.., H, W) numpy array: fftshift, floor radius, bincount."""
    H, W = power.shape[-2:]
    p = np.fft.fftshift(power, axes=(-2, -1))
    v, u = np.meshgrid(np.arange(H) - H // 2, np.arange(W) - W // 2, indexing="ij")
    k = np.floor(np.sqrt(u ** 2 + v ** 2) + 1e-12).astype(int).ravel()
    K = k.max() + 1
    flat = p.reshape(-1, H * W)
    out = np.stack([np.bincount(k, weights=row, minlength=K) for row in flat]) / np.bincount(k, minlength=K)
    return out.reshape(*power.shape[:-2], K)


def _np_ef(spec: np.ndarray) -> np.ndarray:
    K = spec.shape[-1]
    return (spec * np.arange(K) / (K - 1)).sum(-1) / spec.sum(-1)


def _np_pairs(groups: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """All-pairs cross spectrum Σ_{g≠h} c_g c_h Re(F_g F_h*) / Σ_{g≠h} c_g c_h, ring means (K,) of one image."""
    F = np.fft.fft2(groups)
    num = sum(counts[g] * counts[h] * (F[g] * F[h].conj()).real
              for g in range(len(F)) for h in range(len(F)) if g != h)
    den = sum(counts[g] * counts[h] for g in range(len(F)) for h in range(len(F)) if g != h)
    return _ring_means(num / den)


def _groups(B=3, G=4, H=9, W=8, seed=0, counts=None):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(B, 1, H, W, generator=g, dtype=torch.float64)
    groups = base + 0.5 * torch.randn(B, G, H, W, generator=g, dtype=torch.float64)
    c = torch.full((B, G), 3, dtype=torch.int64) if counts is None else torch.as_tensor(counts).expand(B, G)
    return groups, c.contiguous()


def test_group_cross_spectrum_equals_numpy_all_pairs():
    groups, _ = _groups(B=2, G=5)
    counts = torch.tensor([[3, 3, 2, 2, 1], [1, 1, 1, 1, 1]])
    out = group_cross_spectrum(groups, counts).numpy()
    for b in range(2):
        np.testing.assert_allclose(out[b], _np_pairs(groups[b].numpy(), counts[b].numpy()), rtol=1e-9, atol=1e-9)


def test_one_sample_per_group_is_the_u_statistic_of_docs_section_11():
    """(n·S(m̂) − mean_i S(h_i)) / (n − 1), with S the plug-in ring means."""
    h, _ = _groups(B=2, G=6)
    n = h.shape[1]
    ustat = (n * sx.radial_power_spectrum(h.mean(1)) - sx.radial_power_spectrum(h.flatten(0, 1)).view(2, n, -1)
             .mean(1)) / (n - 1)
    torch.testing.assert_close(group_cross_spectrum(h, torch.ones(2, n, dtype=torch.int64)), ustat)


def test_expectation_is_the_power_spectrum_of_the_true_map_exactly():
    """Each group's noise is ±d_g (independent signs): averaging over all 2^G sign patterns gives the exact
    expectation, which must be |FFT(m)|² ring means, while the plug-in's is larger by the noise power."""
    G, H, W = 4, 6, 7
    gen = torch.Generator().manual_seed(1)
    m = torch.randn(1, H, W, generator=gen, dtype=torch.float64)
    d = torch.randn(G, H, W, generator=gen, dtype=torch.float64)
    counts = torch.tensor([[2, 2, 1, 3]])
    cross, plug = [], []
    for signs in itertools.product((-1.0, 1.0), repeat=G):
        groups = (m + torch.tensor(signs, dtype=torch.float64).view(G, 1, 1) * d).unsqueeze(0)
        cross.append(group_cross_spectrum(groups, counts))
        mhat = (counts.double().view(1, G, 1, 1) * groups).sum(1) / counts.sum()
        plug.append(sx.radial_power_spectrum(mhat))
    truth = sx.radial_power_spectrum(m)
    torch.testing.assert_close(torch.stack(cross).mean(0), truth, rtol=1e-10, atol=1e-10)
    assert float((torch.stack(plug).mean(0) - truth).sum()) > 1.0


@pytest.mark.parametrize("ranked", [False, True])
def test_two_groups_are_the_halves_formulas(ranked):
    groups, counts = _groups(G=2)
    e = sx.ef_with_error(groups, counts, rank_normalize=ranked)
    a, b = groups[:, 0], groups[:, 1]
    torch.testing.assert_close(e.ef, sx.expected_frequency(a, b, rank_normalize=ranked))
    half_split = (sx.expected_frequency(a, rank_normalize=ranked) - sx.expected_frequency(b, rank_normalize=ranked))
    torch.testing.assert_close(e.stderr, half_split.abs() / 2)
    torch.testing.assert_close(e.rel_error, e.stderr / e.ef.abs())
    assert e.groups.tolist() == [2, 2, 2]


def test_unranked_jackknife_equals_numpy():
    groups, counts = _groups(B=2, G=5, seed=3)
    e = sx.ef_with_error(groups, counts, rank_normalize=False)
    for b in range(2):
        g, c = groups[b].numpy(), counts[b].numpy()
        G = len(g)
        theta = _np_ef(_np_pairs(g, c))
        loo = np.array([_np_ef(_np_pairs(np.delete(g, j, 0), np.delete(c, j))) for j in range(G)])
        se = np.sqrt((G - 1) / G * ((loo - loo.mean()) ** 2).sum())
        np.testing.assert_allclose(float(e.ef[b]), theta, rtol=1e-9)
        np.testing.assert_allclose(float(e.stderr[b]), se, rtol=1e-8)


def test_ranked_bias_correction_and_jackknife_equal_a_direct_computation():
    groups, counts = _groups(B=2, G=4, seed=4, counts=[[3, 3, 2, 2]])
    e = sx.ef_with_error(groups, counts, rank_normalize=True, exclude_dc=True)
    c = counts.double().view(2, 4, 1, 1)
    n = counts.sum(1).double().view(2, 1, 1)
    full = (c * groups).sum(1) / n
    theta = sx.expected_frequency(full, exclude_dc=True)
    loo = torch.stack([sx.expected_frequency(((c * groups).sum(1) - c[:, j] * groups[:, j]) / (n - c[:, j]),
                                             exclude_dc=True) for j in range(4)], 1)
    torch.testing.assert_close(e.ef, 4 * theta - 3 * loo.mean(1))
    torch.testing.assert_close(e.stderr, (0.75 * (loo - loo.mean(1, keepdim=True)).square().sum(1)).sqrt())


def test_empty_groups_are_left_out():
    groups, counts = _groups(B=1, G=6, seed=5)
    counts[0, 4:] = 0
    for ranked in (False, True):
        a = sx.ef_with_error(groups, counts, rank_normalize=ranked)
        b = sx.ef_with_error(groups[:, :4], counts[:, :4], rank_normalize=ranked)
        torch.testing.assert_close(a.ef, b.ef)
        torch.testing.assert_close(a.stderr, b.stderr)
        assert a.groups.tolist() == [4]
    one = sx.ef_with_error(groups, torch.tensor([[5, 0, 0, 0, 0, 0]]))
    assert bool(torch.isnan(one.ef).all()) and bool(torch.isnan(one.stderr).all())


@pytest.mark.parametrize("spatial", [(16,), (4, 5, 6)])
def test_signals_and_volumes(spatial):
    g = torch.Generator().manual_seed(6)
    groups = torch.randn(2, 2, *spatial, generator=g, dtype=torch.float64)
    counts = torch.full((2, 2), 4)
    ndim = len(spatial)
    for ranked in (False, True):
        e = sx.ef_with_error(groups, counts, ndim=ndim, rank_normalize=ranked)
        torch.testing.assert_close(e.ef, sx.expected_frequency(groups[:, 0], groups[:, 1], ndim=ndim,
                                                               rank_normalize=ranked))


@pytest.mark.parametrize("kwargs,arg,exc", [
    (dict(groups=torch.zeros(2, 1, 4, 4), counts=torch.ones(2, 1, dtype=torch.int64)), "groups", ValueError),
    (dict(groups=torch.zeros(2, 2, 4), counts=torch.ones(2, 2, dtype=torch.int64)), "groups", ValueError),
    (dict(groups=[[0.0]], counts=torch.ones(2, 2, dtype=torch.int64)), "groups", TypeError),
    (dict(groups=torch.zeros(2, 2, 4, 4), counts=torch.ones(2, 2)), "counts", TypeError),
    (dict(groups=torch.zeros(2, 2, 4, 4), counts=torch.ones(2, 3, dtype=torch.int64)), "counts", ValueError),
    (dict(groups=torch.full((2, 2, 4, 4), float("nan")), counts=torch.ones(2, 2, dtype=torch.int64)), "groups",
     ValueError),
    (dict(groups=torch.zeros(2, 2, 4, 4), counts=torch.ones(2, 2, dtype=torch.int64), reduction="sum"),
     "reduction", ValueError),
])
def test_refusals_name_their_argument(kwargs, arg, exc):
    with pytest.raises(exc, match=f"'{arg}'"):
        sx.ef_with_error(**kwargs)
