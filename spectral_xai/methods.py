"""The table of methods: one :class:`MethodSpec` per explanation method, read by :func:`explain`, the
Captum-shaped classes (:mod:`spectral_xai.attribute`), the Quantus ``explain_func``, the comparison tables,
the audit (its options, passes per image, which maps rank pixels), the CLI (``spectral-xai methods``) and the
report (labels).  Add a method here and every one of them knows it.

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
from .perturbation import occlusion, rise
from .presets import preset

DEFAULT_SG_SIGMA = 0.15                    # additive std on [0, 1] images (SmoothGrad's 10-20 % of the range)
CAPTUM_CONVENTION = MappingProxyType({"output": "logit", "reduce_channels": False})
CAPTUM_SG_STDEVS = 1.0                     # Captum's NoiseTunnel default ``stdevs``
FAMILIES = ("gradient", "lens", "perturbation")


@dataclass(frozen=True)
class MethodSpec:
    """name: the key (``"sg2"``); label: display name (``"SG²"``); summary: one line; family: "gradient"
    (one engine call), "lens" (from one SpectralLens call) or "perturbation" (forward passes only);
    compute(model, x, target, **options) -> (B, H, W); defaults: options this table adds to the function's
    own; passes: which audit setting gives the model passes per image ("samples", "samples_per_sigma",
    "ig_steps", "rise_masks", "one", "windows"); ranks_pixels: False for maps that are not an importance
    (no deletion/insertion); seeded: takes ``seed``."""

    name: str
    label: str
    summary: str
    family: str
    compute: Callable = field(repr=False)
    defaults: Mapping = field(default_factory=dict)
    passes: str = "one"
    ranks_pixels: bool = True
    seeded: bool = False

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
               seeded=True),
    MethodSpec("sg2", "SG²", "SmoothGrad-Squared: mean squared gradient under additive Gaussian noise", "gradient",
               lambda m, x, t, sigma, **o: smooth_grad(m, x, sigma, t, squared=True, **o), _SG, "samples",
               seeded=True),
    MethodSpec("ig", "IG", "Integrated Gradients without the (x − b) factor: ∫ g along the path from the baseline", "gradient",
               lambda m, x, t, **o: integrated_grad(m, x, t, times_input=False, **o), passes="ig_steps"),
    MethodSpec("ig2", "IG²", "Integrated squared gradients: ∫ g² along the path", "gradient",
               lambda m, x, t, **o: integrated_grad(m, x, t, times_input=False, squared=True, **o),
               passes="ig_steps"),
    MethodSpec("xig", "XIG", "Integrated Gradients: (x − b) ⊙ ∫ g, b the baseline (black by default)", "gradient",
               lambda m, x, t, **o: integrated_grad(m, x, t, times_input=True, **o), passes="ig_steps"),
    MethodSpec("xig2", "XIG²", "(x − b)² ⊙ ∫ g², the squared-gradient version of XIG", "gradient",
               lambda m, x, t, **o: integrated_grad(m, x, t, times_input=True, squared=True, **o),
               passes="ig_steps"),
    MethodSpec("sl2", "SL²", "SpectralLens: prior-weighted mean of SG² over the σ grid", "lens", _lens("sl2"),
               _LENS_DEFAULTS, "samples_per_sigma", seeded=True),
    MethodSpec("al", "ArgLens", "ArgLens: per pixel, the σ of the grid where its SG² is largest (a scale map)", "lens",
               _lens("arglens"), _LENS_DEFAULTS, "samples_per_sigma", ranks_pixels=False, seeded=True),
    MethodSpec("sg2opt", "SG²_opt", "SG² at each image's optimal σ (argmax of CS(σ)) on the same grid", "lens",
               lambda m, x, t, **o: sg2_opt(m, x, target=t, **o)[0], _LENS_DEFAULTS, "samples_per_sigma",
               seeded=True),
    MethodSpec("rise", "RISE", "RISE: mean output under random masks, weighted by the masks", "perturbation",
               lambda m, x, t, **o: rise(m, x, t, **o), passes="rise_masks", seeded=True),
    MethodSpec("occlusion", "Occlusion", "Occlusion: output drop when a sliding patch is blacked out",
               "perturbation", lambda m, x, t, **o: occlusion(m, x, t, **o), passes="windows"),
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
    """The ``method`` map of x (B, C, H, W) -> (B, H, W); ``options`` go to the method's function."""
    return method_spec(method)(model, x, target, **options)


def quantus_explain_func(model, inputs, targets, *, method: str = "sg2", device=None, **options) -> np.ndarray:
    """Quantus-compatible ``explain_func(model, inputs, targets, **kwargs)``: numpy (B, C, H, W) inputs and
    (B,) targets -> numpy (B, 1, H, W) float32 maps of ``method`` (see :data:`METHODS`).  In
    ``quantus.evaluate`` the keys of ``xai_methods`` arrive as ``method``.  EF and the explanation gap as Quantus
    metrics: :mod:`spectral_xai.integrations.quantus` (docs/integrations.md §2)."""
    dev = torch.device(device) if device is not None else next(
        (p.device for p in model.parameters()), torch.device("cpu")) if isinstance(model, torch.nn.Module) \
        else torch.device("cpu")
    x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32, device=dev)
    t = torch.as_tensor(np.asarray(targets), dtype=torch.int64, device=dev).reshape(-1)
    return explain(method, model, x, t, **options).detach().float().cpu().numpy()[:, None]
