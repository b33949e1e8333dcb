"""Captum's GuidedBackprop, DeepLift, GuidedGradCam and LRP as attribution functions (the optional
``[captum]`` extra; not re-implemented here).  Like Captum, they explain the target *logit*."""
from __future__ import annotations

import torch
from torch import nn

CAPTUM_METHODS = ("GuidedBackprop", "DeepLift", "GuidedGradCam", "LRP")


def last_conv_layer(model: nn.Module) -> nn.Module:
    """The last nn.Conv2d of the model (the authors' "GradCAM" layer)."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("spectral_xai: argument 'model': has no nn.Conv2d layer for GuidedGradCam")
    return convs[-1]


def captum_attribution(name: str, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Captum's ``name`` attribution of ``target`` for x (B, C, H, W) -> (B, C, H, W), model in eval mode."""
    from captum import attr

    if name not in CAPTUM_METHODS:
        raise ValueError(f"spectral_xai: argument 'name': expected one of {CAPTUM_METHODS}, got {name!r}")
    was_training = model.training
    model.eval()
    try:
        inputs = x.detach().clone().requires_grad_(True)
        if name == "GuidedBackprop":
            out = attr.GuidedBackprop(model).attribute(inputs, target=target)
        elif name == "DeepLift":
            out = attr.DeepLift(model).attribute(inputs, target=target, baselines=torch.zeros_like(inputs))
        elif name == "GuidedGradCam":
            out = attr.GuidedGradCam(model, last_conv_layer(model)).attribute(inputs, target=target)
        else:
            out = attr.LRP(model).attribute(inputs, target=target)
    finally:
        model.train(was_training)
    return out.detach()
