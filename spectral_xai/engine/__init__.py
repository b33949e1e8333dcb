"""The sampling engine behind every gradient method (docs/methods.md §1, §5).

``estimate`` computes, for each image b and noise scale σ_j, Monte Carlo running means of g = dF/dx̃ (k=1)
and/or g² (k=2) with x̃ drawn by the fused ``perturb`` op, where F is the explained output of the target
class.  All σ of a call go through the same chunks of forward/backward passes; noise is keyed by
(seed, image id, σ index, sample index).  It is two steps: :func:`make_plan` validates and normalises the
arguments once into a frozen :class:`EnginePlan`; :func:`run_plan` executes it.
"""
from __future__ import annotations

import torch

from .. import _validation as V
from ..options import EXECUTION_KEYS, SAMPLING_KEYS, ExecutionOptions, SamplingOptions, split_options
from .plan import EnginePlan, make_plan, plan_rows
from .run import Estimate, run_plan

__all__ = ["Estimate", "EnginePlan", "ExecutionOptions", "SamplingOptions", "estimate", "make_plan", "plan_rows",
           "run_plan"]


def estimate(model, x, *, sigmas, mixing: str, powers=(2,), target=None, output: str = "log_softmax",
             noise_scale=1.0, baseline=None, reduce_channels: bool = True, sample_sigma=None, slot_samples=None,
             sampling: SamplingOptions | str | None = None, execution: ExecutionOptions | None = None,
             x_checked: bool = False, stats: bool = False, error_weights=None, **options) -> Estimate:
    """The sampling engine: Monte Carlo means of g^k for every image and σ (docs/methods.md §1, §5).

    Without ``tol`` / ``target_error`` every (image, σ) gets ``n_samples`` samples; with ``tol`` samples come in
    rounds of ``check_every`` until max|m_n − m_{n−check_every}| <= tol · max|m_n| (on the k=2 mean if requested,
    else k=1) or ``max_samples``; with ``target_error`` (and ``min_samples``) until each image's relative error
    ||se||_2 / ||Σ_j w_j m_j||_2 <= target_error, se² = Σ_j w_j² se_j² (docs/methods.md §11).  Every call raises a
    ValueError naming the images and σ whose model output or gradient is NaN/Inf.

    Args:
        model: a classifier x (B, C, H, W) -> logits (B, K).
        x: images (B, C, H, W).
        sigmas: a number or (S,).
        mixing: "additive", "convex" or "damping" (``baseline`` (B, C, H, W) for damping).
        powers: a subset of {1, 2}.
        target, output, noise_scale, reduce_channels: as in :func:`~spectral_xai.smooth_grad`.
        sample_sigma: (B, n_samples) int64 σ index of every sample; an image's samples are then pooled (S' = 1).
        slot_samples: (B, S) int64 >= 0 samples per (image, σ) instead of ``n_samples`` (noiseless: at most one).
        sampling: a :class:`SamplingOptions` (which samples), or "iid" / "lhs" (the noise design).
        execution: an :class:`ExecutionOptions` (how the passes run).
        x_checked: x was already validated.
        stats: also the Monte Carlo statistics of :class:`Estimate` (same pass, same means, bit for bit).
        error_weights: w (S,) of ``target_error`` (1/S each by default).
        **options: the fields of SamplingOptions / ExecutionOptions by name (n_samples, seed, image_ids, tol,
            max_samples, check_every, sample_offset, target_error, min_samples, batch_size, memory_budget, fast);
            not together with the object they belong to.

    Returns:
        An :class:`Estimate`: mean1 / mean2 (B, S, C', H, W) float64 (None where not requested), n_samples (B, S),
        and with ``stats`` the per-slot statistics.

    Example:
        >>> est = sx.estimate(model, x, sigmas=[0.1, 0.2], mixing="additive", n_samples=4)
        >>> est.mean2.shape, est.mean1 is None
        (torch.Size([2, 2, 1, 8, 8]), True)
    """
    if torch.is_inference_mode_enabled():
        V.fail("model", "cannot be differentiated: torch.inference_mode() is on, and no gradient can be taken "
                        "inside it; call this function outside the inference_mode block (torch.no_grad() is fine "
                        "around it too)")
    if isinstance(sampling, str):
        options["sampling"], sampling = sampling, None
    samp, exe, rest = split_options(options)
    if rest:
        V.fail(sorted(rest)[0], "unknown option (expected a field of SamplingOptions or ExecutionOptions)", TypeError)
    if sampling is not None:
        if set(options) & (set(SAMPLING_KEYS) | {"sampling"}):
            V.fail("sampling", "give the sampling options as a SamplingOptions or by name, not both", TypeError)
        samp = sampling
    if execution is not None:
        if set(options) & set(EXECUTION_KEYS):
            V.fail("execution", "give the execution options as an ExecutionOptions or by name, not both", TypeError)
        exe = execution
    plan = make_plan(x, sigmas=sigmas, mixing=mixing, powers=powers, target=target, output=output,
                     noise_scale=noise_scale, baseline=baseline, reduce_channels=reduce_channels, sampling=samp,
                     execution=exe, sample_sigma=sample_sigma, slot_samples=slot_samples, x_checked=x_checked,
                     stats=stats, error_weights=error_weights)
    return run_plan(model, plan)
