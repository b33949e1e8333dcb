"""The spectrum op on signals (B, L) and volumes (B, D, H, W): numpy.fft.fftn + integer-radius bincount,
the pure-PyTorch reference, CUDA parity (opcheck and compile: tests/ops/test_spectrum.py); 2-D results bit-identical to the former 2-D op."""
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch

import spectral_xai as sx
from spectral_xai.ops import spectrum as ops

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "spectrum_2d_golden.pt"
SHAPES = [(16,), (17,), (2,), (8, 6, 10), (7, 9, 5), (4, 4, 4), (3, 1, 6)]


def numpy_shells(m: np.ndarray) -> np.ndarray:
    """fftn -> |.|^2 -> fftshift -> integer radius floor(||k - n//2||) -> bincount mean, any number of axes."""
    p = np.abs(np.fft.fftshift(np.fft.fftn(m))) ** 2
    axes = np.meshgrid(*[np.arange(n) - n // 2 for n in m.shape], indexing="ij")
    r = np.floor(np.sqrt(sum(a.astype(np.float64) ** 2 for a in axes))).astype(int)
    return np.bincount(r.ravel(), p.ravel()) / np.bincount(r.ravel())


@pytest.mark.parametrize("shape", SHAPES)
def test_nd_spectrum_matches_numpy_fftn(shape):
    m = torch.randn(3, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(len(shape)))
    got = ops.radial_power_spectrum(m)
    want = np.stack([numpy_shells(mm) for mm in m.numpy()])
    assert got.dtype == torch.float64 and got.shape == (3, ops.radial_bins(*shape)) == want.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-9 * want.max())
    torch.testing.assert_close(got, ops.radial_power_spectrum_reference(m), rtol=1e-9, atol=1e-9 * want.max())
    got32 = ops.radial_power_spectrum(m.float())
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.double().numpy(), want, rtol=1e-4, atol=1e-5 * want.max())


def test_shell_counts_and_bins():
    assert ops.radial_bins(17) == 9 and ops.radial_bins(16) == 9        # 1-D: K = L//2 + 1
    assert ops.radial_bins(8, 6, 10) == int(np.sqrt(16 + 9 + 25)) + 1
    # a constant signal has all its power at DC: S_0 = (L·c)², the other shells 0
    s = sx.radial_power_spectrum(torch.full((1, 9), 2.0, dtype=torch.float64), ndim=1)
    assert float(s[0, 0]) == pytest.approx(18.0**2) and float(s[0, 1:].abs().max()) < 1e-20


@pytest.mark.parametrize("L,f", [(32, 5), (33, 16), (64, 1), (17, 3)])
def test_expected_frequency_of_a_1d_tone_is_exact(L, f):
    """cos(2π f t / L) has power only at ±f, i.e. in shell f; K = L//2 + 1 shells, so EF = f / (K − 1)."""
    t = torch.arange(L, dtype=torch.float64)
    tone = torch.cos(2 * torch.pi * f * t / L)[None]
    K = L // 2 + 1
    assert float(sx.expected_frequency(tone, ndim=1, rank_normalize=False)) == pytest.approx(f / (K - 1), rel=1e-12)
    assert float(sx.expected_frequency(tone, ndim=1, rank_normalize=False, reduction="authors")) == \
        pytest.approx(f / (K - 1) / K, rel=1e-12)


def test_expected_frequency_of_a_3d_tone_is_exact():
    """A plane wave along W at frequency f lies in shell f of a (D, H, W) volume."""
    D, H, W, f = 6, 8, 10, 3
    wave = torch.cos(2 * torch.pi * f * torch.arange(W, dtype=torch.float64) / W).expand(D, H, W)[None]
    K = ops.radial_bins(D, H, W)
    assert float(sx.expected_frequency(wave, ndim=3, rank_normalize=False)) == pytest.approx(f / (K - 1), rel=1e-12)


def test_cross_spectrum_rank_and_gap_in_nd():
    g = torch.Generator().manual_seed(5)
    for ndim, shape in ((1, (40,)), (3, (6, 7, 8))):
        a = torch.randn(4, *shape, dtype=torch.float64, generator=g)
        b = torch.randn(4, *shape, dtype=torch.float64, generator=g)
        fa, fb = (np.fft.fftn(m, axes=tuple(range(1, ndim + 1))) for m in (a.numpy(), b.numpy()))
        cross = np.real(fa * np.conj(fb))
        axes = np.meshgrid(*[np.arange(n) - n // 2 for n in shape], indexing="ij")
        r = np.floor(np.sqrt(sum(x.astype(float) ** 2 for x in axes))).astype(int).ravel()
        want = np.stack([np.bincount(r, np.fft.fftshift(c).ravel()) / np.bincount(r) for c in cross])
        got = sx.radial_power_spectrum(a, b, ndim=ndim)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-9 * np.abs(want).max())
        ranks = sx.rank_normalize(a, ndim=ndim)
        for i in range(4):
            np.testing.assert_allclose(ranks[i].numpy().ravel(),
                                       scipy.stats.rankdata(a[i].numpy().ravel()) / a[i].numel(), rtol=1e-12)
        ef = sx.expected_frequency(a, ndim=ndim)
        spec = ops.radial_power_spectrum_reference(ops.rank_normalize_reference(a))
        w = torch.arange(spec.shape[1], dtype=torch.float64) / (spec.shape[1] - 1)
        torch.testing.assert_close(ef, (spec * w).sum(1) / spec.sum(1), rtol=1e-10, atol=0)
        ex = sx.expected_frequency(a, ndim=ndim, exclude_dc=True, rank_normalize=False)
        assert bool((ex > 0.3).all())             # white noise: EF ≈ 0.5 without the DC shell
        gap = sx.explanation_gap(a, b, ndim=ndim, rank_normalize=False)
        torch.testing.assert_close(gap, (sx.expected_frequency(b, ndim=ndim, rank_normalize=False)
                                         - sx.expected_frequency(a, ndim=ndim, rank_normalize=False)).abs())
        bias_reduced = sx.expected_frequency(a, b, ndim=ndim)
        assert bias_reduced.shape == (4,) and bool(torch.isfinite(bias_reduced).all())


def test_ndim_is_checked():
    with pytest.raises(ValueError, match="'maps'.*ndim=1"):
        sx.expected_frequency(torch.randn(2, 4, 4), ndim=1)
    with pytest.raises(ValueError, match="'maps'.*ndim=3"):
        sx.radial_power_spectrum(torch.randn(2, 4, 4), ndim=3)
    with pytest.raises(ValueError, match="'ndim'"):
        sx.expected_frequency(torch.randn(2, 4, 4), ndim=4)
    with pytest.raises(TypeError, match="'ndim'"):
        sx.expected_frequency(torch.randn(2, 4, 4), ndim=2.0)
    with pytest.raises(ValueError, match="'b'"):
        sx.expected_frequency(torch.randn(2, 8), torch.randn(2, 9), ndim=1)
    with pytest.raises(ValueError, match="'maps'"):
        ops.radial_power_spectrum(torch.randn(2, 2, 2, 2, 2))
    with pytest.raises(ValueError, match="'maps'"):
        ops.rank_normalize(torch.randn(5))
    with pytest.raises(ValueError, match="'maps'"):
        sx.expected_frequency(torch.randn(2, 1), ndim=1)          # K = 1: no frequency but DC


def test_2d_results_are_bit_identical_to_the_former_2d_op():
    """Spectra and EF of images recorded with the 2-D-only op before the N-D generalisation."""
    golden = torch.load(GOLDEN)
    for key, rec in golden.items():
        m = rec["maps"]
        assert torch.equal(ops.radial_power_spectrum(m), rec["spectrum"]), key
        assert torch.equal(ops.radial_power_spectrum(ops.rank_normalize(m)), rec["ranked"]), key
        assert torch.equal(sx.expected_frequency(m), rec["ef"]), key
        assert torch.equal(sx.expected_frequency(m, rank_normalize=False, exclude_dc=True, reduction="authors"),
                           rec["ef_raw_dc"]), key


def test_rank_normalize_any_trailing_shape():
    g = torch.Generator().manual_seed(2)
    for shape in [(3, 11), (2, 3, 4, 5), (2, 2, 3, 2, 2)]:
        m = torch.randint(0, 5, shape, generator=g).float()
        got = ops.rank_normalize(m)
        torch.testing.assert_close(got, ops.rank_normalize_reference(m))
        for b in range(shape[0]):
            want = scipy.stats.rankdata(m[b].numpy().ravel(), "average") / m[b].numel()
            np.testing.assert_allclose(got[b].numpy().ravel(), want, rtol=1e-6)


@pytest.mark.cuda
def test_nd_spectrum_cuda_matches_cpu():
    g = torch.Generator().manual_seed(3)
    for shape in [(64,), (63,), (8, 6, 10), (7, 9, 5), (32, 32, 32)]:
        m = torch.randn(4, *shape, generator=g)
        torch.testing.assert_close(ops.radial_power_spectrum(m.cuda()).cpu(), ops.radial_power_spectrum(m),
                                   rtol=1e-4, atol=1e-5)
        m64 = m.double()
        torch.testing.assert_close(ops.radial_power_spectrum(m64.cuda()).cpu(), ops.radial_power_spectrum(m64),
                                   rtol=1e-10, atol=1e-10)
        ties = torch.randint(0, 7, (4, *shape), generator=g).float()
        assert torch.equal(ops.rank_normalize(ties.cuda()).cpu(), ops.rank_normalize(ties))
    m = torch.randn(2, 4, 5, 6).cuda()
    torch.library.opcheck(torch.ops.spectral_xai.rank_normalize.default, (m,))
    torch.library.opcheck(torch.ops.spectral_xai.radial_power_spectrum.default, (m,))
