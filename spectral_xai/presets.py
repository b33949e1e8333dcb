"""The authors' settings (ECCV24) by name, as keyword arguments for the sampling functions.

    sx.spectral_lens(model, x, **sx.preset("imagenet-resnet50"))
    sx.optimal_sigma(model, x, **sx.preset("imagenet-resnet50", "authors-code"))

Convex mixing x̃ = (1 − σ) x + σ s ε with the noise scale s of each setting, σ grid {0, 0.1, …, 1}.
"""
from __future__ import annotations


from . import _validation as V
from .options import LENS_NOISE_SCALE, sigma_grid

_SETTINGS = {
    "imagenet-resnet50": {"noise_scale": LENS_NOISE_SCALE},
    "imagenet-vit-b16": {"noise_scale": 0.5},
    "food101": {"noise_scale": 0.4},
}
_VARIANTS = {
    "paper": {},                            # SL² with the uniform prior, CS exponent 5/2 (the paper)
    "authors-code": {"exponent": 1.0},      # the exponent the authors' code used for σ*
    "slt2": {"prior": "power", "power": 2.5},  # the authors' SLT² prior
    "beta22": {"prior": "beta", "beta": (2.0, 2.0)},
}
PRESETS = tuple(_SETTINGS)


def preset(name: str, variant: str = "paper") -> dict:
    """The authors' settings (ECCV24) by name, as keyword arguments for the sampling functions.

    Args:
        name: one of :data:`PRESETS` ("imagenet-resnet50", "imagenet-vit-b16", "food101").
        variant: "paper", "authors-code" (CS exponent 1), "slt2" (power prior 5/2) or "beta22".

    Returns:
        dict: sigmas (11,) float64 {0, 0.1, …, 1}, noise_scale, and the variant's prior / exponent.

    Example:
        >>> sx.preset("imagenet-resnet50")["noise_scale"]
        0.3
    """
    if name not in _SETTINGS:
        V.fail("name", f"expected one of {PRESETS}, got {name!r}")
    if variant not in _VARIANTS:
        V.fail("variant", f"expected one of {tuple(_VARIANTS)}, got {variant!r}")
    return {"sigmas": sigma_grid(), **_SETTINGS[name], **_VARIANTS[variant]}
