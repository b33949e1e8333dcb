"""Expected Frequency (a pure tone, noise against blur) and the explanation gap (closed form on F = Σ a sin(w x),
a smooth surrogate)."""
import math

import pytest
import torch
import torch.nn.functional as F

import spectral_xai as sx
from spectral_xai.ops import spectrum as ops

from helpers import sg_exact, sinusoid, sinusoid_grad, small_cnn


def test_expected_frequency_of_a_pure_tone_is_exact():
    for H, W, k in [(32, 32, 5), (31, 40, 7), (64, 48, 1)]:
        x = torch.arange(W, dtype=torch.float64)
        tone = torch.cos(2 * math.pi * k * x / W).expand(H, W)[None]
        K = ops.radial_bins(H, W)
        ef = sx.expected_frequency(tone, rank_normalize=False)
        assert float(ef) == pytest.approx(k / (K - 1), rel=1e-12)
        assert float(sx.expected_frequency(tone, rank_normalize=False, reduction="authors")) == \
            pytest.approx(k / (K - 1) / K, rel=1e-12)


def test_expected_frequency_orders_noise_and_blur():
    noise = torch.randn(4, 64, 64, generator=torch.Generator().manual_seed(2))
    blurred = F.avg_pool2d(noise[:, None], 5, stride=1, padding=2)[:, 0]
    for options in ({}, {"rank_normalize": False}, {"exclude_dc": True}):
        assert bool((sx.expected_frequency(noise, **options) > sx.expected_frequency(blurred, **options)).all())
    # with rank normalisation the DC ring dominates: small values (docs/methods.md §7)
    assert float(sx.expected_frequency(noise).max()) < 0.05
    gap = sx.explanation_gap(noise, blurred)
    torch.testing.assert_close(gap, sx.explanation_gap(blurred, noise))
    assert bool((gap > 0).all()) and float(sx.explanation_gap(noise, noise).abs().max()) == 0.0
    with pytest.raises(ValueError, match="'reduction'"):
        sx.expected_frequency(noise, reduction="sum")


def test_exact_gap_of_smoothgrad_closed_form():
    model, a, w, x = sinusoid(4)
    sigma = 0.3
    gap = sx.exact_gap(model, x, sigma=sigma, n_samples=4096, target=0, output="logit", batch_size=8192)
    # VG − SG = a w cos(w x)(1 − e^{−w²σ²/2})
    want = (sinusoid_grad(a.double(), w.double(), x.double()) - sg_exact(a, w, x, sigma)).pow(2).flatten(1).sum(1)
    # sd of one product of two independent means is about a²w²/sqrt(n) per pixel; 36 pixels
    tol = 5 * float((a.double() ** 2 * w.double() ** 2).sum()) / math.sqrt(4096)
    assert bool(((gap.double() - want).abs() < tol).all()), (gap, want, tol)


def test_exact_gap_against_a_smooth_surrogate(images):
    model = small_cnn()
    soft = sx.smooth_activations(model, 1.0, kind="softplus")
    near = sx.smooth_activations(model, 1e4, kind="softplus")
    g_soft = sx.exact_gap(model, images, surrogate=soft)
    g_near = sx.exact_gap(model, images, surrogate=near)
    with torch.no_grad():
        targets = model.eval()(images).argmax(1)        # the original model's classes, for both
    vg = sx.vanilla_grad(model, images, reduce_channels=False).double()
    vs = sx.vanilla_grad(soft, images, target=targets, reduce_channels=False).double()
    torch.testing.assert_close(g_soft.double(), (vg - vs).pow(2).flatten(1).sum(1), rtol=1e-5, atol=1e-12)
    assert bool((g_near < 1e-2 * g_soft).all())
    with pytest.raises(ValueError, match="'sigma'"):
        sx.exact_gap(model, images)
