"""The engine sees the band-pass filters of ECCV24 §3: closed forms on F(x) = sum a sin(w x)."""
import math

import torch

import spectral_xai as sx

from conftest import Sinusoid

H = W = 6
N = 4096


def _setup(seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(1, 1, H, W, generator=g) + 0.5
    w = torch.rand(1, 1, H, W, generator=g) * 3 + 0.5
    x = torch.rand(2, 1, H, W, generator=g) * 4 - 2
    return Sinusoid(a, w), a, w, x


def _assert_within(est, exact, bound_sd, n, k=5.0):
    """|est - exact| <= k standard errors per pixel (sd bounded from above)."""
    se = bound_sd / math.sqrt(n)
    assert bool(((est - exact).abs() <= k * se).all()), float(((est - exact).abs() / se).max())
    # and no bias on average over pixels
    assert abs(float((est - exact).mean() / se.mean())) <= k / math.sqrt(est.numel()) * 3


def test_vanilla_grad_exact():
    model, a, w, x = _setup()
    vg = sx.vanilla_grad(model, x, target=0, output="logit")
    torch.testing.assert_close(vg, (a * w * torch.cos(w * x))[:, 0], rtol=1e-5, atol=1e-6)
    vg2 = sx.vanilla_grad(model, x, target=0, output="logit", squared=True)
    torch.testing.assert_close(vg2, ((a * w * torch.cos(w * x)) ** 2)[:, 0], rtol=1e-5, atol=1e-6)


def test_additive_smoothgrad_squared():
    model, a, w, x = _setup()
    s = 0.4
    est = sx.smooth_grad(model, x, s, target=0, output="logit", n_samples=N, batch_size=1024)
    exact = (a**2 * w**2 * 0.5 * (1 + torch.cos(2 * w * x) * torch.exp(-2 * w**2 * s**2)))[:, 0]
    _assert_within(est.double(), exact.double(), (a**2 * w**2 / 2)[:, 0].double().expand_as(exact), N)


def test_additive_smoothgrad():
    model, a, w, x = _setup(1)
    s = 0.3
    est = sx.smooth_grad(model, x, s, target=0, output="logit", n_samples=N, squared=False, batch_size=1024)
    exact = (a * w * torch.cos(w * x) * torch.exp(-(w**2) * s**2 / 2))[:, 0]
    _assert_within(est.double(), exact.double(), (a * w)[:, 0].double().expand_as(exact), N)


def test_convex_smoothgrad_squared():
    model, a, w, x = _setup(2)
    s, sigma = 0.8, 0.35
    est = sx.smooth_grad(model, x, sigma, target=0, output="logit", n_samples=N, mixing="convex",
                         noise_scale=s, batch_size=1024)
    exact = (a**2 * w**2 * 0.5 * (1 + torch.cos(2 * w * (1 - sigma) * x)
                                  * torch.exp(-2 * w**2 * sigma**2 * s**2)))[:, 0]
    _assert_within(est.double(), exact.double(), (a**2 * w**2 / 2)[:, 0].double().expand_as(exact), N)


def test_relative_scale_is_std_times_range():
    model, a, w, x = _setup(3)
    rel = sx.smooth_grad(model, x, 0.1, target=0, output="logit", n_samples=64, relative=True)
    span = x.flatten(1).amax(1) - x.flatten(1).amin(1)
    for b in range(2):
        absolute = sx.smooth_grad(model, x[b:b + 1], 0.1, target=0, output="logit", n_samples=64,
                                  noise_scale=float(span[b]), image_ids=[b])
        torch.testing.assert_close(rel[b:b + 1], absolute, rtol=1e-6, atol=1e-7)
