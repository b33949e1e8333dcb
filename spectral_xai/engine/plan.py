"""The engine's plan: every argument of an estimate validated and normalised once, frozen.

A plan says which (image, σ) slots exist, how many samples each may take (noiseless slots take one), how
samples come in rounds, and how the noise is keyed; :mod:`.run` executes it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import _validation as V
from ..options import ExecutionOptions, SamplingOptions
from ..lhs import LatinHypercubeNoise
from .layout import as_4d


@dataclass(frozen=True)
class EnginePlan:
    """x (B, C, H, W) validated, signals and volumes in the 4-D layout of :func:`.layout.as_4d`; spatial: the
    caller's map axes ((L,), (H, W) or (D, H, W)); sigmas (S,) float64 CPU; scales (B,) float64 and ids (B,) int64 on x's device;
    baseline (B, C, H, W) or None; powers ⊆ (1, 2); acc_c: accumulated channels (1 when reduced);
    s_slot: σ slots per image (1 when σ is drawn per sample); limits (P = B·s_slot,) int64 CPU: samples per
    slot; per_round: samples per slot per round; sample_sigma (B, n) int64 CPU or None; lhs: the Latin
    hypercube design or None; stats: track the Monte Carlo statistics (Welford sums, third moments, the sampling.groups group means);
    error_weights (S,) float64 CPU: the weights of the σ slots in the map whose relative error
    ``target_error`` bounds (1/S each by default)."""

    x: torch.Tensor
    sigmas: torch.Tensor
    mixing: str
    powers: tuple
    target: object
    output: str
    scales: torch.Tensor
    ids: torch.Tensor
    baseline: torch.Tensor | None
    acc_c: int
    s_slot: int
    limits: torch.Tensor
    per_round: int
    sampling: SamplingOptions
    execution: ExecutionOptions
    sample_sigma: torch.Tensor | None
    lhs: LatinHypercubeNoise | None
    stats: bool = False
    error_weights: torch.Tensor | None = None
    spatial: tuple = ()

    @property
    def num_slots(self) -> int:
        return self.limits.numel()

    @property
    def adaptive(self) -> bool:
        return self.sampling.adaptive

    @property
    def tracks_variance(self) -> bool:
        """Welford sums are needed: statistics requested or the target-error stop."""
        return self.stats or self.sampling.target_error is not None


def plan_rows(active: torch.Tensor, counts: torch.Tensor, per_round: int, limit, S: int) -> torch.Tensor:
    """Rows (N, 3) int64 = (image slot, sigma index, sample index) for one round of the active slots.

    active (A,), counts (P,) and limit (the samples cap, an int or a (P,) tensor) are CPU int64."""
    start = counts[active]
    cap = limit[active] if isinstance(limit, torch.Tensor) else limit
    lengths = torch.minimum(start + per_round, torch.as_tensor(cap)) - start
    # In numpy: torch.repeat_interleave with tensor repeats (like searchsorted) opens an intra-op parallel
    # region on CPU even for a few elements, which costs milliseconds per call on a busy machine.
    lengths = lengths.numpy()
    slot = np.repeat(active.numpy(), lengths)
    first = np.repeat(start.numpy() - np.cumsum(lengths) + lengths, lengths)
    sample = np.arange(slot.size, dtype=np.int64) + first
    return torch.from_numpy(np.stack([slot // S, slot % S, sample], axis=1))


def _check_powers(powers) -> tuple:
    powers = tuple(sorted(set(powers)))
    if not powers or any(k not in (1, 2) for k in powers):
        V.fail("powers", f"expected a subset of (1, 2), got {powers}")
    return powers


def _check_baseline(baseline, x: torch.Tensor, mixing: str) -> torch.Tensor | None:
    if baseline is None:
        return None
    if not isinstance(baseline, torch.Tensor):
        V.fail("baseline", f"expected a tensor, got {type(baseline).__name__}", TypeError)
    if baseline.device != x.device:
        V.fail("baseline", f"is on {baseline.device} but x is on {x.device}")
    try:
        baseline = baseline.to(x.dtype).expand(*x.shape)
    except RuntimeError:
        V.fail("baseline", f"shape {tuple(baseline.shape)} does not broadcast to {tuple(x.shape)}")
    if not bool(torch.isfinite(baseline).all()):
        V.fail("baseline", "contains NaN or Inf values")
    if mixing != "damping":
        V.fail("baseline", "is only used by damping mixing")
    return baseline


def _check_sample_sigma(sample_sigma, sampling: SamplingOptions, B: int, S: int) -> torch.Tensor | None:
    """(B, n_samples) σ index of every sample (σ drawn per sample), or None."""
    if sample_sigma is None:
        return None
    n = sampling.n_samples
    if sampling.adaptive:
        V.fail("tol" if sampling.tol is not None else "target_error",
               "adaptive stopping is not available when the sigma is drawn per sample")
    if sampling.max_samples is not None and sampling.max_samples != n:
        V.fail("max_samples", "must be None (or n_samples) when the sigma is drawn per sample")
    if sampling.noise_design == "lhs":
        V.fail("sampling", "'lhs' is not available when the sigma is drawn per sample")
    sample_sigma = torch.as_tensor(sample_sigma, dtype=torch.int64).cpu()
    if sample_sigma.shape != (B, n):
        V.fail("sample_sigma", f"expected shape ({B}, {n}), got {tuple(sample_sigma.shape)}")
    if bool((sample_sigma < 0).any()) or bool((sample_sigma >= S).any()):
        V.fail("sample_sigma", f"indices must lie in [0, {S})")
    return sample_sigma


def _check_slot_samples(slot_samples, sampling: SamplingOptions, has_sample_sigma: bool, B: int, S: int):
    """(B, S) samples of every (image, σ) instead of n_samples, or None."""
    if slot_samples is None:
        return None
    if sampling.adaptive or has_sample_sigma:
        V.fail("slot_samples", "cannot be combined with tol, target_error or sample_sigma")
    if not isinstance(slot_samples, torch.Tensor) or slot_samples.is_floating_point():
        V.fail("slot_samples", "expected an integer tensor of shape (B, S)", TypeError)
    slot_samples = slot_samples.to(device="cpu", dtype=torch.int64)
    if slot_samples.shape != (B, S):
        V.fail("slot_samples", f"expected shape ({B}, {S}), got {tuple(slot_samples.shape)}")
    if bool((slot_samples < 0).any()):
        V.fail("slot_samples", "counts must be >= 0")
    return slot_samples


def _slot_limits(sig, scales, mixing, sampling, slot_samples, per_sample_sigma: bool, B: int) -> torch.Tensor:
    """Samples per slot (P,).  Slots without noise (damping, or σ · noise_scale == 0) see the same input in
    every sample: one sample gives their mean exactly, so they are not sampled again."""
    S = sig.numel()
    P = B * (1 if per_sample_sigma else S)
    limit = sampling.limit
    top = int(slot_samples.max()) if slot_samples is not None and slot_samples.numel() else limit
    if sampling.sample_offset + top > 2**32:
        arg = "sample_offset" if sampling.sample_offset else "n_samples"
        V.fail(arg, f"offset + samples must stay <= 2^32 (a Philox counter), got {sampling.sample_offset} + {top}")
    limits = torch.full((P,), limit, dtype=torch.int64) if slot_samples is None else slot_samples.reshape(-1).clone()
    noiseless = ~_noisy_slots(sig, scales, mixing, per_sample_sigma, B)
    limits[noiseless] = limits[noiseless].clamp(max=1)
    return limits


def _noisy_slots(sig, scales, mixing: str, per_sample_sigma: bool, B: int) -> torch.Tensor:
    """(P,) bool: the slots whose input changes from sample to sample (σ drawn per sample: every slot)."""
    S = sig.numel()
    if per_sample_sigma:
        return torch.ones(B, dtype=torch.bool)
    if mixing == "damping":
        return torch.zeros(B * S, dtype=torch.bool)
    return ((sig.view(1, S) * scales.cpu().view(B, 1)) != 0).reshape(-1)


def _check_error_weights(error_weights, S: int) -> torch.Tensor:
    """(S,) float64 CPU non-negative weights, not all zero (default 1/S each)."""
    if error_weights is None:
        return torch.full((S,), 1.0 / S, dtype=torch.float64)
    w = torch.as_tensor(error_weights, dtype=torch.float64).cpu().reshape(-1)
    if w.numel() != S or not bool(torch.isfinite(w).all()) or bool((w < 0).any()) or float(w.sum()) <= 0:
        V.fail("error_weights", f"expected {S} finite non-negative weights, not all zero")
    return w


def _check_stats_samples(stats: bool, limits: torch.Tensor, noisy: torch.Tensor) -> None:
    """A standard error needs two samples in every slot that has noise."""
    if stats and bool((limits[noisy] < 2).any()):
        V.fail("n_samples", "return_stats needs >= 2 samples per (image, sigma) with noise (a variance "
                            f"needs two), got {int(limits[noisy].min())}")


def _check_plan_memory(x: torch.Tensor, P: int, acc_c: int, per_round: int, powers, sampling: SamplingOptions,
                       stats: bool) -> None:
    """Refuses a plan whose float64 accumulators (P, C', spatial) or whose rows of one round (P · per_round
    index triples) cannot fit in the memory of x's device, naming the argument that makes them large."""
    tracks_var = stats or sampling.target_error is not None
    maps = len(powers) * (1 + tracks_var + (1 + sampling.groups) * stats) + (sampling.tol is not None)
    accumulators = maps * P * acc_c * x[0, 0].numel() * 8
    rows = P * per_round * 3 * 8 * 2                      # the round's rows and their numpy construction
    if rows > accumulators:
        V.check_memory(rows, "n_samples", x.device, f"the sample indices of {P} (image, σ) slots x {per_round} samples")
    else:
        V.check_memory(accumulators, "sigmas", x.device, f"the float64 accumulators of {P} (image, σ) slots")


def make_plan(x: torch.Tensor, *, sigmas, mixing: str, powers, target, output: str, noise_scale, baseline,
              reduce_channels: bool, sampling: SamplingOptions, execution: ExecutionOptions,
              sample_sigma=None, slot_samples=None, x_checked: bool = False, stats: bool = False,
              error_weights=None) -> EnginePlan:
    """Validate and normalise the arguments of an estimate (see :func:`spectral_xai.engine.estimate`).
    ``x_checked=True``: the caller has already run ``check_inputs`` on x (it is not scanned again).
    x: (B, C, L), (B, C, H, W) or (B, C, D, H, W)."""
    x = x if x_checked else V.check_inputs(x)
    V.check_output(output)
    sig = V.check_sigmas(sigmas, mixing, torch.device("cpu"))
    sampling, execution = sampling.checked(), execution.checked()
    powers = _check_powers(powers)
    B, C = x.shape[:2]
    S = sig.numel()
    ids = V.check_image_ids(sampling.image_ids, B, x.device)
    scales = V.check_noise_scale(noise_scale, B, x.device)
    baseline = _check_baseline(baseline, x, mixing)
    spatial = tuple(x.shape[2:])
    x, baseline = as_4d(x), None if baseline is None else as_4d(baseline)
    sample_sigma = _check_sample_sigma(sample_sigma, sampling, B, S)
    slot_samples = _check_slot_samples(slot_samples, sampling, sample_sigma is not None, B, S)
    limits = _slot_limits(sig, scales, mixing, sampling, slot_samples, sample_sigma is not None, B)
    s_slot = 1 if sample_sigma is not None else S
    if stats:
        _check_stats_samples(stats, limits, _noisy_slots(sig, scales, mixing, sample_sigma is not None, B))
    per_round = sampling.check_every if sampling.adaptive else max(int(limits.max()), 1)
    _check_plan_memory(x, limits.numel(), 1 if reduce_channels else C, per_round, powers, sampling, stats)
    lhs = (LatinHypercubeNoise(sampling.seed, ids, limits, s_slot, sampling.sample_offset)
           if sampling.noise_design == "lhs" and mixing != "damping" else None)
    return EnginePlan(x=x, sigmas=sig, mixing=mixing, powers=powers, target=target, output=output, scales=scales,
                      ids=ids, baseline=baseline, acc_c=1 if reduce_channels else C, s_slot=s_slot, limits=limits,
                      per_round=per_round, sampling=sampling, execution=execution, sample_sigma=sample_sigma,
                      lhs=lhs, stats=bool(stats), error_weights=_check_error_weights(error_weights, s_slot),
                      spatial=spatial)
