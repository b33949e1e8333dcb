"""Baselines: Captum's explainers (``captum_attribution``) and the finite-difference explainers RISE and
Occlusion (``rise``, ``occlusion``) on the engine's seed / image-id contract."""
from .captum_methods import CAPTUM_METHODS, captum_attribution, last_conv_layer
from .finite_difference import occlusion, rise, rise_masks

__all__ = ["CAPTUM_METHODS", "captum_attribution", "last_conv_layer", "occlusion", "rise", "rise_masks"]
