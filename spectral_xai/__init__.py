"""spectral_xai: spectrally aware gradient explanations (SmoothGrad-Squared, SpectralLens, ...).

Importing the package loads the compiled ops (``torch.ops.spectral_xai.*``).
"""
import torch  # noqa: F401  (loads libtorch before the extension)

from . import _C  # noqa: F401  (registers the ops)
from . import attribute
from .engine import Estimate, estimate
from .explain import integrated_grad, smooth_grad, vanilla_grad


def build_info() -> dict:
    """Torch version, CUDA on/off, CUDA version and architectures the extension was compiled with."""
    return _C.build_info()


__version__ = "0.1.0"
__all__ = ["Estimate", "attribute", "build_info", "estimate", "integrated_grad", "smooth_grad", "vanilla_grad"]
