"""Spectrum ops, Expected Frequency, the explanation gap and smooth activations."""
import math
import warnings

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F
from torch import nn

import spectral_xai as sx
from spectral_xai.ops import spectrum as ops

from conftest import Sinusoid, cuda_only, small_cnn


def numpy_radial(m: np.ndarray) -> np.ndarray:
    """The authors' recipe: fft2 -> |.|^2 -> fftshift -> integer radius -> bincount mean."""
    H, W = m.shape
    p = np.abs(np.fft.fftshift(np.fft.fft2(m))) ** 2
    v, u = np.meshgrid(np.arange(W) - W // 2, np.arange(H) - H // 2)
    r = np.floor(np.sqrt(u**2 + v**2)).astype(int)
    return np.bincount(r.ravel(), p.ravel()) / np.bincount(r.ravel())


@pytest.mark.parametrize("shape", [(32, 32), (31, 40), (224, 224), (5, 3)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_radial_spectrum_matches_numpy(shape, dtype):
    m = torch.randn(3, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).to(dtype)
    got = sx.radial_power_spectrum(m)
    assert got.dtype == dtype and got.shape == (3, ops.radial_bins(*shape))
    want = np.stack([numpy_radial(mm) for mm in m.double().numpy()])
    np.testing.assert_allclose(got.double().numpy(), want, rtol=1e-4 if dtype == torch.float32 else 1e-10)
    torch.testing.assert_close(got, ops.radial_power_spectrum_reference(m), rtol=1e-4, atol=1e-6)
    assert ops.radial_bins(224, 224) == 159


def test_radial_spectrum_noncontiguous_and_empty():
    m = torch.randn(2, 20, 30).transpose(1, 2)
    torch.testing.assert_close(sx.radial_power_spectrum(m), ops.radial_power_spectrum_reference(m.contiguous()),
                               rtol=1e-4, atol=1e-6)
    assert ops.radial_power_spectrum(torch.empty(0, 8, 8)).shape == (0, ops.radial_bins(8, 8))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rank_normalize_matches_scipy_with_ties(dtype):
    g = torch.Generator().manual_seed(1)
    m = torch.randint(0, 6, (3, 9, 7), generator=g).to(dtype)        # many ties
    got = sx.rank_normalize(m)
    for b in range(3):
        want = scipy.stats.rankdata(m[b].double().numpy().ravel(), "average") / 63
        np.testing.assert_allclose(got[b].double().numpy().ravel(), want, rtol=1e-6)
    torch.testing.assert_close(got, ops.rank_normalize_reference(m))
    cont = torch.randn(2, 11, 13, dtype=dtype, generator=g)
    torch.testing.assert_close(sx.rank_normalize(cont), ops.rank_normalize_reference(cont))
    assert ops.rank_normalize(torch.empty(0, 3, 3)).shape == (0, 3, 3)
    for dtype in (torch.float32, torch.float64):
        with pytest.raises(ValueError, match="'maps'"):
            sx.rank_normalize(torch.tensor([[[0.0, float("nan")]]], dtype=dtype))
    inf = torch.tensor([[[0.0, float("inf")], [1.0, -2.0]]])
    assert sx.rank_normalize(inf).tolist() == [[[0.5, 1.0], [0.75, 0.25]]]  # ±Inf have ranks
    with pytest.raises(ValueError, match="'maps'"):
        sx.expected_frequency(inf, rank_normalize=False)


def test_spectrum_ops_opcheck_and_compile():
    m = torch.randn(2, 9, 12)
    torch.library.opcheck(torch.ops.spectral_xai.rank_normalize.default, (m,))
    torch.library.opcheck(torch.ops.spectral_xai.radial_power_spectrum.default, (m,))

    def ef(maps):
        s = ops.radial_power_spectrum(ops.rank_normalize(maps * 2))
        w = torch.arange(s.shape[1], dtype=s.dtype) / (s.shape[1] - 1)
        return (s * w).sum(1) / s.sum(1)

    torch.testing.assert_close(torch.compile(ef, fullgraph=True)(m), ef(m))


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
    g = torch.Generator().manual_seed(4)
    a = torch.rand(1, 1, 6, 6, generator=g) + 0.5
    w = torch.rand(1, 1, 6, 6, generator=g) * 3 + 0.5
    x = torch.rand(2, 1, 6, 6, generator=g) * 4 - 2
    sigma = 0.3
    model = Sinusoid(a, w)
    gap = sx.exact_gap(model, x, sigma=sigma, n_samples=4096, target=0, output="logit", batch_size=8192)
    a, w, xd = a.double(), w.double(), x.double()
    want = ((a * w * torch.cos(w * xd)) ** 2 * (1 - torch.exp(-(w**2) * sigma**2 / 2)) ** 2).flatten(1).sum(1)
    # sd of one product of two independent means is about a²w²/sqrt(n) per pixel; 36 pixels
    tol = 5 * float((a**2 * w**2).sum()) / math.sqrt(4096)
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


class FunctionalNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 12 * 12, 5)

    def forward(self, x):
        return self.fc(F.relu(self.conv(x)).flatten(1))


class Bottleneck(nn.Module):
    """torchvision style: one nn.ReLU(inplace=True) module reused three times."""

    def __init__(self, c=8):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 3, padding=1)
        self.bn1, self.bn2 = nn.BatchNorm2d(c), nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


@pytest.mark.parametrize("kind", ["softplus", "gaussian"])
def test_smooth_activations(kind, images):
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), Bottleneck(), nn.ReLU6(), nn.Flatten(),
                          nn.Linear(8 * 144, 5)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    big = 1e4 if kind == "softplus" else 1e8   # deviations from ReLU: ln2/β and φ(0)/√β
    smooth = sx.smooth_activations(model, big, kind=kind)
    assert smooth.smooth_activations_replaced == 3
    assert not any(type(m) in (nn.ReLU, nn.ReLU6) for m in smooth.modules())
    assert sum(type(m) in (nn.ReLU, nn.ReLU6) for m in model.modules()) == 3      # original untouched
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with torch.no_grad():
        torch.testing.assert_close(smooth(images), model(images), rtol=1e-3, atol=1e-3)
        soft = sx.smooth_activations(model, 0.5, kind=kind)
        assert (soft(images) - model(images)).abs().max() > 1e-2
    t = torch.linspace(-3, 10, 101)
    cap = sx.SmoothReLU(1e6, kind, cap=6.0)(t)
    torch.testing.assert_close(cap, t.clamp(0, 6), atol=1e-3, rtol=0)
    if kind == "gaussian":  # E[ReLU(x + Z/sqrt(beta))] by Monte Carlo
        z = torch.randn(200_000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        for v in (-1.0, 0.0, 0.7):
            mc = torch.relu(v + z / math.sqrt(2.0)).mean()
            assert float(sx.SmoothReLU(2.0, "gaussian")(torch.tensor(v, dtype=torch.float64))) == \
                pytest.approx(float(mc), abs=4e-3)


def test_smooth_activations_warns_on_functional_relu_and_works_on_lite0():
    with pytest.raises(ValueError, match="FunctionalNet.forward"):   # nothing but a functional ReLU
        sx.smooth_activations(FunctionalNet(), 2.0)
    from spectral_xai.zoo import efficientnet_lite0, photos

    lite = efficientnet_lite0()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        smooth = sx.smooth_activations(lite, 1e4, kind="softplus")
    assert smooth.smooth_activations_replaced > 10
    x = photos(64)[:2]
    with torch.no_grad():
        torch.testing.assert_close(torch.softmax(smooth(x), 1), torch.softmax(lite(x), 1), atol=2e-3, rtol=0)


@cuda_only
def test_spectrum_ops_cuda_match_cpu():
    g = torch.Generator().manual_seed(3)
    for shape in [(32, 32), (31, 40), (224, 224)]:
        m = torch.randn(4, *shape, generator=g)
        torch.testing.assert_close(ops.radial_power_spectrum(m.cuda()).cpu(), ops.radial_power_spectrum(m),
                                   rtol=1e-4, atol=1e-5)
        ties = torch.randint(0, 7, (4, *shape), generator=g).float()
        assert torch.equal(ops.rank_normalize(ties.cuda()).cpu(), ops.rank_normalize(ties))
    m = torch.randn(2, 9, 12).cuda()
    torch.library.opcheck(torch.ops.spectral_xai.rank_normalize.default, (m,))
    torch.library.opcheck(torch.ops.spectral_xai.radial_power_spectrum.default, (m,))
