"""Thin wrappers of the compiled ops, their fake kernels and pure-PyTorch references."""
from .accumulate import MAX_GROUPS, accumulate_, accumulate_reference
from .perturb import MIXINGS, perturb, perturb_reference
from .spectrum import (radial_bins, radial_power_spectrum, radial_power_spectrum_reference, rank_normalize,
                       rank_normalize_reference)

__all__ = [
    "MAX_GROUPS", "MIXINGS", "accumulate_", "accumulate_reference", "perturb", "perturb_reference", "radial_bins",
    "radial_power_spectrum", "radial_power_spectrum_reference", "rank_normalize", "rank_normalize_reference",
]
