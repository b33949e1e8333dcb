"""Vanilla, Smooth and Integrated Gradients against closed forms: the band-pass filters of ECCV24 §3 on
F(x) = Σ a sin(w x), and IG's completeness on a quadratic."""
import torch

import spectral_xai as sx

from helpers import Quadratic, assert_within, sg2_exact, sg2_sd_bound, sg_exact, sinusoid, sinusoid_grad

N = 4096


def test_vanilla_grad_exact():
    model, a, w, x = sinusoid()
    vg = sx.vanilla_grad(model, x, target=0, output="logit")
    torch.testing.assert_close(vg, sinusoid_grad(a, w, x), rtol=1e-5, atol=1e-6)
    vg2 = sx.vanilla_grad(model, x, target=0, output="logit", squared=True)
    torch.testing.assert_close(vg2, sinusoid_grad(a, w, x) ** 2, rtol=1e-5, atol=1e-6)


def test_additive_smoothgrad_squared():
    model, a, w, x = sinusoid()
    s = 0.4
    est = sx.smooth_grad(model, x, s, target=0, output="logit", n_samples=N, batch_size=1024)
    assert_within(est, sg2_exact(a, w, x, s), sg2_sd_bound(a, w), N)


def test_additive_smoothgrad():
    model, a, w, x = sinusoid(1)
    s = 0.3
    est = sx.smooth_grad(model, x, s, target=0, output="logit", n_samples=N, squared=False, batch_size=1024)
    assert_within(est, sg_exact(a, w, x, s), (a * w)[:, 0], N)             # |∂F| <= a w: sd <= a w


def test_convex_smoothgrad_squared():
    model, a, w, x = sinusoid(2)
    s, sigma = 0.8, 0.35
    est = sx.smooth_grad(model, x, sigma, target=0, output="logit", n_samples=N, mixing="convex",
                         noise_scale=s, batch_size=1024)
    assert_within(est, sg2_exact(a, w, x, sigma * s, keep=1 - sigma), sg2_sd_bound(a, w), N)


def test_relative_scale_is_std_times_range():
    model, a, w, x = sinusoid(3)
    rel = sx.smooth_grad(model, x, 0.1, target=0, output="logit", n_samples=64, relative=True)
    span = x.flatten(1).amax(1) - x.flatten(1).amin(1)
    for b in range(2):
        absolute = sx.smooth_grad(model, x[b:b + 1], 0.1, target=0, output="logit", n_samples=64,
                                  noise_scale=float(span[b]), image_ids=[b])
        torch.testing.assert_close(rel[b:b + 1], absolute, rtol=1e-6, atol=1e-7)


def test_xig_completeness_on_quadratic():
    x = torch.rand(3, 2, 5, 4, dtype=torch.float64)
    base = torch.rand(1, 2, 5, 4, dtype=torch.float64)
    model = Quadratic((2, 5, 4))
    xig = sx.integrated_grad(model, x, target=0, output="logit", baseline=base, n_steps=3)
    assert xig.dtype == torch.float64
    with torch.no_grad():
        want = model(x)[:, 0] - model(base.expand_as(x))[:, 0]
    torch.testing.assert_close(xig.sum((1, 2)), want, rtol=1e-10, atol=1e-10)
    # IG (no input factor) = gradient at the path midpoint for a quadratic
    ig = sx.integrated_grad(model, x, target=0, output="logit", baseline=base, n_steps=2, times_input=False,
                            reduce_channels=False)
    mid = (x + base) / 2
    torch.testing.assert_close(ig, 2 * model.q.detach() * mid + model.l.detach(), rtol=1e-10, atol=1e-10)
    ig2 = sx.integrated_grad(model, x, target=0, output="logit", baseline=base, n_steps=4, times_input=False,
                             squared=True, reduce_channels=False)
    # int_0^1 (g_b + a (g_x - g_b))^2 da = (g_b^2 + g_b g_x + g_x^2) / 3
    gx = 2 * model.q.detach() * x + model.l.detach()
    gb = 2 * model.q.detach() * base + model.l.detach()
    torch.testing.assert_close(ig2, (gb * gb + gb * gx + gx * gx) / 3, rtol=1e-10, atol=1e-10)
