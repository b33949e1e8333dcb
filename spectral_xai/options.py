"""The library's conventions in one place: option lists, the default σ grid, the dtype of results, and the
two options objects every sampling front-end hands to the engine.

``SamplingOptions`` says which samples are drawn (how many, the noise keys, the noise design, when to stop);
``ExecutionOptions`` says how the passes run (chunk size, memory budget, the fast path).  Neither changes
*what* is estimated, and ``ExecutionOptions`` never changes the noise (see docs/methods.md §5).
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch

from . import _validation as V

OUTPUTS = ("log_softmax", "logit", "prob")          # the explained output F of the target class
MIXINGS = ("additive", "convex", "damping")         # perturbation families (docs/methods.md §1)
PRIORS = ("uniform", "beta", "power")               # SpectralLens priors over σ (docs/methods.md §2)
NOISE_DESIGNS = ("iid", "lhs")                      # how the noise of one (image, σ) is drawn
LENS_ESTIMATORS = ("grid", "stratified", "neyman")  # SpectralLens estimators
SIGMA_GRID = tuple(round(0.1 * i, 10) for i in range(11))   # σ ∈ {0, 0.1, …, 1}: the authors' grid


def sigma_grid() -> torch.Tensor:
    """The default σ grid (11,) float64."""
    return torch.tensor(SIGMA_GRID, dtype=torch.float64)


def output_dtype(x: torch.Tensor) -> torch.dtype:
    """Results (maps, measures) are float64 for float64 inputs and float32 otherwise."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


@dataclass(frozen=True)
class SamplingOptions:
    """Which samples the engine draws.

    n_samples: samples per (image, σ) (the cap with ``tol``); seed: 0 <= seed < 2^64; image_ids: None or (B,)
    ints in [0, 2^32) (default arange(B)); tol / max_samples / check_every: adaptive stopping per (image, σ)
    (``max_samples`` defaults to ``n_samples``); noise_design: one of :data:`NOISE_DESIGNS`;
    sample_offset: sample index of the first sample (the noise of sample i is keyed by offset + i)."""

    n_samples: int = 32
    seed: int = 0
    image_ids: object = None
    tol: float | None = None
    max_samples: int | None = None
    check_every: int = 8
    noise_design: str = "iid"
    sample_offset: int = 0

    def checked(self) -> "SamplingOptions":
        """Validate every field (errors name the argument); returns self."""
        V.check_positive_int(self.n_samples, "n_samples")
        V.check_seed(self.seed)
        V.check_positive_int(self.check_every, "check_every")
        V.check_positive_int(self.max_samples, "max_samples", allow_none=True)
        if self.noise_design not in NOISE_DESIGNS:
            V.fail("sampling", f"expected one of {NOISE_DESIGNS}, got {self.noise_design!r}")
        off = self.sample_offset
        if isinstance(off, bool) or not isinstance(off, int) or off < 0:
            V.fail("sample_offset", f"expected an int >= 0, got {off!r}")
        tol = self.tol
        if tol is not None and (isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0):
            V.fail("tol", f"expected a number >= 0 or None, got {tol!r}")
        if self.noise_design == "lhs" and tol is not None:
            V.fail("sampling", "'lhs' fixes the samples of every (image, sigma) in advance: no adaptive "
                               "stopping (tol)")
        return self

    @property
    def limit(self) -> int:
        """The most samples one (image, σ) may take."""
        return self.n_samples if self.max_samples is None else self.max_samples

    def with_(self, **changes) -> "SamplingOptions":
        return replace(self, **changes)


@dataclass(frozen=True)
class ExecutionOptions:
    """How the passes run: batch_size (rows per chunk; None = from the memory budget), memory_budget
    (bytes; None = half the free GPU memory, or 2 GiB on CPU), fast (None or a FastPath / dict)."""

    batch_size: int | None = None
    memory_budget: int | None = None
    fast: object = None

    def checked(self) -> "ExecutionOptions":
        V.check_positive_int(self.batch_size, "batch_size", allow_none=True)
        V.check_positive_int(self.memory_budget, "memory_budget", allow_none=True)
        return self


SAMPLING_KEYS = tuple(f.name for f in fields(SamplingOptions))
EXECUTION_KEYS = tuple(f.name for f in fields(ExecutionOptions))


def split_options(options: dict) -> tuple[SamplingOptions, ExecutionOptions, dict]:
    """Keyword options of a front-end -> (SamplingOptions, ExecutionOptions, the rest).  ``sampling=`` (the
    public name of the noise design) is accepted for ``noise_design``."""
    opts = dict(options)
    if "sampling" in opts:
        opts["noise_design"] = opts.pop("sampling")
    samp = {k: opts.pop(k) for k in SAMPLING_KEYS if k in opts}
    exe = {k: opts.pop(k) for k in EXECUTION_KEYS if k in opts}
    return SamplingOptions(**samp).checked(), ExecutionOptions(**exe).checked(), opts
