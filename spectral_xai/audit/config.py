"""The audit's configuration: one dataclass equal to the CLI flags and to a TOML file (``--config run.toml``).

Fields that change results (the model, data, methods, sampling, seed, device type, dtype, shard size, ...)
form the run's *key*; a run directory refuses to resume under a different key.  Runtime knobs (out,
resume, batch size, workers, quiet) are not part of it: the engine's results do not depend on them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..fastpath import COMPILE_MODES
from ..methods import LENS_METHODS, METHODS
from ..options import OUTPUTS, PRIORS, SIGMA_GRID
from .errors import fail

BUILTIN_DATASETS = ("skimage", "fashion-mnist")
MEASURES = ("ef", "gap", "sigma_opt", "inconsistency", "deletion", "insertion")
NORMALIZATIONS = {"none": None, "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
                  "auto": None}   # auto: the model's declared normalisation (audit/model.py with_model_defaults)
DTYPES = ("float32", "float64", "bfloat16", "float16")
MAP_DTYPES = ("float16", "bfloat16", "float32")
LABEL_SOURCES = ("none", "folders")
TARGETS = ("pred", "label")
DELETION_BASELINES = ("blur", "black")
AUTOCAST_DTYPES = ("bfloat16", "float16")
CHOICES = {  # option -> its allowed values (the CLI's choices come from here too)
    "labels": LABEL_SOURCES, "target": TARGETS, "output": OUTPUTS, "prior": PRIORS,
    "deletion_baseline": DELETION_BASELINES, "dtype": DTYPES, "autocast": (None, *AUTOCAST_DTYPES),
    "compile": (None, *COMPILE_MODES), "maps_dtype": MAP_DTYPES,
}
TARGET_ERROR_MIN_SAMPLES = 8   # samples per image (per noisy σ) before --target-error may stop it
INCONSISTENCY_DOWNSAMPLE = 5   # the inconsistency measure's area down-sampling (its default; docs/methods.md §6)
RUNTIME_FIELDS = ("out", "resume", "batch_size", "num_workers", "quiet", "report", "config")


def _default_sigmas() -> list[float]:
    return list(SIGMA_GRID)


@dataclass
class AuditConfig:
    """Everything an audit run is computed with.  See ``spectral-xai audit --help`` for each field."""

    data: str = "skimage"
    out: str = "audit_out"
    model: str | None = None        # None: default_model(data), the built-in model made for the data
    weights: str | None = None
    size: int | None = None         # None: the model's declared input size, else 224 (with_model_defaults)
    normalize: str = "auto"
    mean: list[float] | None = None
    std: list[float] | None = None
    grayscale: bool = False
    labels: str = "none"
    labels_are_model_indices: bool = False   # the dataset's labels are the model's class indices (no name check)
    target: str = "pred"
    methods: list[str] = field(default_factory=lambda: ["vg", "sg2", "sl2", "al", "sg2opt"])
    measures: list[str] = field(default_factory=lambda: list(MEASURES))
    sigmas: list[float] = field(default_factory=_default_sigmas)
    samples: int = 16
    target_error: float | None = None
    max_samples: int | None = None
    prior: str = "uniform"
    noise_scale: float = 0.3
    sg_sigma: float = 0.15
    ig_steps: int = 32
    rise_masks: int = 1000
    output: str = "log_softmax"
    deletion_baseline: str = "blur"
    erosion: int = 1
    fractions: int = 21
    gap_exclude_dc: bool = False    # ΔEF columns from EFs without the DC ring (docs/methods.md §7)
    auc_mc_error: bool = False      # deletion/insertion AUC of each half's map: <m>_deletion/insertion_mc_error
    keep_maps: list[str] | None = None
    maps_dtype: str = "float16"
    panels: int = 8
    shard_size: int = 16
    seed: int = 0
    device: str = "auto"
    dtype: str = "float32"
    autocast: str | None = None
    channels_last: bool = False
    compile: str | None = None
    limit: int | None = None
    batch_size: int | None = None
    num_workers: int | None = None
    resume: bool = False
    quiet: bool = False
    report: bool = True
    config: str | None = None
    split: str | None = None               # hf:PATH: the DatasetDict's split (default "train" or the only one)
    image_column: str | None = None        # hf:PATH: default image, img or pixel_values
    label_column: str | None = None        # hf:PATH: default label, labels or fine_label

    def __post_init__(self):
        if self.model is None:
            self.model = default_model(self.data)

    def validate(self) -> "AuditConfig":
        """Check every field; raise ValueError naming the field.  Returns self."""
        unknown = [m for m in self.methods if m not in METHODS]
        if not self.methods or unknown:
            fail("methods", f"unknown {unknown}; expected some of {sorted(METHODS)}")
        if len(set(self.methods)) != len(self.methods):
            fail("methods", "contains duplicates")
        bad = [m for m in self.measures if m not in MEASURES]
        if bad:
            fail("measures", f"unknown {bad}; expected some of {list(MEASURES)}")
        for name in ("size", "samples", "ig_steps", "rise_masks", "shard_size", "erosion"):
            v = getattr(self, name)
            if name == "size" and v is None:
                continue
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                fail(name, f"expected a positive integer, got {v!r}")
        if self.size is not None and self.size < self.min_size():
            why = (f" (the inconsistency measure down-samples by {INCONSISTENCY_DOWNSAMPLE} and needs 2 x 2 "
                   "pixels)") if "inconsistency" in self.measures else " (a spectrum needs two frequency rings)"
            fail("size", f"expected at least {self.min_size()} pixels{why}, got {self.size}")
        if not isinstance(self.gap_exclude_dc, bool):
            fail("gap_exclude_dc", f"expected true or false, got {self.gap_exclude_dc!r}")
        if not isinstance(self.auc_mc_error, bool):
            fail("auc_mc_error", f"expected true or false, got {self.auc_mc_error!r}")
        if self.erosion % 2 == 0:
            fail("erosion", "expected an odd window size")
        if not isinstance(self.fractions, int) or self.fractions < 2:
            fail("fractions", f"expected an integer >= 2, got {self.fractions!r}")
        self._check_target_error()
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 1):
            fail("limit", f"expected a positive integer, got {self.limit!r}")
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            fail("batch_size", f"expected a positive integer, got {self.batch_size!r}")
        if self.num_workers is not None and (not isinstance(self.num_workers, int) or self.num_workers < 0):
            fail("num_workers", f"expected a non-negative integer, got {self.num_workers!r}")
        if not self.sigmas or any(not (0.0 <= float(s) <= 1.0) for s in self.sigmas):
            fail("sigmas", "expected a non-empty list of noise levels in [0, 1] (convex mixing)")
        if len(set(self.sigmas)) != len(self.sigmas):
            fail("sigmas", "contains duplicates")
        if not _real(self.noise_scale) or not 0 < self.noise_scale < math.inf:
            fail("noise_scale", f"expected a finite number > 0, got {self.noise_scale!r}")
        if not _real(self.sg_sigma) or not 0 <= self.sg_sigma < math.inf:
            fail("sg_sigma", f"expected a finite number >= 0, got {self.sg_sigma!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**64:
            fail("seed", f"expected an integer 0 <= seed < 2^64, got {self.seed!r}")
        if self.normalize not in NORMALIZATIONS:
            fail("normalize", f"expected one of {list(NORMALIZATIONS)}, got {self.normalize!r}")
        self._check_mean_std()
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                fail(name, f"expected one of {list(allowed)}, got {getattr(self, name)!r}")
        if self.device != "auto" and not (self.device == "cpu" or self.device.startswith("cuda")):
            fail("device", f"expected 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if self.keep_maps is not None and any(m not in self.methods for m in self.keep_maps):
            fail("keep_maps", f"{self.keep_maps} must be a subset of --methods {self.methods}")
        if not isinstance(self.panels, int) or self.panels < 0:
            fail("panels", f"expected a non-negative integer, got {self.panels!r}")
        return self

    def min_size(self) -> int:
        """The smallest --size the measures can use: 2 (a spectrum needs two frequency rings), and with the
        inconsistency measure 2 × its down-sampling factor (it compares at least 2 × 2 down-sampled pixels)."""
        return 2 * INCONSISTENCY_DOWNSAMPLE if "inconsistency" in self.measures else 2

    def _check_target_error(self) -> None:
        """--target-error E in (0, 1); its cap (--max-samples, else --samples) >= the minimum samples."""
        te = self.target_error
        if te is not None and (isinstance(te, bool) or not isinstance(te, (int, float)) or not 0 < te < 1):
            fail("target_error", f"expected a relative Monte Carlo error 0 < E < 1 (e.g. 0.1), got {te!r}")
        if self.max_samples is None:
            if te is not None and self.samples < TARGET_ERROR_MIN_SAMPLES:
                fail("samples", f"with --target-error the cap (--samples, or --max-samples) must be >= "
                                f"{TARGET_ERROR_MIN_SAMPLES}, the samples drawn before the first check; got "
                                f"{self.samples}")
            return
        if te is None:
            fail("max_samples", "is the cap of --target-error; give --target-error too (else use --samples)")
        ms = self.max_samples
        if isinstance(ms, bool) or not isinstance(ms, int) or ms < TARGET_ERROR_MIN_SAMPLES:
            fail("max_samples", f"expected an integer >= {TARGET_ERROR_MIN_SAMPLES} (the samples drawn before "
                                f"the first check), got {ms!r}")

    def sample_cap(self) -> int:
        """The most samples one image (per σ) may take: --max-samples with --target-error, else --samples."""
        return self.max_samples if self.max_samples is not None else self.samples

    def _check_mean_std(self) -> None:
        if (self.mean is None) != (self.std is None):
            fail("mean" if self.mean is None else "std", "give both --mean and --std, or neither")
        if self.mean is None:
            return
        if self.normalize not in ("none", "auto"):
            fail("normalize", "--mean/--std replace a normalisation preset; use one of them")
        channels = 1 if self.grayscale else 3
        what = "1 value (--grayscale)" if channels == 1 else "3 values (R,G,B)"
        if len(self.mean) != channels:
            fail("mean", f"expected {what}, got {len(self.mean)}: {self.mean}")
        if len(self.std) != channels or any(s <= 0 for s in self.std):
            fail("std", f"expected {what}, all > 0, got {self.std}")

    @property
    def kept_maps(self) -> list[str]:
        return list(self.methods) if self.keep_maps is None else list(self.keep_maps)

    def fast(self):
        """The engine's FastPath of the gradient passes, or None."""
        import torch

        from ..fastpath import FastPath

        if self.autocast is None and not self.channels_last and self.compile is None:
            return None
        return FastPath(dtype=getattr(torch, self.autocast) if self.autocast else None,
                        channels_last=self.channels_last, compile=self.compile or False)

    def needs_lens(self) -> bool:
        return any(m in LENS_METHODS for m in self.methods) or "sigma_opt" in self.measures \
            or "inconsistency" in self.measures

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def key_fields(self) -> dict:
        """The fields that change results, with the device reduced to its type."""
        d = {k: v for k, v in self.to_dict().items() if k not in RUNTIME_FIELDS}
        d["device"] = self.resolved_device_type()
        d["data"] = _data_identity(self.data)
        if not d["gap_exclude_dc"]:          # added later: runs recorded without it keep their key
            del d["gap_exclude_dc"]
        if not d["auc_mc_error"]:            # added later too
            del d["auc_mc_error"]
        return d

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.key_fields(), sort_keys=True).encode()).hexdigest()[:16]

    def resolved_device_type(self) -> str:
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device.split(":")[0]


def default_model(data: str) -> str:
    """The built-in model of ``data``: "fashion-cnn" (28 px, trained on first use) for fashion-mnist[:split],
    else "efficientnet-lite0" (ImageNet)."""
    return "fashion-cnn" if data == "fashion-mnist" or str(data).startswith("fashion-mnist:") else "efficientnet-lite0"


def _real(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _data_identity(data: str) -> str:
    """A built-in's name, or "folder": a folder is identified by the dataset fingerprint (relative paths and
    sizes), so a moved or copied dataset still resumes."""
    if data in BUILTIN_DATASETS or data.startswith("fashion-mnist:"):
        return data
    if data.startswith(("hf:", "python:")):          # identified by the dataset fingerprint and item digests
        return data.split(":", 1)[0]
    return "folder"


def load_toml(path: str | Path) -> dict:
    """The ``[audit]`` table of a TOML file (or its top level) with dashes in keys turned into underscores."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise ValueError(f"spectral_xai audit: option 'config': no file {str(path)!r}") from None
    except OSError as err:
        raise ValueError(f"spectral_xai audit: option 'config': cannot read {str(path)!r}: {err}") from None
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"spectral_xai audit: option 'config': {str(path)!r} is not valid TOML: {err}") from None
    doc = doc.get("audit", doc)
    if not isinstance(doc, dict):
        fail("config", f"the [audit] entry of {str(path)!r} is not a table")
    names = {f.name for f in fields(AuditConfig)}
    out = {}
    for k, v in doc.items():
        name = k.replace("-", "_")
        if name not in names:
            raise ValueError(f"spectral_xai audit: config file {path}: unknown option {k!r}")
        out[name] = v
    return out
