"""spectral_xai: spectrally aware gradient explanations (SmoothGrad-Squared, SpectralLens, ...).

Importing the package loads the compiled ops (``torch.ops.spectral_xai.*``).
"""
import torch  # noqa: F401  (loads libtorch before the extension)


def _missing_extension(err: ImportError) -> ImportError:
    """The ImportError to raise when the compiled ``_C`` is absent here: says when a source checkout (no
    build in it) shadows an installed build, as it does from the repository root, and what to do."""
    import importlib.machinery
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent
    if not (here.parent / "pyproject.toml").exists():
        return ImportError(f"spectral_xai: the compiled extension _C is missing from {here} ({err}); "
                           "reinstall the package (pip install --no-build-isolation .)")
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    builds = [Path(p) / "spectral_xai" for p in sys.path if p and Path(p).resolve() != here.parent]
    built = next((str(b) for b in builds if b.is_dir() and any(f.name.startswith("_C") and f.name.endswith(suffixes)
                                                           for f in b.iterdir())), None)
    where = f"the built package is installed at {built}" if built else "no built copy was found on sys.path"
    return ImportError(
        f"spectral_xai: imported from the source tree {here}, which has no compiled extension _C: the current "
        f"directory (or PYTHONPATH) puts the repository ahead of the installed build ({where}). Run from another "
        "directory, or with `python -I` (e.g. `.venv/bin/python -I -m spectral_xai info`); "
        "`python3 dev.py build` builds and installs the sources into .venv.")


try:
    from . import _C  # noqa: F401  (registers the ops)
except ImportError as _err:
    if "_C" not in str(_err):
        raise
    raise _missing_extension(_err) from None
from . import attribute
from .engine import Estimate, estimate
from . import metrics
from .baselines import occlusion, rise
from .fastpath import FastPath
from .explain import integrated_grad, smooth_grad, vanilla_grad
from .lens import SpectralLensResult, prior_weights, spectral_lens
from .methods import METHODS, explain, quantus_explain_func
from .metrics import inconsistency, scale_rank_correlation
from .presets import PRESETS, preset
from .smooth import SmoothReLU, smooth_activations
from .spectrum import (exact_gap, expected_frequency, explanation_gap, radial_power_spectrum, rank_normalize)
from .scale import NoiseCutoff, OptimalSigma, cs_curves, noise_cutoff, optimal_sigma, sg2_opt


def build_info() -> dict:
    """Torch version, CUDA on/off, CUDA version and architectures the extension was compiled with."""
    return _C.build_info()


__version__ = "0.1.0"
__all__ = [
    "Estimate", "FastPath", "NoiseCutoff", "OptimalSigma", "PRESETS", "SpectralLensResult", "attribute", "build_info",
    "cs_curves", "estimate",
    "inconsistency", "integrated_grad", "metrics", "noise_cutoff", "optimal_sigma", "preset", "prior_weights",
    "scale_rank_correlation", "sg2_opt", "smooth_grad", "spectral_lens", "vanilla_grad", "SmoothReLU",
    "exact_gap", "expected_frequency", "explanation_gap", "radial_power_spectrum", "rank_normalize",
    "smooth_activations", "occlusion", "rise", "METHODS", "explain", "quantus_explain_func",
]
