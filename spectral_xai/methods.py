"""Every explanation method by name, with one signature: ``explain(name, model, x, target, **options)``
-> (B, H, W).  The registry behind the comparison tables, the Quantus ``explain_func`` and the CLI.

Names: vg, vg2 (VanillaGrad, squared), sg, sg2 (SmoothGrad; additive std ``sigma``, default 0.15),
ig, ig2, xig, xig2 (integrated gradients without / with the (x − b) factor), sl2, al (SpectralLens,
ArgLens; default the authors' ImageNet setting: σ ∈ {0, …, 1}, noise scale 0.3), sg2opt (SG² at each
image's optimal σ on the same grid), rise, occlusion.
"""
from __future__ import annotations

import numpy as np
import torch

from . import _validation as V
from .baselines import occlusion, rise
from .explain import integrated_grad, smooth_grad, vanilla_grad
from .lens import spectral_lens
from .presets import preset
from .scale import sg2_opt

DEFAULT_SG_SIGMA = 0.15


def _lens_options(options: dict) -> dict:
    kw = preset("imagenet-resnet50")
    kw.update(options)
    return kw


METHODS = {
    "vg": lambda m, x, t, **o: vanilla_grad(m, x, t, **o),
    "vg2": lambda m, x, t, **o: vanilla_grad(m, x, t, squared=True, **o),
    "sg": lambda m, x, t, sigma=DEFAULT_SG_SIGMA, **o: smooth_grad(m, x, sigma, t, squared=False, **o),
    "sg2": lambda m, x, t, sigma=DEFAULT_SG_SIGMA, **o: smooth_grad(m, x, sigma, t, squared=True, **o),
    "ig": lambda m, x, t, **o: integrated_grad(m, x, t, times_input=False, **o),
    "ig2": lambda m, x, t, **o: integrated_grad(m, x, t, times_input=False, squared=True, **o),
    "xig": lambda m, x, t, **o: integrated_grad(m, x, t, times_input=True, **o),
    "xig2": lambda m, x, t, **o: integrated_grad(m, x, t, times_input=True, squared=True, **o),
    "sl2": lambda m, x, t, **o: spectral_lens(m, x, target=t, **_lens_options(o)).sl2,
    "al": lambda m, x, t, **o: spectral_lens(m, x, target=t, **_lens_options(o)).arglens,
    "sg2opt": lambda m, x, t, **o: sg2_opt(m, x, target=t, **_lens_options(o))[0],
    "rise": lambda m, x, t, **o: rise(m, x, t, **o),
    "occlusion": lambda m, x, t, **o: occlusion(m, x, t, **o),
}


def explain(method: str, model, x: torch.Tensor, target=None, **options) -> torch.Tensor:
    """The ``method`` map of x (B, C, H, W) -> (B, H, W); ``options`` go to the method's function."""
    if method not in METHODS:
        V.fail("method", f"expected one of {sorted(METHODS)}, got {method!r}")
    return METHODS[method](model, x, target, **options)


def quantus_explain_func(model, inputs, targets, *, method: str = "sg2", device=None, **options) -> np.ndarray:
    """Quantus-compatible ``explain_func(model, inputs, targets, **kwargs)``: numpy (B, C, H, W) inputs and
    (B,) targets -> numpy (B, 1, H, W) float32 maps of ``method`` (see :data:`METHODS`)."""
    dev = torch.device(device) if device is not None else next(
        (p.device for p in model.parameters()), torch.device("cpu")) if isinstance(model, torch.nn.Module) \
        else torch.device("cpu")
    x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32, device=dev)
    t = torch.as_tensor(np.asarray(targets), dtype=torch.int64, device=dev).reshape(-1)
    return explain(method, model, x, t, **options).detach().float().cpu().numpy()[:, None]
