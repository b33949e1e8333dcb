"""Explainers of other libraries, behind one signature: ``fn(model, x, target) -> (B, C, H, W)``."""
from .captum_methods import CAPTUM_METHODS, captum_attribution, last_conv_layer

__all__ = ["CAPTUM_METHODS", "captum_attribution", "last_conv_layer"]
