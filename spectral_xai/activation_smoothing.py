"""Smooth surrogates of a network (docs/methods.md §8, §12, ICCV25 §3.4): every elementwise activation a replaced by
its Gaussian smoothing a_β(x) = E[a(x + Z/√β)], Z ~ N(0, 1) (kind="gaussian"), or ReLU / ReLU6 by
SoftPlus_β (kind="softplus").  β -> ∞ recovers the original model.

Closed forms (s = 1/√β, r(x) = E[ReLU(x + sZ)] = x·Φ(x/s) + s·φ(x/s)):
ReLU r; Hardtanh(lo, hi) incl. ReLU6 lo + r(x − lo) − r(x − hi); LeakyReLU / PReLU r + a(x − r)
(x − r = E[min(Y, 0)] ≤ 0, so the module's own slope applies); Hardsigmoid (r(x+3) − r(x−3))/6;
Hardswish from q(m) = E[W·ReLU(W)], W ~ N(m, s²), q = (m² + s²)·Φ(m/s) + m·s·φ(m/s); Softshrink
r(x − λ) − r(−x − λ); exact GELU x·Φ(x/t) + (s²/t)·φ(x/t), t = √(1 + s²); ELU / CELU / SELU from
E[e^Y·1{Y ≤ 0}] = exp(x + s²/2)·Φ(−(x + s²)/s).  Every other elementwise activation (SiLU, Mish,
tanh-GELU, Sigmoid, Tanh, Softplus, the activation classes of transformers and timm, ...) by
Gauss–Hermite quadrature Σ_k w_k a(x + s√2·u_k)/√π with 24·⌈1/β⌉ nodes, at most 256 (measured error
<= 1e-5 for tanh, SiLU, Mish, tanh-GELU at β >= 0.1), recomputed in the backward pass so that only the
input is stored.
"""
from __future__ import annotations

import copy
import importlib
import inspect
import math
import re
import sys
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from . import _validation as V

# functional activations in a custom forward (sigmoid / tanh are left out: mostly gates, e.g. squeeze-excitation)
_ACTS = r"relu6?_?|hardtanh_?|leaky_relu_?|elu_?|selu_?|celu_?|gelu|silu|mish|hardswish|hardsigmoid|softplus" \
        r"|prelu|rrelu_?|softsign"
_FUNCTIONAL_ACT = re.compile(rf"\b(?:F|functional|torch|nn\.functional|torch\.nn\.functional)\.(?:{_ACTS})\s*\("
                             r"|\.relu_?\(\)")
_SQRT_2PI = math.sqrt(2 * math.pi)
_LEFT_TORCH = {nn.RReLU: "random slope in training mode", nn.Threshold: "discontinuous",
               nn.Hardshrink: "discontinuous"}


def _pdf(z: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * z * z) / _SQRT_2PI


def _relu_g(x: torch.Tensor, s: float) -> torch.Tensor:
    """E[ReLU(x + sZ)] = x·Φ(x/s) + s·φ(x/s)."""
    z = x / s
    return x * torch.special.ndtr(z) + s * _pdf(z)


def _relu_sq_g(m: torch.Tensor, s: float) -> torch.Tensor:
    """E[W·ReLU(W)] for W ~ N(m, s²): (m² + s²)·Φ(m/s) + m·s·φ(m/s)."""
    z = m / s
    return (m * m + s * s) * torch.special.ndtr(z) + m * s * _pdf(z)


def _elu_g(x: torch.Tensor, s: float, alpha: float) -> torch.Tensor:
    """E[ELU_α(x + sZ)] = r(x) + α·(exp(x + s²/2)·Φ(−(x + s²)/s) − Φ(−x/s)), the product in log space and
    in float64 (float32's log_ndtr gradient is wrong far in the tail)."""
    xd = x.to(torch.float64)
    low = torch.exp(xd + 0.5 * s * s + torch.special.log_ndtr(-(xd + s * s) / s))
    return (_relu_g(xd, s) + alpha * (low - torch.special.ndtr(-xd / s))).to(x.dtype)


def _gelu_g(x: torch.Tensor, s: float) -> torch.Tensor:
    """E[GELU(x + sZ)] for GELU(y) = y·Φ(y): x·Φ(x/t) + (s²/t)·φ(x/t), t = √(1 + s²)."""
    t = math.sqrt(1 + s * s)
    return x * torch.special.ndtr(x / t) + (s * s / t) * _pdf(x / t)


def _hardswish_g(x: torch.Tensor, s: float) -> torch.Tensor:
    """Hardswish(y) = y·(ReLU(y + 3) − ReLU(y − 3))/6, with y·ReLU(y ∓ 3) = (W ± 3)·ReLU(W), W = y ∓ 3."""
    up, lo = x + 3, x - 3
    return (_relu_sq_g(up, s) - 3 * _relu_g(up, s) - _relu_sq_g(lo, s) - 3 * _relu_g(lo, s)) / 6


def _plain(act: nn.Module, cls: type) -> bool:
    """``act`` is a ``cls`` whose forward is ``cls``'s own (a subclass that overrides it is not)."""
    return isinstance(act, cls) and type(act).forward is cls.forward


def _hardtanh_g(x, s, lo, hi):
    return lo + _relu_g(x - lo, s) - _relu_g(x - hi, s)


def _leaky_g(x, s, slope):
    r = _relu_g(x, s)
    return r + slope * (x - r)          # x − r = E[min(x + sZ, 0)]


def _hardsigmoid_g(x, s):
    return (_relu_g(x + 3, s) - _relu_g(x - 3, s)) / 6


def _softshrink_g(x, s, lam):
    return _relu_g(x - lam, s) - _relu_g(-x - lam, s)


def _celu_g(x, s, alpha):
    return alpha * _elu_g(x / alpha, s / alpha, 1.0)


def _selu_g(x, s):
    return 1.0507009873554804934193349852946 * _elu_g(x, s, 1.6732632423543772848170429916717)


# torch.nn class -> (f(x, s, *params), params of a module); PReLU is handled with its own weight
_CLOSED = {
    nn.ReLU: (_relu_g, lambda m: ()),
    nn.Hardtanh: (_hardtanh_g, lambda m: (float(m.min_val), float(m.max_val))),   # incl. ReLU6
    nn.LeakyReLU: (_leaky_g, lambda m: (float(m.negative_slope),)),
    nn.Hardsigmoid: (_hardsigmoid_g, lambda m: ()),
    nn.Hardswish: (_hardswish_g, lambda m: ()),
    nn.Softshrink: (_softshrink_g, lambda m: (float(m.lambd),)),
    nn.ELU: (_elu_g, lambda m: (float(m.alpha),)),
    nn.CELU: (_celu_g, lambda m: (float(m.alpha),)),
    nn.SELU: (_selu_g, lambda m: ()),
}


def _closed_form(act: nn.Module):
    """(f, params) for an activation with a closed-form Gaussian smoothing f(x, s, *params), else None."""
    if _plain(act, nn.GELU) and act.approximate == "none":
        return _gelu_g, ()
    for cls, (fn, params) in _CLOSED.items():
        if _plain(act, cls):
            return fn, params(act)
    return None


def hermite_nodes(n: int) -> tuple[list[float], list[float]]:
    """Gauss–Hermite nodes u_k and weights w_k/√π for E[g(Z)] ≈ Σ_k w_k g(√2·u_k)/√π."""
    u, w = np.polynomial.hermite.hermgauss(n)
    return [float(v) * math.sqrt(2) for v in u], [float(v) / math.sqrt(math.pi) for v in w]


def default_nodes(beta: float) -> int:
    """24·⌈1/β⌉ Gauss–Hermite nodes, at most 256: measured error of tanh (the worst of SiLU, Mish,
    tanh-GELU, Sigmoid, Tanh) <= 1e-5 for β >= 1/10."""
    return min(256, 24 * max(1, math.ceil(1 / beta - 1e-9)))


class GaussianActivation(nn.Module):
    """a_β(x) = E[a(x + Z/√β)] of the elementwise activation module ``act``, any shape -> same shape.

    Closed form where one exists (``method == "closed form"``), otherwise Gauss–Hermite quadrature with
    ``nodes`` nodes (default :func:`default_nodes`), whose terms are recomputed in the backward pass.
    ``act`` stays a submodule where the forward needs it (quadrature; PReLU, whose slope is a parameter)."""

    def __init__(self, act: nn.Module, beta: float, nodes: int | None = None):
        super().__init__()
        self.beta, self.s, self.original = float(beta), 1.0 / math.sqrt(beta), type(act).__name__
        found = _closed_form(act)
        self.closed_form, self.params = found if found is not None else (None, ())
        self.act = None if found is not None else act
        if found is not None or _plain(act, nn.PReLU):   # PReLU: r + PReLU(x − r), as x − r <= 0
            self.nodes, self.method = 0, "closed form"
        else:
            self.nodes = nodes if nodes is not None else default_nodes(self.beta)
            self.method = f"Gauss-Hermite ({self.nodes} nodes)"
            u, self._weights = hermite_nodes(self.nodes)
            self._offsets = [self.s * v for v in u]

    def _quadrature(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.zeros_like(x)
        for c, w in zip(self._offsets, self._weights):
            y = y + w * self.act(x + c)
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xw = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        if self.closed_form is not None:
            y = self.closed_form(xw, self.s, *self.params)
        elif self.nodes == 0:                      # PReLU
            r = _relu_g(xw, self.s)
            y = r + self.act(xw - r)
        elif torch.is_grad_enabled() and xw.requires_grad:
            y = checkpoint(self._quadrature, xw, use_reentrant=False)
        else:
            y = self._quadrature(xw)
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.original}, beta={self.beta:g}, {self.method}"


class SmoothReLU(nn.Module):
    """SoftPlus_β(x) = (1/β)·ln(1 + e^{βx}) (kind="softplus"), clamped at ``cap`` (ReLU6: 6) if given, or
    E[ReLU(x + Z/√β)] = x·Φ(x√β) + φ(x√β)/√β (kind="gaussian"; with ``cap``: E[min(ReLU(x + Z/√β), cap)]).
    β -> ∞ gives ReLU (ReLU6)."""

    def __init__(self, beta: float, kind: str = "softplus", cap: float | None = None):
        super().__init__()
        self.beta, self.kind, self.cap = float(beta), kind, cap

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "softplus":
            y = nn.functional.softplus(x, beta=self.beta, threshold=20.0)
            return y if self.cap is None else y.clamp(max=self.cap)
        s = 1.0 / math.sqrt(self.beta)
        y = _relu_g(x, s)
        return y if self.cap is None else y - _relu_g(x - self.cap, s)

    def extra_repr(self) -> str:
        return f"beta={self.beta:g}, kind={self.kind}" + (f", cap={self.cap:g}" if self.cap is not None else "")


@dataclass(frozen=True)
class SmoothingReport:
    """What :func:`smooth_activations` did: ``replaced`` (path, original class, method) per module,
    ``left`` (where, why) per activation left unchanged (modules and functional calls in forward())."""
    kind: str
    beta: float
    replaced: tuple[tuple[str, str, str], ...]
    left: tuple[tuple[str, str], ...]

    def __str__(self) -> str:
        lines = [f"smooth_activations(beta={self.beta:g}, kind={self.kind!r}): replaced {len(self.replaced)}, "
                 f"left {len(self.left)}"]
        lines += [f"  replaced {p or '<model>'} ({c}): {m}" for p, c, m in self.replaced]
        lines += [f"  left {w}: {why}" for w, why in self.left]
        return "\n".join(lines)


def _package_classes(modules: tuple[str, ...], exclude: tuple[str, ...] = ()) -> tuple[type, ...]:
    """The nn.Module classes defined in the named modules of packages that are installed and imported."""
    found = []
    for name in modules:
        if name.split(".")[0] not in sys.modules:
            continue   # the model cannot hold a class of a package that was never imported
        try:
            mod = importlib.import_module(name)
        except Exception:   # noqa: BLE001 - an optional package that fails to import has no classes to offer
            continue
        found += [c for c in vars(mod).values() if isinstance(c, type) and issubclass(c, nn.Module)
                  and c.__module__ == mod.__name__ and c.__name__ not in exclude]
    return tuple(found)


def _ecosystem_activations() -> tuple[type, ...]:
    """Elementwise activation classes of transformers (transformers.activations) and timm (timm.layers)."""
    return _package_classes(("transformers.activations",), exclude=("LinearActivation", "ClassInstantier")) + \
        _package_classes(("timm.layers.activations", "timm.layers.activations_me", "timm.layers.activations_jit"))


_TORCH_ELEMENTWISE = (nn.ReLU, nn.Hardtanh, nn.LeakyReLU, nn.PReLU, nn.Hardsigmoid, nn.Hardswish, nn.Softshrink,
                      nn.GELU, nn.ELU, nn.CELU, nn.SELU, nn.SiLU, nn.Mish, nn.Softplus, nn.Sigmoid, nn.Tanh,
                      nn.LogSigmoid, nn.Softsign, nn.Tanhshrink)


def _is_relu_family(m: nn.Module) -> float | None | bool:
    """kind="softplus": the cap (6.0 for ReLU6 / Hardtanh(0, 6), None for ReLU), False otherwise."""
    if type(m) is nn.ReLU:
        return None
    if type(m) is nn.ReLU6 or (type(m) is nn.Hardtanh and m.min_val == 0 and m.max_val == 6):
        return 6.0
    return False


def _classify(m: nn.Module, kind: str, eco: tuple[type, ...]) -> str:
    """"smooth", "skip" (not an elementwise activation, or the identity) or the reason it is left."""
    if isinstance(m, (GaussianActivation, SmoothReLU)):
        return "already smooth"
    if kind == "softplus" and _is_relu_family(m) is not False:
        return "smooth"
    for cls, why in _LEFT_TORCH.items():
        if isinstance(m, cls):
            return why
    elementwise = isinstance(m, _TORCH_ELEMENTWISE) or isinstance(m, eco)
    if not elementwise:
        return "skip"
    if kind == "softplus":
        return "kind='softplus' smooths only ReLU and ReLU6 (kind='gaussian' smooths it)"
    return "smooth"


def _functional_users(model: nn.Module, skip: tuple[type, ...]) -> list[str]:
    """Module classes whose forward source calls a functional activation (these calls cannot be swapped);
    torch.nn's own classes, activation classes (``skip``) and the smooth replacements are not searched."""
    found = []
    for cls in sorted({type(m) for m in model.modules()}, key=lambda c: c.__qualname__):
        if cls.__module__.startswith("torch.nn") or issubclass(cls, skip + (GaussianActivation, SmoothReLU)):
            continue
        try:
            src = inspect.getsource(cls.forward)
        except (OSError, TypeError):
            continue
        if _FUNCTIONAL_ACT.search(src):
            found.append(f"{cls.__module__}.{cls.__qualname__}.forward")
    return found


def _replacement(m: nn.Module, beta: float, kind: str, nodes: int | None) -> nn.Module:
    if kind == "softplus":
        return SmoothReLU(beta, "softplus", cap=_is_relu_family(m))
    return GaussianActivation(m, beta, nodes)


def _swap(smooth: nn.Module, beta: float, kind: str, nodes: int | None):
    """Replace the activation modules of ``smooth`` in place -> (replaced, left, activation classes)."""
    eco = _ecosystem_activations()
    replaced, left, done = [], [], {}

    def visit(parent: nn.Module, prefix: str):
        for name, child in list(parent.named_children()):
            path = f"{prefix}{name}"
            verdict = _classify(child, kind, eco)
            if verdict == "smooth":
                if id(child) not in done:     # a module reused in several places gets one replacement
                    done[id(child)] = _replacement(child, beta, kind, nodes)
                new = done[id(child)]
                setattr(parent, name, new)
                method = new.method if isinstance(new, GaussianActivation) else "SoftPlus"
                replaced.append((path, type(child).__name__, method))
            elif verdict == "skip":
                visit(child, path + ".")
            else:
                left.append((f"{path} ({type(child).__name__})", verdict))

    visit(smooth, "")
    return replaced, left, eco


def smooth_activations(model: nn.Module, beta: float, *, kind: str = "softplus",
                       nodes: int | None = None) -> nn.Module:
    """A deep copy of ``model`` with smooth activations (docs/methods.md §8); the original is untouched.

    kind="gaussian": every elementwise activation module a becomes a_β(x) = E[a(x + Z/√β)] (see the module
    docstring); kind="softplus": every nn.ReLU / nn.ReLU6 becomes SoftPlus_β (ReLU6 clamped at 6).  The copy
    carries ``smooth_activations_replaced`` (int) and ``smooth_activations_report`` (:class:`SmoothingReport`);
    activations left unchanged are named in a UserWarning, and a model with nothing to replace raises a
    ValueError naming ``model``.

    Args:
        model: an nn.Module.
        beta: β > 0 (β -> ∞ recovers the original).
        kind: "softplus" or "gaussian".
        nodes: the Gauss–Hermite order where no closed form exists (default 24·⌈1/β⌉, at most 256).

    Returns:
        The smoothed copy (nn.Module).

    Example:
        >>> sx.smooth_activations(model, 10.0).smooth_activations_replaced
        1
    """
    if not isinstance(model, nn.Module):
        V.fail("model", f"expected an nn.Module, got {type(model).__name__}", TypeError)
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta > 0 or not math.isfinite(beta):
        V.fail("beta", f"expected a finite number > 0, got {beta!r}")
    if kind not in ("softplus", "gaussian"):
        V.fail("kind", f"expected 'softplus' or 'gaussian', got {kind!r}")
    V.check_positive_int(nodes, "nodes", allow_none=True)
    smooth = copy.deepcopy(model)
    replaced, left, eco = _swap(smooth, beta, kind, nodes)
    calls = _functional_users(smooth, _TORCH_ELEMENTWISE + tuple(_LEFT_TORCH) + eco)
    left += [(where, "functional call, cannot be replaced") for where in calls]
    report = SmoothingReport(kind, float(beta), tuple(replaced), tuple(left))
    if not replaced:
        V.fail("model", "has no activation module to replace"
               + (": left " + "; ".join(f"{w} ({why})" for w, why in left) if left else ""))
    if left:
        warnings.warn("spectral_xai.smooth_activations: activations left unchanged: "
                      + "; ".join(f"{w} ({why})" for w, why in left), stacklevel=2)
    smooth.smooth_activations_replaced = len(replaced)
    smooth.smooth_activations_report = report
    return smooth
