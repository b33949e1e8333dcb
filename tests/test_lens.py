"""SpectralLens / ArgLens against the band-pass closed forms, priors, the stratified estimator,
optimal σ, the noise cutoff, inconsistency and presets."""
import math

import numpy as np
import pytest
import scipy.stats
import torch

import spectral_xai as sx

from conftest import Sinusoid, small_cnn

H = W = 6
S_NOISE = 0.8


def _sinusoid(seed=0, batch=2, same_w=False):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(1, 1, H, W, generator=g) + 0.5
    w = torch.full((1, 1, H, W), 2.0) if same_w else torch.rand(1, 1, H, W, generator=g) * 3 + 0.5
    x = torch.rand(batch, 1, H, W, generator=g) * 4 - 2
    return Sinusoid(a, w), a.double(), w.double(), x


def convex_sg2(a, w, x, sigma, s=S_NOISE):
    """E[(∂F)²] under x̃ = (1 − σ)x + σ s ε: a²w²·½(1 + cos(2w(1−σ)x)·e^{−2w²σ²s²}), (B, H, W)."""
    x = x.double()
    return (a**2 * w**2 * 0.5 * (1 + torch.cos(2 * w * (1 - sigma) * x) *
                                 torch.exp(-2 * w**2 * sigma**2 * s**2)))[:, 0]


def _closed_grid(a, w, x, sigmas):
    return torch.stack([convex_sg2(a, w, x, float(s)) for s in sigmas], dim=1)  # (B, S, H, W)


def test_spectral_lens_matches_closed_forms():
    model, a, w, x = _sinusoid()
    n = 2048
    res = sx.spectral_lens(model, x, target=0, output="logit", noise_scale=S_NOISE, n_samples=n,
                           return_per_sigma=True, batch_size=4096)
    exact = _closed_grid(a, w, x, res.sigmas)
    sd = (a**2 * w**2 / 2)[:, 0]                     # (squared gradient) <= a²w², so sd <= a²w²/2
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
    model, a, w, x = _sinusoid()
    # σ = 0 and σ = 1e-12 give the same map up to a negligible change; a flat model gives exact ties
    flat = Sinusoid(torch.zeros_like(a).float(), w.float())
    res = sx.spectral_lens(flat, x, sigmas=[0.3, 0.1, 0.5], target=0, output="logit", n_samples=2)
    assert torch.equal(res.arglens, torch.full_like(res.arglens, 0.1))
    assert torch.equal(res.sigmas, torch.tensor([0.1, 0.3, 0.5], dtype=torch.float64))


def test_priors_are_weighted_means_of_per_sigma():
    model, a, w, x = _sinusoid(1)
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
    model, a, w, x = _sinusoid(2, batch=1)
    weights = sx.prior_weights(torch.linspace(0, 1, 11, dtype=torch.float64), "beta", beta=(2, 2))
    exact = torch.einsum("bshw,s->bhw", _closed_grid(a, w, x, torch.linspace(0, 1, 11)), weights)
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
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    sx.spectral_lens(model, images, target=1, n_samples=3, batch_size=10_000)
    assert calls == [4 * (1 + 10 * 3)]               # one chunk: every (image, σ, sample) row (σ = 0 once)
    calls.clear()
    sx.spectral_lens(model, images, target=1, n_samples=5, batch_size=7)
    assert sum(calls) == 4 * (1 + 10 * 5) and max(calls) == 7
    calls.clear()
    sx.spectral_lens(model, images, target=1, n_samples=11, estimator="stratified", batch_size=10_000)
    assert calls == [4 * 11]


def test_optimal_sigma_on_a_known_cs_curve():
    model, a, w, x = _sinusoid(3, batch=2, same_w=True)
    sigmas = torch.linspace(0.05, 1.0, 20, dtype=torch.float64)
    exact = _closed_grid(a, w, x, sigmas)                        # (B, S, H, W)
    n = 1024
    for exponent in (2.5, 1.0):
        eff = (sigmas * S_NOISE) ** exponent
        cs = eff * exact.sum(dim=(2, 3))                         # (B, S)
        res = sx.optimal_sigma(model, x, sigmas, target=0, output="logit", noise_scale=S_NOISE, n_samples=n,
                               exponent=exponent, return_curves=True, batch_size=4096)
        rel = (res.curves.double() - cs).abs() / cs
        assert float(rel.max()) < 0.05
        top2 = cs.topk(2, dim=1).values
        for b in range(2):
            if (top2[b, 0] - top2[b, 1]) / top2[b, 0] > 0.1:
                assert float(res.sigma[b]) == pytest.approx(float(sigmas[cs[b].argmax()]))
        ds = sx.optimal_sigma(model, x, sigmas, target=0, output="logit", noise_scale=S_NOISE, n_samples=n,
                              exponent=exponent, level="dataset", batch_size=4096)
        norm = (cs / cs.amax(dim=1, keepdim=True)).mean(0)
        assert float(ds) == pytest.approx(float(sigmas[norm.argmax()]), abs=0.051)
    pix = sx.optimal_sigma(model, x, sigmas, target=0, output="logit", noise_scale=S_NOISE, n_samples=8,
                           level="pixel")
    assert pix.shape == (2, H, W) and set(pix.unique().tolist()) <= set(sigmas.float().tolist())


def test_sg2_opt_is_the_sg2_map_at_each_images_sigma(images):
    model = small_cnn()
    sigmas = [0.1, 0.3, 0.6]
    maps, star = sx.sg2_opt(model, images, sigmas, n_samples=4, seed=5, noise_scale=0.5)
    lens = sx.spectral_lens(model, images, sigmas, n_samples=4, seed=5, noise_scale=0.5, return_per_sigma=True)
    curves = sx.optimal_sigma(model, images, sigmas, n_samples=4, seed=5, noise_scale=0.5, return_curves=True)
    for b in range(4):
        j = sigmas.index(round(float(star[b]), 6))
        assert j == int(curves.curves[b].argmax())
        torch.testing.assert_close(maps[b], lens.per_sigma[b, j], rtol=1e-5, atol=1e-10)


def test_noise_cutoff_rule_and_curve(images):
    model = small_cnn()
    scales = [0.0, 0.25, 0.5, 1.0, 2.0, 4.0]
    res = sx.noise_cutoff(model, images, scales, n_samples=6, tau=0.05)
    assert res.scale in scales and res.entropy.shape == (6,) and res.per_image.shape == (4, 6)
    ok = res.entropy >= 0.95 * res.entropy.max()
    assert res.scale == scales[int(torch.nonzero(ok)[0])]
    with torch.no_grad():
        lp = torch.log_softmax(model.eval()(images).double(), 1)
    torch.testing.assert_close(res.per_image[:, 0], -(lp.exp() * lp).sum(1), rtol=1e-5, atol=1e-6)


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


def test_presets(images):
    kw = sx.preset("imagenet-resnet50")
    assert kw["noise_scale"] == 0.3 and kw["sigmas"].tolist() == pytest.approx([i / 10 for i in range(11)])
    assert sx.preset("imagenet-vit-b16")["noise_scale"] == 0.5 and sx.preset("food101")["noise_scale"] == 0.4
    assert sx.preset("food101", "authors-code")["exponent"] == 1.0
    res = sx.spectral_lens(small_cnn(), images, n_samples=2, **sx.preset("imagenet-resnet50", "slt2"))
    torch.testing.assert_close(res.weights, res.sigmas**2.5 / (res.sigmas**2.5).sum())
    with pytest.raises(ValueError, match="'name'"):
        sx.preset("imagenet-vgg")
