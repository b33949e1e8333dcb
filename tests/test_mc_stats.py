"""Monte Carlo statistics (return_stats) and the target-error stop against independent truths: numpy's
sample variance of the recorded per-sample statistics, the closed form of E[g²] for a sinusoid model,
and calibration over many seeds."""
import numpy as np
import pytest
import torch

import spectral_xai as sx
from spectral_xai.engine import estimate

from helpers import Quadratic, Sinusoid


def _sinusoid(shape=(1, 1, 4, 4), seed=3):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(shape[1:], generator=g, dtype=torch.float64) + 0.5
    w = torch.rand(shape[1:], generator=g, dtype=torch.float64) * 2 + 0.5
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    return Sinusoid(a, w), x, a, w


def _sg2_truth(x, a, w, sigma, convex=False):
    """E[g²] of F = Σ a sin(w x̃) (output='logit'), x̃ = c + σε with c = x or (1 − σ)x:
    a²w²/2 (1 + cos(2wc) e^{-2w²σ²})."""
    c = (1 - sigma) * x if convex else x
    return (a * w) ** 2 / 2 * (1 + torch.cos(2 * w * c) * torch.exp(-2 * (w * sigma) ** 2))


def _record(model, x, sigma, n, k, reduce, mixing="additive"):
    """The per-sample reduced statistic h_i (n, B, S, C', H, W): n one-sample calls with sample_offset = i."""
    out = []
    for i in range(n):
        est = estimate(model, x, sigmas=sigma, mixing=mixing, powers=(k,), target=0, reduce_channels=reduce,
                       n_samples=1, sample_offset=i, seed=5)
        out.append(est.mean2 if k == 2 else est.mean1)
    return torch.stack(out).numpy()


@pytest.mark.parametrize("squared,reduce", [(True, True), (False, True), (True, False)])
def test_stderr_and_halves_equal_numpy_statistics_of_the_samples(squared, reduce):
    n, k = 7, 2 if squared else 1
    model, x = Quadratic((3, 4, 5)), torch.randn(2, 3, 4, 5, dtype=torch.float64)
    st = sx.smooth_grad(model, x, 0.4, target=0, n_samples=n, squared=squared, reduce_channels=reduce, seed=5,
                        batch_size=3, return_stats=True)
    h = _record(model, x, 0.4, n, k, reduce)
    h = h[:, :, 0, 0] if reduce else h[:, :, 0]                             # (n, B, [C,] H, W)
    np.testing.assert_allclose(st.map.numpy(), h.mean(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(st.stderr.numpy() ** 2, h.var(0, ddof=1) / n, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(st.halves[0].numpy(), h[0::2].mean(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(st.halves[1].numpy(), h[1::2].mean(0), rtol=1e-10, atol=1e-12)
    assert st.half_counts.tolist() == [[4, 3], [4, 3]] and st.n_samples.tolist() == [n, n]
    se, m = st.stderr.flatten(1), st.map.flatten(1)
    np.testing.assert_allclose(st.rel_error.numpy(), (se.norm(dim=1) / m.norm(dim=1)).numpy(), rtol=1e-10)


def test_even_n_map_is_the_mean_of_the_halves():
    model, x = Quadratic((3, 4, 5)), torch.randn(1, 3, 4, 5, dtype=torch.float64)
    st = sx.smooth_grad(model, x, 0.4, target=0, n_samples=10, return_stats=True)
    torch.testing.assert_close(st.map, (st.halves[0] + st.halves[1]) / 2, rtol=1e-12, atol=1e-12)


def test_lens_stderr_is_the_weighted_sum_of_independent_sigma_variances():
    n, sig = 6, [0.0, 0.3, 0.7]
    model, x = Quadratic((2, 3, 3)), torch.randn(2, 2, 3, 3, dtype=torch.float64)
    res = sx.spectral_lens(model, x, sig, target=0, n_samples=n, prior="power", seed=5, return_stats=True,
                           return_per_sigma=True)
    h = _record(model, x, sig, n, 2, True, mixing="convex")[:, :, :, 0]   # (n, B, S, H, W)
    var_s = h.var(0, ddof=1) / n
    var_s[:, 0] = 0.0                                                       # σ = 0: one exact sample
    wt = res.weights.numpy()
    np.testing.assert_allclose(res.per_sigma_stderr.numpy() ** 2, var_s, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(res.stderr.numpy() ** 2, np.einsum("bshw,s->bhw", var_s, wt**2), rtol=1e-9,
                               atol=1e-14)
    a_s = h[0::2].mean(0)
    a_s[:, 0] = h[0, :, 0]
    np.testing.assert_allclose(res.halves[0].numpy(), np.einsum("bshw,s->bhw", a_s, wt), rtol=1e-10)
    np.testing.assert_allclose(res.per_sigma_rel_error[:, 0].numpy(), 0.0)


def test_stats_do_not_change_the_maps():
    model, x = Quadratic((3, 6, 6)), torch.randn(2, 3, 6, 6)
    for kw in ({}, {"squared": False}, {"reduce_channels": False}):
        plain = sx.smooth_grad(model, x, 0.3, target=0, n_samples=9, batch_size=4, **kw)
        assert torch.equal(plain, sx.smooth_grad(model, x, 0.3, target=0, n_samples=9, batch_size=4,
                                                 return_stats=True, **kw).map)
    a = sx.spectral_lens(model, x, target=0, n_samples=5, return_per_sigma=True, batch_size=7)
    b = sx.spectral_lens(model, x, target=0, n_samples=5, return_per_sigma=True, batch_size=7, return_stats=True)
    for name in ("sl2", "arglens", "per_sigma", "n_samples"):
        assert torch.equal(getattr(a, name), getattr(b, name))


def test_reported_variance_is_calibrated_over_seeds():
    """200 seeds, n = 16: mean reported se² / observed variance of the map in [0.85, 1.15], and the ±2 se
    interval covers the closed-form E[g²] 90-97 % of the time."""
    model, x, a, w = _sinusoid()
    truth = _sg2_truth(x, a, w, 0.5)[:, 0]
    maps, var = [], []
    for seed in range(200):
        st = sx.smooth_grad(model, x, 0.5, target=0, output="logit", n_samples=16, seed=seed, return_stats=True)
        maps.append(st.map)
        var.append(st.stderr ** 2)
    maps, var = torch.stack(maps), torch.stack(var)
    ratio = float(var.mean(0).sum() / maps.var(0, unbiased=True).sum())
    coverage = float(((maps - truth).abs() <= 2 * var.sqrt()).double().mean())
    assert 0.85 <= ratio <= 1.15, ratio
    assert 0.90 <= coverage <= 0.97, coverage


def test_target_error_meets_its_target_and_is_a_prefix_of_the_long_run():
    model, x, a, w = _sinusoid((2, 1, 4, 4))
    truth = _sg2_truth(x, a, w, 0.5)[:, 0]
    st = sx.smooth_grad(model, x, 0.5, target=0, output="logit", target_error=0.03, max_samples=4096,
                        check_every=8, return_stats=True)
    n = st.n_samples
    assert bool((st.rel_error <= 0.03).all()) and bool((n < 4096).all()) and bool((n % 8 == 0).all())
    real = (st.map - truth).flatten(1).norm(dim=1) / truth.flatten(1).norm(dim=1)
    assert bool((real <= 3 * 0.03).all()), real
    for b in range(2):
        fixed = sx.smooth_grad(model, x[b:b + 1], 0.5, target=0, output="logit", n_samples=int(n[b]),
                               image_ids=[b])
        assert torch.equal(fixed[0], st.map[b])


def test_lens_target_error_meets_its_target_against_the_closed_form():
    model, x, a, w = _sinusoid((1, 1, 4, 4))
    sig = [0.0, 0.25, 0.5, 0.75]
    res = sx.spectral_lens(model, x, sig, target=0, output="logit", target_error=0.03, max_samples=4096,
                           return_stats=True)
    truth = sum(_sg2_truth(x, a, w, s, convex=True)[:, 0] for s in sig) / len(sig)
    assert float(res.rel_error[0]) <= 0.03 and int(res.n_samples[0, 1]) < 4096
    assert res.n_samples[0, 0] == 1 and bool((res.n_samples[0, 1:] == res.n_samples[0, 1]).all())
    assert float((res.sl2 - truth).norm() / truth.norm()) <= 3 * 0.03


@pytest.mark.parametrize("call,arg", [
    (lambda m, x: sx.integrated_grad(m, x, target=0, return_stats=True), "return_stats"),
    (lambda m, x: sx.smooth_grad(m, x, 0.3, target=0, n_samples=1, return_stats=True), "n_samples"),
    (lambda m, x: sx.smooth_grad(m, x, 0.3, target=0, tol=0.1, target_error=0.1), "target_error"),
    (lambda m, x: sx.smooth_grad(m, x, 0.3, target=0, sampling="lhs", target_error=0.1), "sampling"),
    (lambda m, x: sx.smooth_grad(m, x, 0.3, target=0, target_error=0.0), "target_error"),
    (lambda m, x: sx.smooth_grad(m, x, 0.3, target=0, target_error=0.1, min_samples=1), "min_samples"),
    (lambda m, x: sx.smooth_grad(m, x, 0.3, target=0, return_stats=True, return_n_samples=True),
     "return_n_samples"),
    (lambda m, x: sx.spectral_lens(m, x, target=0, estimator="stratified", return_stats=True), "return_stats"),
])
def test_refusals_name_their_argument(call, arg):
    model, x = Quadratic((1, 3, 3)), torch.randn(1, 1, 3, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=f"'{arg}'"):
        call(model, x)
