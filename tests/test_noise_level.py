"""Optimal σ on a known C_s curve (F = Σ a sin(w x), one w), SG²(σ*) as the SpectralLens map at each image's σ*,
and the noise cutoff's rule and entropy curve."""
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
