"""Optimal σ on a known C_s curve (F = Σ a sin(w x), one w), SG²(σ*) as the SpectralLens map at each image's σ*,
the admissible σ (convex σ = 1 left out) and the edge flag, and the noise cutoff's rule and entropy curve."""
import pytest
import torch

import spectral_xai as sx

from helpers import convex_sg2_grid, sinusoid, small_cnn

S_NOISE = 0.8


def test_optimal_sigma_on_a_known_cs_curve():
    model, a, w, x = sinusoid(3, batch=2, same_w=True)
    sigmas = torch.linspace(0.05, 1.0, 20, dtype=torch.float64)
    exact = convex_sg2_grid(a, w, x, sigmas, S_NOISE)            # (B, S, H, W)
    n = 1024
    for exponent in (2.5, 1.0):
        eff = (sigmas * S_NOISE) ** exponent
        cs = eff * exact.sum(dim=(2, 3))                         # (B, S)
        res = sx.optimal_sigma(model, x, sigmas, target=0, output="logit", noise_scale=S_NOISE, n_samples=n,
                               exponent=exponent, return_curves=True, batch_size=4096)
        rel = (res.curves.double() - cs).abs() / cs
        assert float(rel.max()) < 0.05
        assert res.admissible.tolist() == [True] * 19 + [False]         # convex σ = 1: the same map for any x
        top2 = cs[:, :-1].topk(2, dim=1).values
        for b in range(2):
            if (top2[b, 0] - top2[b, 1]) / top2[b, 0] > 0.1:
                assert float(res.sigma[b]) == pytest.approx(float(sigmas[cs[b, :-1].argmax()]))
                # the exact curve still rises at the largest admissible σ: σ* = 0.95 is flagged
                assert bool(res.at_edge[b]) == (int(cs[b, :-1].argmax()) == 18)
        ds = sx.optimal_sigma(model, x, sigmas, target=0, output="logit", noise_scale=S_NOISE, n_samples=n,
                              exponent=exponent, level="dataset", batch_size=4096)
        norm = (cs[:, :-1] / cs[:, :-1].amax(dim=1, keepdim=True)).mean(0)
        assert float(ds) == pytest.approx(float(sigmas[norm.argmax()]), abs=0.051)
    pix = sx.optimal_sigma(model, x, sigmas, target=0, output="logit", noise_scale=S_NOISE, n_samples=8,
                           level="pixel")
    assert pix.shape == (2, 6, 6) and set(pix.unique().tolist()) <= set(sigmas.float().tolist())


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


def linear_model(channels=1, size=6, classes=3, seed=0) -> torch.nn.Module:
    """logits = W vec(x) + b: the gradient of a logit is the row W_c everywhere, so G_σ = Σ_c W_c² for every σ
    and family, and CS(σ) = (σ s)^e ||W_c²||_1 rises with σ: its maximum is beyond any grid."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(channels * size * size, classes))


@pytest.mark.parametrize("mixing", ["convex", "additive"])
def test_sigma_star_of_a_model_whose_curve_never_turns_is_flagged(mixing):
    model = linear_model()
    x = torch.rand(3, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    sigmas = [0.0, 0.25, 0.5, 0.75, 1.0]
    energy = (model[1].weight.detach().double()[1] ** 2).sum()
    new = sx.optimal_sigma(model, x, sigmas, target=1, output="logit", mixing=mixing, noise_scale=0.5, n_samples=2,
                           return_curves=True)
    old = sx.optimal_sigma(model, x, sigmas, target=1, output="logit", mixing=mixing, noise_scale=0.5, n_samples=2,
                           admissible="all", return_curves=True)
    exact = (torch.tensor(sigmas, dtype=torch.float64) * 0.5) ** 2.5 * energy
    torch.testing.assert_close(new.curves.double(), exact.expand(3, -1), rtol=1e-5, atol=0)
    assert old.sigma.tolist() == [1.0] * 3 and old.at_edge.all() and old.admissible.all()
    if mixing == "convex":   # the rule leaves σ = 1 out: σ* = 0.75, still at the (admissible) edge
        assert new.sigma.tolist() == [0.75] * 3 and new.admissible.tolist() == [True] * 4 + [False]
    else:                    # additive noise never removes the image: nothing changes
        assert new.sigma.tolist() == [1.0] * 3 and new.admissible.all()
    assert new.at_edge.tolist() == [True] * 3
    maps, star = sx.sg2_opt(model, x, sigmas, target=1, output="logit", mixing=mixing, noise_scale=0.5, n_samples=2)
    assert star.tolist() == new.sigma.tolist() and maps.shape == (3, 6, 6)
    ds = sx.optimal_sigma(model, x, sigmas, target=1, output="logit", mixing=mixing, noise_scale=0.5, n_samples=2,
                          level="dataset", return_curves=True)
    assert ds.sigma.shape == () and float(ds.sigma) == float(new.sigma[0]) and bool(ds.at_edge)
    pix = sx.optimal_sigma(model, x, sigmas, target=1, output="logit", mixing=mixing, noise_scale=0.5, n_samples=2,
                           level="pixel", return_curves=True)
    assert pix.at_edge.shape == (3, 6, 6)
    nonzero = model[1].weight.detach()[1].view(6, 6) != 0
    assert (pix.sigma[:, nonzero] == new.sigma[0]).all() and pix.at_edge.all()


def test_convex_sigma_one_is_the_same_map_for_every_image_and_is_never_chosen(images):
    model = small_cnn()
    blank = torch.zeros_like(images)
    ids, target = torch.arange(4), torch.tensor([0, 1, 2, 3])
    sigmas = [0.0, 0.5, 1.0]
    kw = dict(n_samples=3, noise_scale=0.5, image_ids=ids, return_per_sigma=True)
    g = sx.spectral_lens(model, images, sigmas, target, **kw).per_sigma
    g0 = sx.spectral_lens(model, blank, sigmas, target, **kw).per_sigma
    assert torch.equal(g[:, 2], g0[:, 2]) and not torch.allclose(g[:, 1], g0[:, 1])
    # CS with σ = 1 boosted to the top: the old rule takes it, the default never does
    boosted = g.clone()
    boosted[:, 2] *= 1e3
    old = sx.sigma_star(boosted, torch.tensor(sigmas), 0.5, admissible="all")
    new = sx.sigma_star(boosted, torch.tensor(sigmas), 0.5)
    assert old.sigma.tolist() == [1.0] * 4 and old.at_edge.all()
    assert new.sigma.tolist() == [0.5] * 4 and new.at_edge.all() and new.admissible.tolist() == [True, True, False]
    torch.testing.assert_close(new.maps, g[:, 1].double())
    assert sx.admissible_sigmas(sigmas, "damping").tolist() == [True, True, False]
    assert sx.admissible_sigmas(sigmas, "additive").tolist() == [True] * 3


def test_sigma_star_flags_only_curves_that_have_not_turned():
    # G_σ = σ^-q on a 1-pixel map: CS = σ^(e - q) · s^e, rising for q < e, falling for q > e; and a bump
    sigmas = torch.tensor([0.2, 0.4, 0.6, 0.8, 1.0], dtype=torch.float64)
    rising, falling = sigmas ** -1.0, sigmas ** -4.0
    bump = torch.tensor([1.0, 1.0, 4.0, 1.0, 1.0]) / sigmas ** 2.5            # CS ∝ (1, 1, 4, 1, 1)
    per_sigma = torch.stack([rising, falling, bump])[:, :, None, None]
    st = sx.sigma_star(per_sigma, sigmas, 1.0, 2.5)
    assert st.sigma.tolist() == [0.8, 0.2, 0.6] and st.at_edge.tolist() == [True, True, False]
    torch.testing.assert_close(st.curves, sigmas ** 2.5 * per_sigma[:, :, 0, 0])
    st = sx.sigma_star(per_sigma, sigmas, 1.0, 2.5, mixing="additive")      # σ = 1 admissible there
    assert st.sigma.tolist() == [1.0, 0.2, 0.6] and st.at_edge.tolist() == [True, True, False]


def test_admissible_rule_errors():
    with pytest.raises(ValueError, match="'admissible'"):
        sx.admissible_sigmas([0.5, 1.0], "convex", "most")
    with pytest.raises(ValueError, match="'sigmas'.*admissible"):
        sx.sigma_star(torch.ones(1, 1, 2, 2), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="'admissible'"):
        sx.optimal_sigma(small_cnn(), torch.rand(1, 3, 12, 12), [0.5], admissible=None)


def test_a_callers_mask_restricts_sigma_star_per_image():
    import numpy as np

    sigmas = torch.tensor([0.2, 0.4, 0.6, 0.8, 1.0], dtype=torch.float64)
    per_sigma = (sigmas ** -1.0).expand(2, -1)[:, :, None, None] * torch.ones(2, 5, 2, 2, dtype=torch.float64)
    mask = torch.tensor([[True, True, True, False, False], [True, False, True, True, True]])
    st = sx.sigma_star(per_sigma, sigmas, 1.0, 2.5, admissible=mask)
    assert st.sigma.tolist() == [0.6, 0.8] and st.at_edge.tolist() == [True, True]
    assert st.admissible.tolist() == [[True, True, True, False, False], [True, False, True, True, False]]
    x, y = torch.rand(2, 4, 6, 6, generator=torch.Generator().manual_seed(4)).double()
    ref = [np.corrcoef(x[j].flatten().numpy(), y[j].flatten().numpy())[0, 1] for j in range(4)]
    np.testing.assert_allclose(sx.map_correlation(x, y).numpy(), ref, rtol=1e-12)
    assert sx.map_correlation(x, torch.ones_like(x)).tolist() == [0.0] * 4
    with pytest.raises(ValueError, match="'admissible'"):
        sx.sigma_star(per_sigma, sigmas, admissible=mask[:, :4])
    with pytest.raises(ValueError, match="'admissible'"):
        sx.optimal_sigma(linear_model(), torch.rand(2, 1, 6, 6), sigmas, level="dataset", admissible=mask)
