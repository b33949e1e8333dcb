"""The table of methods: one :class:`MethodSpec` per explanation method, read by :func:`explain`, the
Captum-shaped classes (:mod:`spectral_xai.attribute`), the Quantus ``explain_func``, the comparison tables,
the audit (its options, passes per image, which maps rank pixels, how their Monte Carlo error is known),
the CLI (``spectral-xai methods``, the audit's ``--methods``) and the report (labels, estimators).  Add a
method here and every one of them knows it.

Defaults (docs/defaults.md says why they differ): the functions explain log_softmax of the target and
reduce channels; ``explain("sg"/"sg2")`` and the audit use σ = 0.15 (additive, on images in [0, 1]);
SpectralLens, ArgLens and SG²_opt use the authors' ImageNet setting (convex mixing, σ ∈ {0, …, 1}, noise scale
0.3).  The Captum-shaped classes keep Captum's convention instead (:data:`CAPTUM_CONVENTION`: the target
*logit*, input-shaped attributions, SmoothGrad ``stdevs`` 1.0).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import torch

from . import _validation as V
from .gradients import integrated_grad, smooth_grad, vanilla_grad
from .lens import spectral_lens
from .noise_level import sg2_opt
from .options import DEFAULT_SG_SIGMA
from .perturbation_methods import occlusion, rise
from .presets import preset

CAPTUM_CONVENTION = MappingProxyType({"output": "logit", "reduce_channels": False})
CAPTUM_SG_STDEVS = 1.0                     # Captum's NoiseTunnel default ``stdevs``
FAMILIES = ("gradient", "lens", "perturbation")
# What sets a method's model passes per image: one pass; the noise samples; the noise samples per σ of the
# SpectralLens grid; the path's quadrature steps; the random masks; the sliding windows (image-dependent).
BUDGETS = ("one", "samples", "samples_per_sigma", "steps", "masks", "windows")
MC_KINDS = ("halves", "deterministic", "not estimated")


@dataclass(frozen=True)
class MethodSpec:
    """name: the key (``"sg2"``); label: display name (``"SG²"``); summary: one line; family: "gradient"
    (one engine call), "lens" (from one SpectralLens call) or "perturbation" (forward passes only);
    compute(model, x, target, **options) -> (B, H, W); defaults: options this table adds to the function's
    own; budget: what sets the model passes per image (one of :data:`BUDGETS`); ranks_pixels: False for
    maps that are not an importance (no deletion/insertion); seeded: takes ``seed``; mc: how the Monte Carlo
    error of its map is known (one of :data:`MC_KINDS`: "halves", the samples split into two halves with
    standard errors; "deterministic", no noise, exact; "not estimated", sampled without statistics)."""

    name: str
    label: str
    summary: str
    family: str
    compute: Callable = field(repr=False)
    defaults: Mapping = field(default_factory=dict)
    budget: str = "one"
    ranks_pixels: bool = True
    seeded: bool = False
    mc: str = "deterministic"

    def __post_init__(self):
        if self.budget not in BUDGETS or self.mc not in MC_KINDS or (self.mc == "deterministic") == self.seeded:
            raise ValueError(f"MethodSpec {self.name!r}: budget {self.budget!r} or mc {self.mc!r} is not one of "
                             f"{BUDGETS} / {MC_KINDS}, or mc contradicts seeded={self.seeded}")

    def __call__(self, model, x, target=None, **options) -> torch.Tensor:
        """The (B, H, W) map: ``compute`` with this table's defaults under the caller's ``options``."""
        return self.compute(model, x, target, **{**self.defaults, **options})


def _lens(field_name: str):
    return lambda m, x, t, **o: getattr(spectral_lens(m, x, target=t, **o), field_name)


_LENS_DEFAULTS = MappingProxyType(preset("imagenet-resnet50"))
_SG = MappingProxyType({"sigma": DEFAULT_SG_SIGMA})

_SPECS = (
    MethodSpec("vg", "VG", "VanillaGrad: the gradient of the target's output at the image", "gradient",
               lambda m, x, t, **o: vanilla_grad(m, x, t, **o)),
    MethodSpec("vg2", "VG²", "VanillaGrad squared (g², summed over channels)", "gradient",
               lambda m, x, t, **o: vanilla_grad(m, x, t, squared=True, **o)),
    MethodSpec("sg", "SG", "SmoothGrad: mean gradient under additive Gaussian noise", "gradient",
               lambda m, x, t, sigma, **o: smooth_grad(m, x, sigma, t, squared=False, **o), _SG, "samples",
               seeded=True, mc="halves"),
    MethodSpec("sg2", "SG²", "SmoothGrad-Squared: mean squared gradient under additive Gaussian noise", "gradient",
               lambda m, x, t, sigma, **o: smooth_grad(m, x, sigma, t, squared=True, **o), _SG, "samples",
               seeded=True, mc="halves"),
    MethodSpec("ig", "IG", "Integrated Gradients without the (x − b) factor: ∫ g along the path from the baseline", "gradient",
               lambda m, x, t, **o: integrated_grad(m, x, t, times_input=False, **o), budget="steps"),
    MethodSpec("ig2", "IG²", "Integrated squared gradients: ∫ g² along the path", "gradient",
               lambda m, x, t, **o: integrated_grad(m, x, t, times_input=False, squared=True, **o),
               budget="steps"),
    MethodSpec("xig", "XIG", "Integrated Gradients: (x − b) ⊙ ∫ g, b the baseline (black by default)", "gradient",
               lambda m, x, t, **o: integrated_grad(m, x, t, times_input=True, **o), budget="steps"),
    MethodSpec("xig2", "XIG²", "(x − b)² ⊙ ∫ g², the squared-gradient version of XIG", "gradient",
               lambda m, x, t, **o: integrated_grad(m, x, t, times_input=True, squared=True, **o),
               budget="steps"),
    MethodSpec("sl2", "SL²", "SpectralLens: prior-weighted mean of SG² over the σ grid", "lens", _lens("sl2"),
               _LENS_DEFAULTS, "samples_per_sigma", seeded=True, mc="halves"),
    MethodSpec("al", "ArgLens", "ArgLens: per pixel, the σ of the grid where its SG² is largest (a scale map)", "lens",
               _lens("arglens"), _LENS_DEFAULTS, "samples_per_sigma", ranks_pixels=False, seeded=True,
               mc="not estimated"),
    MethodSpec("sg2opt", "SG²_opt", "SG² at each image's optimal σ (argmax of CS(σ)) on the same grid", "lens",
               lambda m, x, t, **o: sg2_opt(m, x, target=t, **o)[0], _LENS_DEFAULTS, "samples_per_sigma",
               seeded=True, mc="halves"),
    MethodSpec("rise", "RISE", "RISE: mean output under random masks, weighted by the masks", "perturbation",
               lambda m, x, t, **o: rise(m, x, t, **o), budget="masks", seeded=True,
               mc="not estimated"),
    MethodSpec("occlusion", "Occlusion", "Occlusion: output drop when a sliding patch is blacked out",
               "perturbation", lambda m, x, t, **o: occlusion(m, x, t, **o), budget="windows"),
)
METHODS: Mapping[str, MethodSpec] = MappingProxyType({s.name: s for s in _SPECS})
METHOD_NAMES = tuple(METHODS)
LENS_METHODS = tuple(n for n, s in METHODS.items() if s.family == "lens")


def method_spec(method: str) -> MethodSpec:
    """The :class:`MethodSpec` of ``method``; a ValueError naming ``method`` if there is none."""
    if method not in METHODS:
        V.fail("method", f"expected one of {sorted(METHODS)}, got {method!r}")
    return METHODS[method]


def label(method: str) -> str:
    """Display name of a method key (the key itself if unknown)."""
    return METHODS[method].label if method in METHODS else method


def explain(method: str, model, x: torch.Tensor, target=None, **options) -> torch.Tensor:
    """The map of a method of the table (:data:`METHODS`) with the table's defaults.

    Args:
        method: a key of :data:`METHODS` ("vg", "sg2", "sl2", "rise", ...).
        model: a classifier x (B, C, H, W) -> logits (B, K).
        x: images (B, C, H, W).
        target: None (the clean arg-max), an int or (B,) class indices.
        **options: keywords of the method's function (they override the table's defaults).

    Returns:
        (B, H, W) map.

    Example:
        >>> sx.explain("sg2", model, x, n_samples=4).shape
        torch.Size([2, 8, 8])
    """
    return method_spec(method)(model, x, target, **options)


def quantus_explain_func(model, inputs, targets, *, method: str = "sg2", device=None, **options) -> np.ndarray:
    """Quantus-compatible ``explain_func(model, inputs, targets, **kwargs)``.

    Args:
        model: a classifier x (B, C, H, W) -> logits (B, K).
        inputs: numpy (B, C, H, W) images.
        targets: (B,) class indices.
        method: a key of :data:`METHODS` (in ``quantus.evaluate`` the keys of ``xai_methods`` arrive as it).
        device: where to compute (default: the model's).
        **options: keywords of the method's function.

    Returns:
        numpy (B, 1, H, W) float32 maps.  EF and the explanation gap as Quantus metrics:
        :mod:`spectral_xai.integrations.quantus` (docs/integrations.md §2).

    Example:
        >>> sx.quantus_explain_func(model, x.numpy(), [0, 1], method="vg").shape
        (2, 1, 8, 8)
    """
    dev = torch.device(device) if device is not None else next(
        (p.device for p in model.parameters()), torch.device("cpu")) if isinstance(model, torch.nn.Module) \
        else torch.device("cpu")
    x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32, device=dev)
    t = torch.as_tensor(np.asarray(targets), dtype=torch.int64, device=dev).reshape(-1)
    return explain(method, model, x, t, **options).detach().float().cpu().numpy()[:, None]
