"""spectral_xai: spectrally aware gradient explanations (SmoothGrad-Squared, SpectralLens, ...).

Importing the package loads the compiled ops (``torch.ops.spectral_xai.*``).
"""
import torch  # noqa: F401  (loads libtorch before the extension)

try:
    from . import _C  # noqa: F401  (registers the ops)
except ImportError as _err:
    if "_C" not in str(_err):
        raise
    from ._source_tree import missing_extension_error
    raise missing_extension_error(_err) from None
from ._version import __version__  # noqa: F401
from . import attribute
from .engine import Estimate, estimate
from . import metrics
from .fastpath import FastPath
from .gradients import integrated_grad, smooth_grad, vanilla_grad
from .lens import SpectralLensResult, prior_weights, spectral_lens
from .methods import METHODS, MethodSpec, explain, quantus_explain_func
from .metrics import inconsistency, scale_rank_correlation
from .noise_level import (NoiseCutoff, OptimalSigma, SigmaStar, admissible_sigmas, cs_curves, map_correlation,
                          noise_cutoff, optimal_sigma, sg2_opt, sigma_star)
from .options import ExecutionOptions, SamplingOptions
from .perturbation_methods import occlusion, rise
from .presets import PRESETS, preset
from .activation_smoothing import GaussianActivation, SmoothReLU, SmoothingReport, smooth_activations
from .mc_stats import MapStats
from .ef_error import EFError, ef_with_error
from .spectrum import (exact_gap, expected_frequency, explanation_gap, radial_power_spectrum, rank_normalize)


def build_info() -> dict:
    """The installed version and how the extension was built (``spectral-xai --version`` says the same in one
    line).

    Returns:
        dict: spectral_xai (the installed version), torch_version (the torch it was compiled against), cuda
        (bool: the CUDA kernels are in the build), cuda_version, cuda_archs (list), compiler.

    Example:
        >>> sorted(sx.build_info())
        ['compiler', 'cuda', 'cuda_archs', 'cuda_version', 'spectral_xai', 'torch_version']
    """
    return {"spectral_xai": __version__, **_C.build_info()}


__all__ = [
    "Estimate", "ExecutionOptions", "FastPath", "MapStats", "MethodSpec", "SamplingOptions", "sigma_star", "NoiseCutoff", "OptimalSigma", "PRESETS", "SpectralLensResult", "attribute", "build_info",
    "cs_curves", "estimate", "SigmaStar", "admissible_sigmas", "map_correlation",
    "inconsistency", "integrated_grad", "metrics", "noise_cutoff", "optimal_sigma", "preset", "prior_weights",
    "scale_rank_correlation", "sg2_opt", "smooth_grad", "spectral_lens", "vanilla_grad", "SmoothReLU",
    "exact_gap", "expected_frequency", "explanation_gap", "radial_power_spectrum", "rank_normalize",
    "smooth_activations", "GaussianActivation", "SmoothingReport", "occlusion", "rise", "METHODS", "explain",
    "quantus_explain_func", "EFError", "ef_with_error",
]
