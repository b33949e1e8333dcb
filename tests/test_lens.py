"""SpectralLens / ArgLens against the band-pass closed forms on F = Σ a sin(w x), priors, the stratified and
Neyman estimators, one pass over the (σ, sample) grid."""
import math

import pytest
import torch

import spectral_xai as sx
from spectral_xai.lens import neyman_counts

from helpers import Sinusoid, assert_unbiased, batch_log, convex_sg2_grid, sg2_sd_bound, sinusoid, small_cnn

S_NOISE = 0.8


def test_spectral_lens_matches_closed_forms():
    model, a, w, x = sinusoid()
    n = 2048
    res = sx.spectral_lens(model, x, target=0, output="logit", noise_scale=S_NOISE, n_samples=n,
                           return_per_sigma=True, batch_size=4096)
    exact = convex_sg2_grid(a, w, x, res.sigmas, S_NOISE)
    sd = sg2_sd_bound(a, w)                          # (squared gradient) <= a²w², so sd <= a²w²/2
    se = sd / math.sqrt(n)
    assert bool(((res.per_sigma.double() - exact).abs() <= 5 * se).all())
    assert res.n_samples.tolist() == [[1] + [n] * 10] * 2  # σ = 0 is noiseless: one exact sample
    sl2_exact = exact.mean(dim=1)                    # uniform prior
    assert bool(((res.sl2.double() - sl2_exact).abs() <= 5 * se / math.sqrt(11)).all())
    # ArgLens where the closed-form arg-max is unambiguous (best beats the runner-up by > 12 SE bounds)
    top2 = exact.topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 12 * se
    assert int(clear.sum()) >= 5
    want = res.sigmas[exact.argmax(dim=1)].float()
    assert torch.equal(res.arglens[clear], want[clear])


def test_arglens_ties_go_to_the_smallest_sigma():
    model, a, w, x = sinusoid()
    # σ = 0 and σ = 1e-12 give the same map up to a negligible change; a flat model gives exact ties
    flat = Sinusoid(torch.zeros_like(a), w)
    res = sx.spectral_lens(flat, x, sigmas=[0.3, 0.1, 0.5], target=0, output="logit", n_samples=2)
    assert torch.equal(res.arglens, torch.full_like(res.arglens, 0.1))
    assert torch.equal(res.sigmas, torch.tensor([0.1, 0.3, 0.5], dtype=torch.float64))


def test_priors_are_weighted_means_of_per_sigma():
    model, a, w, x = sinusoid(1)
    base = dict(target=0, output="logit", noise_scale=S_NOISE, n_samples=8, seed=3, return_per_sigma=True)
    user = torch.rand(11, dtype=torch.float64) + 0.1
    res = sx.spectral_lens(model, x, prior=user, **base)
    ps = res.per_sigma.double()
    torch.testing.assert_close(res.sl2.double(), torch.einsum("bshw,s->bhw", ps, user / user.sum()),
                               rtol=1e-6, atol=1e-9)
    s = res.sigmas
    for prior, kw, want in [("beta", {"beta": (2, 3)}, s * (1 - s) ** 2), ("power", {"power": 2.5}, s**2.5)]:
        r = sx.spectral_lens(model, x, prior=prior, **kw, **base)
        torch.testing.assert_close(r.weights, want / want.sum())
        torch.testing.assert_close(r.sl2.double(), torch.einsum("bshw,s->bhw", ps, want / want.sum()),
                                   rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="'prior'"):
        sx.spectral_lens(model, x, prior=torch.zeros(11), **base)


def test_stratified_estimator_is_unbiased_for_the_grid_mean():
    model, a, w, x = sinusoid(2, batch=1)
    weights = sx.prior_weights(torch.linspace(0, 1, 11, dtype=torch.float64), "beta", beta=(2, 2))
    exact = torch.einsum("bshw,s->bhw", convex_sg2_grid(a, w, x, torch.linspace(0, 1, 11), S_NOISE), weights)
    runs = torch.stack([
        sx.spectral_lens(model, x, target=0, output="logit", noise_scale=S_NOISE, n_samples=11, prior="beta",
                         estimator="stratified", seed=k).sl2.double()
        for k in range(200)])
    mean, se = runs.mean(0), runs.std(0) / math.sqrt(runs.shape[0])
    z = (mean - exact) / se.clamp_min(1e-12)
    assert float(z.abs().max()) < 4.5, float(z.abs().max())
    assert abs(float(z.mean())) < 4 / math.sqrt(z.numel())  # no systematic bias over pixels
    one = sx.spectral_lens(model, x, target=0, output="logit", n_samples=11, estimator="stratified")
    assert one.arglens is None and one.estimator == "stratified" and "ArgLens" in one.notes


def test_one_spectral_lens_call_is_one_pass_over_s_times_n(images):
    model = small_cnn()
    calls = batch_log(model)
    sx.spectral_lens(model, images, target=1, n_samples=3, batch_size=10_000)
    assert calls == [4 * (1 + 10 * 3)]               # one chunk: every (image, σ, sample) row (σ = 0 once)
    calls.clear()
    sx.spectral_lens(model, images, target=1, n_samples=5, batch_size=7)
    assert sum(calls) == 4 * (1 + 10 * 5) and max(calls) == 7
    calls.clear()
    sx.spectral_lens(model, images, target=1, n_samples=11, estimator="stratified", batch_size=10_000)
    assert calls == [4 * 11]


@pytest.mark.parametrize("sampling", ["iid", "lhs"])
def test_neyman_spectral_lens_is_unbiased(sampling):
    R, n = 300, 3
    model, a, w, x = sinusoid(2)
    res = sx.spectral_lens(model, x.repeat(R, 1, 1, 1), target=0, output="logit", noise_scale=S_NOISE,
                           n_samples=n, estimator="neyman", sampling=sampling, return_per_sigma=True, batch_size=1024)
    exact = convex_sg2_grid(a, w, x, res.sigmas, S_NOISE)                            # (2, S, H, W)
    assert_unbiased(res.sl2.double().view(R, *x[:, 0].shape), exact.mean(dim=1))
    # the budget of the grid: 1 exact pass at σ = 0, (n - 1) per noisy σ after one pilot each
    assert res.n_samples[:, 0].eq(1).all()
    assert res.n_samples[:, 1:].sum(1).eq((n - 1) * 10).all() and res.n_samples.ge(1).all()
    assert res.arglens is not None and res.estimator == "neyman"


def test_neyman_counts_follow_weights_times_sd():
    w = torch.tensor([0.2, 0.2, 0.2, 0.2, 0.2], dtype=torch.float64)
    sd = torch.tensor([[0.0, 8.0, 4.0, 2.0, 1.0], [5.0, 0.0, 0.0, 0.0, 0.0]])
    noisy = torch.tensor([[False, True, True, True, True], [True] * 5])
    c = neyman_counts(w, sd, noisy, torch.tensor([60, 20]), defensive=0.0)
    assert c[0].tolist() == [0, 32, 16, 8, 4]
    assert c[1].tolist() == [16, 1, 1, 1, 1]         # at least one sample per noisy σ
    c = neyman_counts(w, sd, noisy, torch.tensor([60, 20]))   # 25 % split evenly: 0.75·share + 0.25/4
    assert c[0].tolist() == [0, 28, 16, 10, 6]
    assert c[1].tolist() == [16, 1, 1, 1, 1]
