"""The library's conventions in one place: option lists, the default σ grid, the dtype of results, and the
two options objects every sampling front-end hands to the engine.

``SamplingOptions`` says which samples are drawn (how many, the noise keys, the noise design, when to stop);
``ExecutionOptions`` says how the passes run (chunk size, memory budget, the fast path).  Neither changes
*what* is estimated, and ``ExecutionOptions`` never changes the noise (see docs/methods.md §5).
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import MISSING, dataclass, fields, replace

import torch

from . import _validation as V

OUTPUTS = ("log_softmax", "logit", "prob")          # the explained output F of the target class
MIXING_MAX_SIGMA = {"additive": None, "convex": 1.0, "damping": 1.0}   # largest σ of each family (None: any)
MIXINGS = tuple(MIXING_MAX_SIGMA)                   # perturbation families (docs/methods.md §1)
PRIORS = ("uniform", "beta", "power")               # SpectralLens priors over σ (docs/methods.md §2)
NOISE_DESIGNS = ("iid", "lhs")                      # how the noise of one (image, σ) is drawn
LENS_ESTIMATORS = ("grid", "stratified", "neyman")  # SpectralLens estimators
SIGMA_GRID = tuple(round(0.1 * i, 10) for i in range(11))   # σ ∈ {0, 0.1, …, 1}: the authors' grid

# Defaults (docs/defaults.md says why they differ between front-ends)
DEFAULT_SG_SIGMA = 0.15          # SmoothGrad's additive std on [0, 1] images (10-20 % of the range)
LENS_NOISE_SCALE = 0.3           # the authors' ImageNet (ResNet-50) noise scale s of convex mixing
CHECK_EVERY = 8                  # samples per round of adaptive stopping
MIN_SAMPLES = 8                  # samples per image (per noisy σ) before target_error may stop it
MAX_GROUPS = 64                  # most interleaved sample groups of the statistics (the fused op's cap)
N_FRACTIONS = 21                 # deletion/insertion removal fractions 0, 0.05, …, 1
DELETION_FRACTIONS = tuple(round(i / (N_FRACTIONS - 1), 10) for i in range(N_FRACTIONS))


def one_of(names) -> str:
    """``'a', 'b' or 'c'``: the names of an option list for an error message."""
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


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
    sample_offset: sample index of the first sample (the noise of sample i is keyed by offset + i);
    target_error / min_samples: stop an image at the first check (every ``check_every`` samples) with at least
    ``min_samples`` samples where its relative Monte Carlo error ||se||_2 / ||map||_2 <= target_error
    (docs/methods.md §11); not with ``tol``; groups: 2 <= G <= :data:`MAX_GROUPS` interleaved sample groups
    of the statistics (sample i in group i mod G): more groups give per-image errors more degrees of freedom
    (a jackknife over G groups has G − 1), at the memory of G float64 maps per (image, σ) slot."""

    n_samples: int = 32
    seed: int = 0
    image_ids: object = None
    tol: float | None = None
    max_samples: int | None = None
    check_every: int = CHECK_EVERY
    noise_design: str = "iid"
    sample_offset: int = 0
    target_error: float | None = None
    min_samples: int = MIN_SAMPLES
    groups: int = 2

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
        self._check_target_error()
        g = self.groups
        if isinstance(g, bool) or not isinstance(g, int) or not 2 <= g <= MAX_GROUPS:
            V.fail("groups", f"expected an int with 2 <= groups <= {MAX_GROUPS}, got {g!r}")
        if self.noise_design == "lhs" and self.adaptive:
            V.fail("sampling", "'lhs' fixes the samples of every (image, sigma) in advance: no adaptive "
                               f"stopping ({'tol' if tol is not None else 'target_error'})")
        return self

    def _check_target_error(self) -> None:
        te = self.target_error
        ms = self.min_samples
        if isinstance(ms, bool) or not isinstance(ms, int) or ms < 2:
            V.fail("min_samples", f"expected an int >= 2 (a variance needs two samples), got {ms!r}")
        if te is None:
            return
        if isinstance(te, bool) or not isinstance(te, (int, float)) or not te > 0:
            V.fail("target_error", f"expected a number > 0 or None, got {te!r}")
        if self.tol is not None:
            V.fail("target_error", "give one stopping rule: tol or target_error, not both")

    @property
    def adaptive(self) -> bool:
        """Samples come in rounds of ``check_every`` with a stopping rule (tol or target_error)."""
        return self.tol is not None or self.target_error is not None

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


def _same(a, b) -> bool:
    """Whether two option values are the same setting (tensors, arrays and lists compared element-wise)."""
    if a is b:
        return True
    if any(isinstance(v, (torch.Tensor, list, tuple)) or hasattr(v, "__array__") for v in (a, b)):
        try:
            return torch.equal(torch.as_tensor(a).cpu(), torch.as_tensor(b).cpu())
        except (TypeError, ValueError, RuntimeError):
            return False
    try:
        return bool(a == b)
    except (TypeError, ValueError, RuntimeError):
        return False


def _flat_name(field_name: str) -> str:
    """The front-ends' keyword of an options field (``noise_design`` is spelled ``sampling``)."""
    return "sampling" if field_name == "noise_design" else field_name


def _expand(obj, arg: str, front_end: str, accepted, kwargs: dict) -> None:
    """Write the fields of options object ``obj`` (given as ``arg=``) into ``kwargs`` as flat keywords;
    a ValueError if a flat keyword gives the same setting differently, or if ``front_end`` has no keyword
    for a field set away from its default."""
    for f in fields(obj):
        name, value = _flat_name(f.name), getattr(obj, f.name)
        if name in kwargs:
            if not _same(kwargs[name], value):
                V.fail(name, f"given twice, differently: {name}={kwargs[name]!r} and {arg}.{f.name}={value!r} "
                             "(give it once)")
        elif accepted is None or name in accepted:
            kwargs[name] = value
        elif f.default is not MISSING and not _same(value, f.default):
            V.fail(arg, f"{front_end} has no setting {f.name!r} (got {arg}.{f.name}={value!r})")


def accepts_options(fn):
    """Let front-end ``fn`` take ``sampling=SamplingOptions(...)`` and ``execution=ExecutionOptions(...)``
    besides its flat keywords (``n_samples=``, ``seed=``, ``batch_size=``, ...).

    The objects are expanded into the flat keywords before ``fn`` runs, so both spellings give the same
    result.  An object gives every one of its fields (its defaults included: ``SamplingOptions()`` means
    n_samples=32 also where ``fn``'s own default differs); a setting given both ways must agree (else a
    ValueError naming it), and a field ``fn`` has no keyword for must keep its default.  A string ``sampling=``
    stays the noise design ("iid" / "lhs") where ``fn`` takes one."""
    sig = inspect.signature(fn)
    params = sig.parameters
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    accepted = None if var_kw else frozenset(params)
    objects = {"sampling": SamplingOptions, "execution": ExecutionOptions}

    @functools.wraps(fn)
    def front_end(*args, **kwargs):
        for arg, cls in objects.items():
            obj = kwargs.get(arg)
            if isinstance(obj, cls):
                del kwargs[arg]
                _expand(obj, arg, fn.__name__, accepted, kwargs)
            elif arg == "sampling" and ("sampling" in params or var_kw):
                continue                                   # the noise design, checked by fn
            elif obj is not None:
                V.fail(arg, f"expected {cls.__name__} or None, got {type(obj).__name__}", TypeError)
            else:
                kwargs.pop(arg, None)
        return fn(*args, **kwargs)

    extra = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None) for n in objects if n not in params]
    plist = list(params.values())
    at = len(plist) - 1 if var_kw else len(plist)
    front_end.__signature__ = sig.replace(parameters=plist[:at] + extra + plist[at:])
    return front_end
