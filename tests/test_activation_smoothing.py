"""Gaussian smoothing of every elementwise activation, a_β(x) = E[a(x + Z/√β)] (docs/methods.md §12), against
scipy quadrature of independent numpy activations, Monte Carlo, β -> ∞ and autograd's gradcheck."""
import copy
import math
import pickle
import warnings

import numpy as np
import pytest
import scipy.integrate
import scipy.special
import torch
from torch import nn
from torch.nn import functional as F

import spectral_xai as sx
from spectral_xai.activation_smoothing import GaussianActivation

from helpers import tiny_hf_vit

SELU_A, SELU_L = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def _elu(y, a):
    return np.where(y > 0, y, a * np.expm1(np.minimum(y, 0)))


# (torch module, independent numpy a(y), kink / discontinuity points for the quadrature, closed form?)
CASES = {
    "ReLU": (nn.ReLU(), lambda y: np.maximum(y, 0), [0], True),
    "ReLU6": (nn.ReLU6(), lambda y: np.clip(y, 0, 6), [0, 6], True),
    "Hardtanh": (nn.Hardtanh(-2, 1.5), lambda y: np.clip(y, -2, 1.5), [-2, 1.5], True),
    "LeakyReLU": (nn.LeakyReLU(0.1), lambda y: np.where(y > 0, y, 0.1 * y), [0], True),
    "PReLU": (nn.PReLU(init=0.25), lambda y: np.where(y > 0, y, 0.25 * y), [0], True),
    "Hardsigmoid": (nn.Hardsigmoid(), lambda y: np.clip(y / 6 + 0.5, 0, 1), [-3, 3], True),
    "Hardswish": (nn.Hardswish(), lambda y: y * np.clip(y + 3, 0, 6) / 6, [-3, 3], True),
    "Softshrink": (nn.Softshrink(0.5), lambda y: np.sign(y) * np.maximum(np.abs(y) - 0.5, 0), [-0.5, 0.5], True),
    "GELU": (nn.GELU(), lambda y: y * scipy.special.ndtr(y), [], True),
    "ELU": (nn.ELU(1.3), lambda y: _elu(y, 1.3), [0], True),
    "CELU": (nn.CELU(0.7), lambda y: 0.7 * _elu(y / 0.7, 1.0), [0], True),
    "SELU": (nn.SELU(), lambda y: SELU_L * _elu(y, SELU_A), [0], True),
    "SiLU": (nn.SiLU(), lambda y: y * scipy.special.expit(y), [], False),
    "Mish": (nn.Mish(), lambda y: y * np.tanh(np.logaddexp(0, y)), [], False),
    "GELU-tanh": (nn.GELU(approximate="tanh"),
                  lambda y: 0.5 * y * (1 + np.tanh(math.sqrt(2 / math.pi) * (y + 0.044715 * y**3))), [], False),
    "Softplus": (nn.Softplus(), lambda y: np.logaddexp(0, y), [], False),
    "Sigmoid": (nn.Sigmoid(), scipy.special.expit, [], False),
    "Tanh": (nn.Tanh(), np.tanh, [], False),
}


def _act(name: str) -> nn.Module:
    return copy.deepcopy(CASES[name][0])


XS = [-7.0, -3.1, -1.0, -0.2, 0.0, 0.4, 1.3, 2.9, 5.5, 8.0]


def _expectation(a, x, s, kinks):
    """E[a(x + sZ)] by adaptive quadrature over z, split at the kinks of a."""
    def f(z):
        return float(a(np.array(x + s * z))) * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    cuts = sorted({-12.0, 12.0, *[(k - x) / s for k in kinks if abs((k - x) / s) < 12]})
    return sum(scipy.integrate.quad(f, lo, hi, epsabs=1e-13, epsrel=1e-12, limit=200)[0]
               for lo, hi in zip(cuts[:-1], cuts[1:]))


@pytest.mark.parametrize("name", list(CASES))
def test_smoothing_matches_quadrature_of_the_activation(name):
    _, a, kinks, closed = CASES[name]
    module = _act(name)
    x = torch.tensor(XS, dtype=torch.float64)
    for beta in (0.1, 1.0, 25.0):
        smooth = GaussianActivation(module, beta).double()
        assert (smooth.method == "closed form") == closed
        with torch.no_grad():
            got = smooth(x).numpy()
        want = np.array([_expectation(a, v, 1 / math.sqrt(beta), kinks) for v in XS])
        tol = 1e-9 if closed else 1e-5     # Gauss-Hermite: 24 * ceil(1 / beta) nodes
        np.testing.assert_allclose(got, want, rtol=0, atol=tol, err_msg=f"{name} beta={beta}")


def test_gelu_closed_form_against_monte_carlo_and_high_order_quadrature():
    z = torch.randn(2_000_000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    smooth = GaussianActivation(nn.GELU(), 0.5).double()
    hermite = GaussianActivation(nn.GELU(approximate="none"), 0.5, nodes=1)   # closed form wins over nodes
    assert hermite.method == "closed form"
    u, w = np.polynomial.hermite.hermgauss(200)
    for v in (-2.0, -0.3, 0.0, 1.7):
        y = v + z / math.sqrt(0.5)
        mc = y * torch.special.ndtr(y)
        got = float(smooth(torch.tensor(v, dtype=torch.float64)))
        assert got == pytest.approx(float(mc.mean()), abs=4 * float(mc.std()) / math.sqrt(z.numel()))
        yq = v + math.sqrt(2) * u / math.sqrt(0.5)
        assert got == pytest.approx(float((w * yq * scipy.special.ndtr(yq)).sum() / math.sqrt(math.pi)), abs=1e-12)


@pytest.mark.parametrize("name", list(CASES))
def test_large_beta_recovers_the_activation_and_gradients_are_finite(name):
    module = _act(name)
    x = torch.linspace(-60, 60, 2401)     # float32, wide range
    with torch.no_grad():
        near = GaussianActivation(module, 1e10)(x)
        torch.testing.assert_close(near, module(x), atol=1e-4, rtol=1e-5)
    for beta in (1e-2, 1.0, 1e8):
        xg = x.clone().requires_grad_(True)
        y = GaussianActivation(module, beta)(xg)
        assert y.dtype == torch.float32 and bool(torch.isfinite(y).all())
        (g,) = torch.autograd.grad(y.sum(), xg)
        assert bool(torch.isfinite(g).all()), (name, beta)


@pytest.mark.parametrize("name", ["GELU", "ELU", "Hardswish", "PReLU", "SiLU", "Mish"])
def test_gradcheck_and_the_recomputed_backward(name):
    smooth = GaussianActivation(_act(name), 0.7).double()
    x = torch.linspace(-4, 4, 17, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(smooth, (x,))
    assert torch.autograd.gradgradcheck(smooth, (x,))
    if smooth.method != "closed form":   # checkpointed quadrature == plain autograd through every node
        (g,) = torch.autograd.grad(smooth(x).sum(), x)
        (want,) = torch.autograd.grad(smooth._quadrature(x).sum(), x)
        torch.testing.assert_close(g, want, rtol=1e-12, atol=1e-14)


def test_softplus_and_gaussian_relu6_match_the_smoothed_relu6():
    x = torch.tensor(XS, dtype=torch.float64)
    want = [_expectation(CASES["ReLU6"][1], v, 1 / math.sqrt(2.0), [0, 6]) for v in XS]
    np.testing.assert_allclose(sx.SmoothReLU(2.0, "gaussian", cap=6.0)(x).numpy(), want, atol=1e-9, rtol=0)


class MixedNet(nn.Module):
    """A ViT / ConvNeXt / MobileNetV3-like mix: GELU, SiLU, Hardswish (reused), PReLU, nn.Identity."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(6, 16), nn.Linear(16, 16), nn.Linear(16, 4)
        self.block = nn.Sequential(nn.GELU(approximate="tanh"), nn.Identity(), nn.SiLU())
        self.hs, self.prelu = nn.Hardswish(), nn.PReLU(16)

    def forward(self, x):
        h = self.hs(self.block(self.fc1(x)))
        return self.fc3(self.hs(self.prelu(self.fc2(h))))


def test_smooth_activations_replaces_every_activation_and_reports_it():
    torch.manual_seed(0)
    model = MixedNet().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(32, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        smooth = sx.smooth_activations(model, 3.0, kind="gaussian")
    rep = smooth.smooth_activations_report
    assert {p: c for p, c, _ in rep.replaced} == {"block.0": "GELU", "block.2": "SiLU", "hs": "Hardswish",
                                                   "prelu": "PReLU"}
    assert rep.left == () and smooth.smooth_activations_replaced == 4 and rep.kind == "gaussian"
    assert all(isinstance(m, GaussianActivation) for m in (smooth.block[0], smooth.block[2], smooth.hs, smooth.prelu))
    assert type(model.hs) is nn.Hardswish and type(model.block[0]) is nn.GELU       # original untouched
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert "prelu.act.weight" in smooth.state_dict()                                 # PReLU's slope is kept
    with torch.no_grad():
        torch.testing.assert_close(sx.smooth_activations(model, 1e10, kind="gaussian")(x), model(x), atol=1e-5, rtol=1e-5)
        assert float((smooth(x) - model(x)).abs().max()) > 1e-2
        again = pickle.loads(pickle.dumps(smooth))                      # picklable; copies own their PReLU
        again.prelu.act.weight.data.fill_(2.0)
        assert not torch.equal(again(x), smooth(x))


class FunctionalGELU(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.act = nn.Linear(4, 4), nn.ReLU()

    def forward(self, x):
        return self.act(F.gelu(self.fc(x)))


def test_left_activations_are_reported_and_nothing_to_replace_raises():
    with pytest.warns(UserWarning, match=r"FunctionalGELU\.forward"):
        smooth = sx.smooth_activations(FunctionalGELU(), 2.0, kind="gaussian")
    assert smooth.smooth_activations_report.left[0][0].endswith("FunctionalGELU.forward")
    with pytest.warns(UserWarning, match=r"1 \(GELU\).*kind='softplus' smooths only ReLU"):
        soft = sx.smooth_activations(nn.Sequential(nn.ReLU(), nn.GELU()), 2.0, kind="softplus")
    assert [r[:2] for r in soft.smooth_activations_report.replaced] == [("0", "ReLU")]
    for model in (nn.Sequential(nn.Linear(3, 3)), nn.Sequential(nn.GELU()), nn.Sequential(nn.Threshold(0.1, 0))):
        kind = "softplus" if isinstance(model[0], nn.GELU) else "gaussian"
        with pytest.raises(ValueError, match="'model'"):
            sx.smooth_activations(model, 2.0, kind=kind)
    with pytest.raises(ValueError, match="'nodes'"):
        sx.smooth_activations(MixedNet(), 2.0, nodes=0)


def test_half_precision_inputs_are_smoothed_in_float32():
    x = torch.linspace(-5, 5, 101)
    for name in ("GELU", "SiLU"):
        smooth = GaussianActivation(_act(name), 2.0)
        y = smooth(x.to(torch.bfloat16))
        assert y.dtype == torch.bfloat16
        torch.testing.assert_close(y.float(), smooth(x.to(torch.bfloat16).float()).to(torch.bfloat16).float())


def test_transformers_activation_classes_are_recognised():
    acts = pytest.importorskip("transformers.activations")
    classes = [acts.GELUActivation, acts.NewGELUActivation, acts.FastGELUActivation, acts.QuickGELUActivation,
               acts.SiLUActivation, acts.MishActivation, acts.AccurateGELUActivation, acts.LaplaceActivation,
               acts.ReLUSquaredActivation, acts.SqrtSoftplusActivation]
    model = nn.Sequential(*[m for c in classes for m in (nn.Linear(5, 5), c())], nn.Linear(5, 5),
                          acts.ClippedGELUActivation(-1.0, 2.0))
    smooth = sx.smooth_activations(model, 1.5, kind="gaussian")
    assert [r[1] for r in smooth.smooth_activations_report.replaced] == \
        [c.__name__ for c in classes] + ["ClippedGELUActivation"]
    _check_against_monte_carlo(model, smooth, 1.5)


def test_timm_activation_classes_are_recognised():
    layers = pytest.importorskip("timm.layers")
    classes = [layers.get_act_layer(n) for n in ("gelu", "gelu_tanh", "quick_gelu", "silu", "hard_swish", "mish")]
    model = nn.Sequential(*[m for c in classes for m in (nn.Linear(5, 5), c())])
    smooth = sx.smooth_activations(model, 1.5, kind="gaussian")
    assert len(smooth.smooth_activations_report.replaced) == len(classes)
    _check_against_monte_carlo(model, smooth, 1.5)


def test_timm_own_activation_classes_are_recognised():
    """timm's own modules (what get_act_layer returns on an older torch or under timm's exportable /
    scriptable configuration, and act_layer="gelu" everywhere), memory-efficient variants included."""
    pytest.importorskip("timm")
    from timm.layers import activations as ta, activations_me as tm
    classes = [ta.Swish, ta.Mish, ta.Sigmoid, ta.Tanh, ta.HardSwish, ta.HardSigmoid, ta.HardMish, ta.PReLU, ta.GELU,
               ta.GELUTanh, ta.QuickGELU, tm.SwishMe, tm.MishMe, tm.HardSigmoidMe, tm.HardSwishMe, tm.HardMishMe]
    model = nn.Sequential(*[m for c in classes for m in (nn.Linear(5, 5), c())])
    smooth = sx.smooth_activations(model, 1.5, kind="gaussian")
    assert [r[1] for r in smooth.smooth_activations_report.replaced] == [c.__name__ for c in classes]
    assert smooth.smooth_activations_report.left == ()
    _check_against_monte_carlo(model, smooth, 1.5)


class _HermiteReference(nn.Module):
    """E[a(x + Z/√β)] by numpy's Gauss–Hermite rule of order 64, in float64 (not the library's rule)."""

    def __init__(self, act: nn.Module, beta: float):
        super().__init__()
        self.act, self.s = act, 1 / math.sqrt(beta)
        self.u, self.w = np.polynomial.hermite.hermgauss(64)

    def forward(self, x):
        return sum(float(w) / math.sqrt(math.pi) * self.act(x + float(u) * math.sqrt(2) * self.s)
                   for u, w in zip(self.u, self.w))


def _timm_vit():
    from timm.models.vision_transformer import VisionTransformer
    torch.manual_seed(0)
    return VisionTransformer(img_size=16, patch_size=4, embed_dim=16, depth=2, num_heads=2, mlp_ratio=2,
                             num_classes=3, act_layer="gelu")


def _timm_efficientnet():
    import timm
    torch.manual_seed(0)
    return timm.create_model("efficientnet_b0", pretrained=False, num_classes=3)


# model builder, its package, the classes smooth_activations must replace (and how many of each)
REAL_MODELS = {
    "transformers ViTForImageClassification": (tiny_hf_vit, "transformers", {"GELUActivation": 2}),
    "timm VisionTransformer(act_layer='gelu')": (_timm_vit, "timm", {"GELU": 2}),
    "timm efficientnet_b0": (_timm_efficientnet, "timm", {"SiLU": 49, "Sigmoid": 16}),
}


@pytest.mark.parametrize("name", list(REAL_MODELS))
def test_real_transformers_and_timm_models_are_smoothed(name):
    """Every activation of a real architecture (random weights) is replaced, nothing is left or warned about,
    the original is untouched, and the smoothed logits equal those of the model with each activation replaced
    by an independent float64 Gauss–Hermite smoothing of order 64."""
    build, package, expected = REAL_MODELS[name]
    pytest.importorskip(package)
    model, beta = build().eval(), 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        smooth = sx.smooth_activations(model, beta, kind="gaussian")
    report = smooth.smooth_activations_report
    counts = {}
    for _, cls, _ in report.replaced:
        counts[cls] = counts.get(cls, 0) + 1
    assert counts == expected and report.left == ()
    reference = copy.deepcopy(model).double()
    for path, cls, _ in report.replaced:
        parent, _, leaf = path.rpartition(".")
        assert type(model.get_submodule(path)).__name__ == cls       # the original keeps its activation
        holder = reference.get_submodule(parent) if parent else reference
        setattr(holder, leaf, _HermiteReference(getattr(holder, leaf), beta))
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got, want = smooth.double()(x), reference(x)
    got, want = getattr(got, "logits", got), getattr(want, "logits", want)
    assert got.shape == (2, want.shape[1]) and torch.isfinite(got).all()
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def _check_against_monte_carlo(model, smooth, beta):
    """Each replaced activation (input a fixed vector) against the Monte Carlo mean of the original."""
    x = torch.linspace(-3, 3, 5, dtype=torch.float64)
    z = torch.randn(400_000, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for orig, new in zip(model, smooth):
        if isinstance(new, GaussianActivation):
            with torch.no_grad():
                mc = orig.double()(x + z / math.sqrt(beta))
                torch.testing.assert_close(new.double()(x), mc.mean(0), atol=5 * float(mc.std(0).max()) / 632, rtol=0)


# ReLU-family surgery (SoftPlus_β and the Gaussian-smoothed ReLU), from the original smooth-activation tests

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


def test_smooth_activations_warns_on_functional_relu_and_works_on_lite0(lite0, photos64):
    with pytest.raises(ValueError, match="FunctionalNet.forward"):   # nothing but a functional ReLU
        sx.smooth_activations(FunctionalNet(), 2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        smooth = sx.smooth_activations(lite0, 1e4, kind="softplus")
    assert smooth.smooth_activations_replaced > 10
    with torch.no_grad():
        torch.testing.assert_close(torch.softmax(smooth(photos64), 1), torch.softmax(lite0(photos64), 1),
                                   atol=2e-3, rtol=0)
