"""Cross spectra of the two halves of a sampled map (docs/methods.md §11) against independent truths: numpy's FFT,
and the closed-form SmoothGrad map of a quadratic model (the cross spectrum is unbiased for its spectrum, the
plug-in is not)."""
import math

import numpy as np
import pytest
import torch

import spectral_xai as sx
from spectral_xai.ops.spectrum import radial_power_spectrum_reference

from helpers import Quadratic, assert_unbiased


def _numpy_cross(a, b):
    """Ring means of Re(FFT2(a)·conj(FFT2(b))) with numpy: fftshift, integer radius, ring means.  (B, K)."""
    a, b = a.double().numpy(), b.double().numpy()
    B, H, W = a.shape
    c = np.fft.fftshift((np.fft.fft2(a) * np.conj(np.fft.fft2(b))).real, axes=(-2, -1))
    u, v = np.meshgrid(np.arange(H) - H // 2, np.arange(W) - W // 2, indexing="ij")
    k = np.floor(np.sqrt(u ** 2 + v ** 2)).astype(int)
    K = k.max() + 1
    return np.stack([np.bincount(k.ravel(), c[i].ravel(), K) / np.bincount(k.ravel(), minlength=K)
                     for i in range(B)])


@pytest.mark.parametrize("shape", [(3, 8, 8), (2, 7, 10), (1, 16, 5)])
def test_cross_spectrum_equals_numpy(device, shape):
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    got = sx.radial_power_spectrum(a.to(device), b.to(device))
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.cpu().double().numpy(), _numpy_cross(a, b), rtol=1e-5, atol=1e-5)
    got64 = sx.radial_power_spectrum(a.double().to(device), b.double().to(device))
    assert got64.dtype == torch.float64
    np.testing.assert_allclose(got64.cpu().numpy(), _numpy_cross(a, b), rtol=1e-11, atol=1e-11)


def test_cross_spectrum_of_a_map_with_itself_is_its_power_spectrum():
    m = torch.randn(2, 9, 12, dtype=torch.float64)
    torch.testing.assert_close(sx.radial_power_spectrum(m, m), sx.radial_power_spectrum(m), rtol=1e-12, atol=1e-12)


def _sg_replicas(R=160, n=4, sigma=1.0, size=12):
    """R independent SmoothGrad runs of n samples on F = Σ ½x² + l·x with a smooth l and a smooth image x, whose
    SmoothGrad map is exactly the gradient x + l (smooth) while each sample adds white noise σε:
    (halves A, B, maps), each (R, 1, H, W), and the closed-form map (1, H, W)."""
    model = Quadratic((1, size, size))
    u = torch.arange(size, dtype=torch.float64) / size
    with torch.no_grad():
        model.q.fill_(0.5)
        model.l.copy_(torch.cos(2 * math.pi * u).view(1, -1, 1) * torch.sin(2 * math.pi * u).view(1, 1, -1))
    x = (u.view(-1, 1) + u.view(1, -1)).view(1, 1, size, size)
    runs = [sx.smooth_grad(model, x, sigma, target=0, output="logit", n_samples=n, squared=False, seed=s,
                           return_stats=True) for s in range(R)]
    A = torch.stack([r.halves[0] for r in runs])
    B = torch.stack([r.halves[1] for r in runs])
    M = torch.stack([r.map for r in runs])
    return A, B, M, (x[:, 0] + model.l.detach())


@pytest.fixture(scope="module")
def replicas():
    return _sg_replicas()


def test_cross_spectrum_is_unbiased_and_the_plug_in_is_not(replicas):
    A, B, M, exact = replicas
    R, Bn, H, W = A.shape
    truth = radial_power_spectrum_reference(exact)                                  # (B, K)
    cross = sx.radial_power_spectrum(A.flatten(0, 1), B.flatten(0, 1)).reshape(R, Bn, -1)
    plug = sx.radial_power_spectrum(M.flatten(0, 1)).reshape(R, Bn, -1)
    assert_unbiased(cross, truth)
    z = (plug.mean(0) - truth) / (plug.std(0) / R ** 0.5)
    assert float(z.mean()) > 5          # the plug-in is too large by (noise power)/n on average


def test_cross_ef_is_closer_to_the_true_ef_than_the_plug_in(replicas):
    A, B, M, exact = replicas
    truth = sx.expected_frequency(exact, rank_normalize=False)                      # (B,)
    cross = torch.stack([sx.expected_frequency(a, b, rank_normalize=False) for a, b in zip(A, B)])
    plug = torch.stack([sx.expected_frequency(m, rank_normalize=False) for m in M])
    cross_bias = (cross.mean(0) - truth).abs()
    plug_bias = (plug.mean(0) - truth).abs()
    assert bool((plug_bias > 3 * cross_bias).all()), (plug_bias, cross_bias)
    assert bool((plug.mean(0) > truth).all())   # noise adds power at high frequencies


def test_bias_reduced_rank_ef_is_the_jackknife_and_reduces_the_bias(replicas):
    A, B, M, exact = replicas
    a, b = A[0], B[0]
    ef = lambda m: sx.expected_frequency(m, rank_normalize=True).double()           # noqa: E731
    want = 2 * ef((a + b) / 2) - (ef(a) + ef(b)) / 2
    torch.testing.assert_close(sx.expected_frequency(a, b, rank_normalize=True).double(), want, rtol=0, atol=1e-12)
    truth = ef(exact)
    br = torch.stack([sx.expected_frequency(a, b).double() for a, b in zip(A, B)])
    plug = torch.stack([ef(m) for m in M])
    assert bool(((br.mean(0) - truth).abs() < (plug.mean(0) - truth).abs()).all())


def test_explanation_gap_with_halves_uses_the_cross_ef(replicas):
    A, B, M, exact = replicas
    ref = torch.randn_like(exact)
    gap = sx.explanation_gap(ref, A[0], method_b=B[0], rank_normalize=False)
    want = (sx.expected_frequency(A[0], B[0], rank_normalize=False) - sx.expected_frequency(ref, rank_normalize=False))
    torch.testing.assert_close(gap, want.abs().double(), rtol=0, atol=1e-12)
    assert gap.dtype == torch.float64


def test_cross_spectrum_argument_errors():
    a = torch.randn(2, 6, 6)
    with pytest.raises(ValueError, match="rank_normalize"):
        sx.radial_power_spectrum(a, a, rank_normalize=True)
    with pytest.raises(ValueError, match="argument 'b'.*shape"):
        sx.radial_power_spectrum(a, torch.randn(2, 6, 5))
    with pytest.raises(TypeError, match="argument 'b'"):
        sx.expected_frequency(a, a.numpy())
    with pytest.raises(ValueError, match="argument 'method_b'"):
        sx.explanation_gap(a, a, method_b=torch.randn(1, 6, 6))
    with pytest.raises(ValueError, match="argument 'b'.*NaN"):
        sx.radial_power_spectrum(a, torch.full_like(a, float("nan")))
    assert sx.expected_frequency(a, a.double()).dtype == torch.float32
