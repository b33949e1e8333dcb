"""The gradient engine on signals x (B, C, L) and volumes x (B, C, D, H, W): closed forms of the separable
sinusoid F(x) = Σ a sin(w x) (VG, SG, SG², convex SG² per σ), shapes of every method, statistics and stops,
deletion/insertion, smooth activations on Conv1d/Conv3d models."""
import pytest
import torch
from torch import nn

import spectral_xai as sx
from spectral_xai.metrics import blur_baseline, deletion_insertion, keep_masks

from helpers import (Quadratic, assert_within, convex_sg2_grid, sg2_exact, sg2_sd_bound, sg_exact, sinusoid,
                     sinusoid_grad)

N = 2048
SPATIAL = {1: (24,), 3: (3, 4, 5)}


@pytest.mark.parametrize("nd", [1, 3])
def test_vanilla_grad_and_smoothgrad_closed_forms(nd):
    model, a, w, x = sinusoid(nd, spatial=SPATIAL[nd])
    vg = sx.vanilla_grad(model, x, target=0, output="logit")
    assert vg.shape == (2, *SPATIAL[nd])
    torch.testing.assert_close(vg, sinusoid_grad(a, w, x), rtol=1e-5, atol=1e-6)
    s = 0.4
    sg2 = sx.smooth_grad(model, x, s, target=0, output="logit", n_samples=N, batch_size=1024)
    assert sg2.shape == (2, *SPATIAL[nd])
    assert_within(sg2, sg2_exact(a, w, x, s), sg2_sd_bound(a, w), N)
    sg = sx.smooth_grad(model, x, s, target=0, output="logit", n_samples=N, squared=False, batch_size=1024)
    assert_within(sg, sg_exact(a, w, x, s), (a * w)[:, 0], N)


@pytest.mark.parametrize("nd", [1, 3])
def test_noise_is_the_flat_index_noise_of_the_image_layout(nd):
    """A signal / volume gets bit for bit the noise of the same elements laid out as a (B, C, 1, n) image."""
    model, a, w, x = sinusoid(10 + nd, spatial=SPATIAL[nd])
    flat = x.reshape(x.shape[0], 1, 1, -1)
    model_flat = type(model)(a.reshape(1, 1, 1, -1), w.reshape(1, 1, 1, -1))
    got = sx.smooth_grad(model, x, 0.3, target=0, output="logit", n_samples=8)
    want = sx.smooth_grad(model_flat, flat, 0.3, target=0, output="logit", n_samples=8)
    assert torch.equal(got.reshape(want.shape), want)


@pytest.mark.parametrize("nd", [1, 3])
def test_spectral_lens_and_optimal_sigma_on_nd_inputs(nd):
    model, a, w, x = sinusoid(20 + nd, spatial=SPATIAL[nd])
    sigmas, s, n = (0.0, 0.3, 0.6), 0.8, 1024
    res = sx.spectral_lens(model, x, sigmas, target=0, output="logit", n_samples=n, noise_scale=s,
                           return_per_sigma=True, batch_size=1024, return_stats=True)
    exact = convex_sg2_grid(a, w, x, sigmas, s)                              # (B, S, *spatial)
    assert res.per_sigma.shape == exact.shape and res.sl2.shape == (2, *SPATIAL[nd])
    assert res.arglens.shape == res.sl2.shape and res.stderr.shape == res.sl2.shape
    assert_within(res.per_sigma, exact, sg2_sd_bound(a, w).unsqueeze(1), n)
    assert_within(res.sl2, exact.mean(1), sg2_sd_bound(a, w), n)
    sig = sx.optimal_sigma(model, x, sigmas, target=0, output="logit", n_samples=64, noise_scale=s)
    assert sig.shape == (2,)
    pix = sx.optimal_sigma(model, x, sigmas, target=0, output="logit", n_samples=64, noise_scale=s, level="pixel")
    assert pix.shape == (2, *SPATIAL[nd])
    ney = sx.spectral_lens(model, x, sigmas, target=0, output="logit", n_samples=8, noise_scale=s,
                           estimator="neyman")
    assert ney.sl2.shape == (2, *SPATIAL[nd])


@pytest.mark.parametrize("nd", [1, 3])
def test_stats_halves_and_target_error_on_nd_inputs(nd):
    model, a, w, x = sinusoid(30 + nd, spatial=SPATIAL[nd])
    st = sx.smooth_grad(model, x, 0.4, target=0, output="logit", n_samples=64, return_stats=True)
    plain = sx.smooth_grad(model, x, 0.4, target=0, output="logit", n_samples=64)
    assert torch.equal(st.map, plain) and st.stderr.shape == plain.shape
    a_half, b_half = st.halves
    torch.testing.assert_close(st.map.double(), (a_half.double() + b_half.double()) / 2, rtol=1e-6, atol=1e-7)
    stop = sx.smooth_grad(model, x, 0.4, target=0, output="logit", n_samples=8, max_samples=512,
                          target_error=0.05, min_samples=8, return_stats=True)
    assert bool((stop.rel_error <= 0.05).all() | (stop.n_samples == 512).all())
    assert bool((stop.n_samples < 512).any())
    # the stopped map is a prefix of the long run: equal to a fixed run of the same length
    n0 = int(stop.n_samples[0])
    fixed = sx.smooth_grad(model, x[:1], 0.4, target=0, output="logit", n_samples=n0)
    torch.testing.assert_close(stop.map[:1], fixed, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("nd", [1, 3])
def test_channels_and_integrated_gradients_on_nd_inputs(nd):
    sp = SPATIAL[nd]
    x = torch.rand(3, 2, *sp, dtype=torch.float64)
    base = torch.rand(1, 2, *sp, dtype=torch.float64)
    model = Quadratic((2, *sp))
    xig = sx.integrated_grad(model, x, target=0, output="logit", baseline=base, n_steps=3)
    assert xig.shape == (3, *sp) and xig.dtype == torch.float64
    with torch.no_grad():
        want = model(x)[:, 0] - model(base.expand_as(x))[:, 0]
    torch.testing.assert_close(xig.flatten(1).sum(1), want, rtol=1e-10, atol=1e-10)
    full = sx.vanilla_grad(model, x, target=0, output="logit", reduce_channels=False)
    assert full.shape == (3, 2, *sp)
    torch.testing.assert_close(full.sum(1), sx.vanilla_grad(model, x, target=0, output="logit"))
    ig_full = sx.integrated_grad(model, x, target=0, output="logit", baseline=base, n_steps=3,
                                 reduce_channels=False)
    torch.testing.assert_close(ig_full.sum(1), xig)


def test_bad_input_ranks_name_x():
    model, *_ = sinusoid()
    with pytest.raises(ValueError, match="'x'.*\\(B, C, L\\)"):
        sx.vanilla_grad(model, torch.randn(2, 3))
    with pytest.raises(ValueError, match="'x'"):
        sx.smooth_grad(model, torch.randn(1, 1, 2, 2, 2, 2), 0.1)


def _conv_net(nd: int, channels: int = 2, classes: int = 3) -> nn.Module:
    conv = {1: nn.Conv1d, 3: nn.Conv3d}[nd]
    pool = {1: nn.AdaptiveAvgPool1d, 3: nn.AdaptiveAvgPool3d}[nd]
    torch.manual_seed(0)
    return nn.Sequential(conv(channels, 4, 3, padding=1), nn.ReLU(), conv(4, 4, 3, padding=1), nn.ReLU(),
                         pool(1), nn.Flatten(), nn.Linear(4, classes))


@pytest.mark.parametrize("nd", [1, 3])
def test_smooth_activations_on_conv1d_conv3d(nd):
    """SoftPlus_β surrogate of a Conv1d / Conv3d ReLU net: the same as writing SoftPlus(β) in by hand,
    and its gradient map (B, *spatial) tends to the ReLU net's as β grows."""
    net = _conv_net(nd)
    x = torch.randn(2, 2, *SPATIAL[nd], dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    net = net.double()
    smooth = sx.smooth_activations(net, 2.0)
    assert smooth.smooth_activations_replaced == 2
    by_hand = nn.Sequential(*[nn.Softplus(beta=2.0) if isinstance(m, nn.ReLU) else m for m in net]).double()
    with torch.no_grad():
        torch.testing.assert_close(smooth(x), by_hand(x))
    g = sx.vanilla_grad(smooth, x, target=0)
    assert g.shape == (2, *SPATIAL[nd])
    torch.testing.assert_close(g, sx.vanilla_grad(by_hand, x, target=0))
    sharp = sx.vanilla_grad(sx.smooth_activations(net, 1e4), x, target=0)
    torch.testing.assert_close(sharp, sx.vanilla_grad(net, x, target=0), rtol=1e-2, atol=1e-3)
    # the exact gap ||∇f − ∇f̃||² of the surrogate, from the unreduced gradients (B, C, *spatial)
    diff = sx.vanilla_grad(net, x, target=0, reduce_channels=False) \
        - sx.vanilla_grad(smooth, x, target=0, reduce_channels=False)
    torch.testing.assert_close(sx.exact_gap(net, x, surrogate=smooth, target=0), diff.pow(2).flatten(1).sum(1))


@pytest.mark.parametrize("nd", [1, 3])
def test_deletion_insertion_on_nd_inputs(nd):
    sp = {1: (20,), 3: (4, 5, 6)}[nd]
    net = _conv_net(nd).double()
    x = torch.randn(2, 2, *sp, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    maps = sx.vanilla_grad(net, x, target=0).abs()
    out = deletion_insertion(net, x, maps, target=0, fractions=[0.0, 0.5, 1.0])
    assert out["deletion_curve"].shape == (2, 3)
    base = blur_baseline(x)
    # the blur is a box mean over an odd window along every map axis, edges over the valid elements
    k = max(1, round(0.45 * sp[0]))
    k += 1 - k % 2
    ones = torch.ones(1, 1, *sp, dtype=torch.float64)
    pool = {1: torch.nn.functional.avg_pool1d, 3: torch.nn.functional.avg_pool3d}[nd]
    want = pool(x, k, 1, k // 2) / pool(ones, k, 1, k // 2)
    torch.testing.assert_close(base, want)
    with torch.no_grad():
        p = lambda z: torch.softmax(net(z), 1)[:, 0]                 # noqa: E731
        torch.testing.assert_close(out["deletion_curve"][:, 0], p(x))
        torch.testing.assert_close(out["deletion_curve"][:, 2], p(base))
        torch.testing.assert_close(out["insertion_curve"][:, 0], p(base))
        keep = keep_masks(maps, torch.tensor([0.5], dtype=torch.float64))[:, 0].unsqueeze(1)
        torch.testing.assert_close(out["deletion_curve"][:, 1], p(x * keep + base * (1 - keep)))
    assert keep.shape == (2, 1, *sp) and float(keep.mean()) == pytest.approx(0.5, abs=1 / keep[0].numel())
    eroded = keep_masks(maps, torch.tensor([0.2], dtype=torch.float64), erosion=3)
    assert eroded.shape == (2, 1, *sp) and float(eroded.mean()) < 0.8


def test_nd_maps_have_nd_spectra():
    """End to end: a 1-D map's EF through ndim=1 (and a volume's through ndim=3)."""
    for nd in (1, 3):
        model, a, w, x = sinusoid(40 + nd, spatial=SPATIAL[nd])
        vg = sx.vanilla_grad(model, x, target=0, output="logit")
        ef = sx.expected_frequency(vg, ndim=nd, rank_normalize=False)
        assert ef.shape == (2,) and bool(((ef > 0) & (ef < 1)).all())
