"""Smooth parameterisation (SPEC §8, ICCV25 §3.4): ReLU networks with SoftPlus_β or the exact
Gaussian-smoothed ReLU in place of ReLU / ReLU6."""
from __future__ import annotations

import copy
import inspect
import math
import re
import warnings

import torch
from torch import nn

from . import _validation as V

_FUNCTIONAL_RELU = re.compile(r"\b(?:F|functional|torch|nn\.functional)\.(relu6?|relu_|hardtanh)\s*\(|\.relu_?\(\)")


class SmoothReLU(nn.Module):
    """SoftPlus_β(x) = (1/β)·ln(1 + e^{βx}) (kind="softplus") or E[ReLU(x + Z/√β)] = x·Φ(x√β) + φ(x√β)/√β
    (kind="gaussian"); with ``cap`` (ReLU6: 6) the result is clamped at the cap.  β -> ∞ gives ReLU."""

    def __init__(self, beta: float, kind: str = "softplus", cap: float | None = None):
        super().__init__()
        self.beta, self.kind, self.cap = float(beta), kind, cap

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "softplus":
            y = nn.functional.softplus(x, beta=self.beta, threshold=20.0)
        else:
            z = x * math.sqrt(self.beta)
            cdf = 0.5 * (1 + torch.erf(z / math.sqrt(2)))
            pdf = torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
            y = x * cdf + pdf / math.sqrt(self.beta)
        return y if self.cap is None else y.clamp(max=self.cap)

    def extra_repr(self) -> str:
        return f"beta={self.beta:g}, kind={self.kind}" + (f", cap={self.cap:g}" if self.cap is not None else "")


def _functional_relu_users(model: nn.Module) -> list[str]:
    """Module classes whose forward source calls a functional ReLU (these calls cannot be swapped)."""
    found = []
    for cls in sorted({type(m) for m in model.modules()}, key=lambda c: c.__qualname__):
        if cls.__module__.startswith("torch.nn"):
            continue
        try:
            src = inspect.getsource(cls.forward)
        except (OSError, TypeError):
            continue
        if _FUNCTIONAL_RELU.search(src):
            found.append(f"{cls.__module__}.{cls.__qualname__}.forward")
    return found


def smooth_activations(model: nn.Module, beta: float, *, kind: str = "softplus") -> nn.Module:
    """A deep copy of ``model`` with every nn.ReLU replaced by SoftPlus_β (or the Gaussian-smoothed ReLU)
    and every nn.ReLU6 by the same clamped at 6.  The original is untouched.  Functional ReLU calls
    in custom forward methods cannot be swapped: they are named in a warning."""
    if not isinstance(model, nn.Module):
        V.fail("model", f"expected an nn.Module, got {type(model).__name__}", TypeError)
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta > 0 or not math.isfinite(beta):
        V.fail("beta", f"expected a finite number > 0, got {beta!r}")
    if kind not in ("softplus", "gaussian"):
        V.fail("kind", f"expected 'softplus' or 'gaussian', got {kind!r}")
    smooth = copy.deepcopy(model)
    replaced = 0
    for parent in smooth.modules():
        for name, child in list(parent.named_children()):
            if type(child) is nn.ReLU6 or (type(child) is nn.Hardtanh and child.min_val == 0 and child.max_val == 6):
                setattr(parent, name, SmoothReLU(beta, kind, cap=6.0))
                replaced += 1
            elif type(child) is nn.ReLU:
                setattr(parent, name, SmoothReLU(beta, kind))
                replaced += 1
    users = _functional_relu_users(smooth)
    if users:
        warnings.warn("spectral_xai.smooth_activations: functional ReLU calls cannot be replaced in "
                      + ", ".join(users), stacklevel=2)
    smooth.smooth_activations_replaced = replaced
    return smooth
