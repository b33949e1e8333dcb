"""Gradient explanations as instances of the probabilistic engine (docs/methods.md §1): VanillaGrad,
SmoothGrad / SmoothGrad-Squared and Integrated Gradients.

Maps are returned on x's device as float32 (float64 for float64 x), shaped (B, H, W), or
(B, C, H, W) with ``reduce_channels=False``.  Signals x (B, C, L) and volumes x (B, C, D, H, W) work
the same way and give (B, L) / (B, D, H, W) maps (docs/methods.md §1, "Signals and volumes").  Channel reduction: signed sum for k=1, sum of
per-channel squares (sum_c E[g_c²]) for k=2.
"""
from __future__ import annotations

import numpy as np
import torch

from . import _validation as V
from .engine import estimate
from .options import CHECK_EVERY, MIN_SAMPLES, ExecutionOptions, SamplingOptions, accepts_options, output_dtype
from .mc_stats import MapStats, check_even_groups, combine_sigmas, parity_counts, relative_error, sigma_statistics


def finish_map(m: torch.Tensor, x: torch.Tensor, reduce_channels: bool = True) -> torch.Tensor:
    """(B, C', *spatial) float64 -> (B, *spatial) when channels were reduced (C' = 1), else (B, C, *spatial)
    like x (also for a one-channel x: attributions are input-shaped, as Captum's are), in the output dtype of x."""
    m = m.to(output_dtype(x))
    return m[:, 0] if reduce_channels else m


@accepts_options
def vanilla_grad(model, x, target=None, *, squared=False, output="log_softmax", reduce_channels=True,
                 batch_size=None, image_ids=None, fast=None, memory_budget=None):
    """VanillaGrad: the gradient g (k=1) or g² (k=2) of the explained output at the clean input.

    Args:
        model: a classifier x (B, C, H, W) -> logits (B, K).
        x: images (B, C, H, W), floating point.
        target: None (the clean arg-max), an int or (B,) class indices.
        squared: g² (summed over channels) instead of g (summed over channels).
        output: the explained output of the target, "log_softmax", "logit" or "prob".
        reduce_channels: False keeps (B, C, H, W).
        batch_size, memory_budget, fast: how the passes run (or ``execution=``, an :class:`ExecutionOptions`);
            ``fast``: None or a :class:`~spectral_xai.FastPath` (autocast, channels_last, torch.compile).
        image_ids: None or (B,) ints (or ``sampling=SamplingOptions(image_ids=...)``).

    Returns:
        (B, H, W) float32 map (float64 for float64 x) on x's device.

    Example:
        >>> sx.vanilla_grad(model, x).shape
        torch.Size([2, 8, 8])
    """
    k = 2 if squared else 1
    est = estimate(model, x, sigmas=0.0, mixing="additive", powers=(k,), target=target, output=output,
                   reduce_channels=reduce_channels, sampling=SamplingOptions(n_samples=1, image_ids=image_ids),
                   execution=ExecutionOptions(batch_size=batch_size, memory_budget=memory_budget, fast=fast))
    return finish_map((est.mean2 if squared else est.mean1)[:, 0], x, reduce_channels)


def _check_one_sigma(sigma) -> None:
    if isinstance(sigma, (list, tuple)) or (isinstance(sigma, torch.Tensor) and sigma.numel() != 1):
        V.fail("sigma", "smooth_grad takes one noise level; use spectral_lens for several", TypeError)


@accepts_options
def smooth_grad(model, x, sigma, target=None, *, n_samples=32, squared=True, mixing="additive",
                noise_scale=1.0, relative=False, output="log_softmax", seed=0, image_ids=None,
                batch_size=None, reduce_channels=True, tol=None, max_samples=None, check_every=CHECK_EVERY,
                return_n_samples=False, sampling="iid", fast=None, return_stats=False, target_error=None,
                min_samples=MIN_SAMPLES, memory_budget=None, groups=2):
    """SmoothGrad E[g] (``squared=False``) or SmoothGrad-Squared E[g²] (default) at one noise level.

    ``mixing="additive"``: x~ = x + sigma·noise_scale·ε (sigma the absolute std, as Captum's ``stdevs``);
    ``"convex"``: x~ = (1 − sigma) x + sigma·noise_scale·ε, 0 <= sigma <= 1 (docs/methods.md §1).  The noise
    of an image is keyed by (seed, image id, σ, sample), so a map never depends on batch or chunk sizes.

    Args:
        model: a classifier x (B, C, H, W) -> logits (B, K).
        x: images (B, C, H, W), floating point.
        sigma: one noise level (a number).
        target: None (the clean arg-max), an int or (B,) class indices.
        n_samples: samples per image (the cap with ``tol`` / ``target_error``).
        squared: E[g²] (default) or E[g].
        mixing, noise_scale: the perturbation family and its noise scale s (a number or (B,)).
        relative: the original SmoothGrad scale, std = sigma · (max x_b − min x_b) per image.
        output: "log_softmax", "logit" or "prob" of the target.
        seed, image_ids: the noise keys (seed in [0, 2^64); ids (B,) in [0, 2^32), default arange(B)).
        tol, check_every, max_samples: stop an image once its running mean moves by <= tol · its max over
            ``check_every`` samples.
        target_error, min_samples: stop an image at the first check with n >= min_samples where its relative
            Monte Carlo error ||se||_2 / ||map||_2 <= target_error (recommended over ``tol``; docs/methods.md §11).
        sampling: "iid" or "lhs" (Latin hypercube noise, :mod:`spectral_xai.lhs`; no adaptive stopping), or a
            :class:`SamplingOptions` giving all of the sampling settings above.
        batch_size, memory_budget, fast: how the passes run (or ``execution=``, an :class:`ExecutionOptions`).
        reduce_channels: False keeps (B, C, H, W).
        return_n_samples: also return the (B,) samples used.
        return_stats: return a :class:`~spectral_xai.mc_stats.MapStats` (needs n_samples >= 2).
        groups: interleaved sample groups of the statistics (even, 2 <= groups <= 64; docs/methods.md §11).

    Returns:
        The (B, H, W) map, float32 (float64 for float64 x); ``(map, n_used (B,))`` with ``return_n_samples``;
        a MapStats (.map identical to the plain map, .stderr, .halves, .n_samples, .rel_error, .groups,
        .group_counts, .third, .dof, .interval(level)) with ``return_stats``.

    Example:
        >>> sx.smooth_grad(model, x, 0.15, n_samples=8).shape
        torch.Size([2, 8, 8])
        >>> st = sx.smooth_grad(model, x, 0.15, sampling=sx.SamplingOptions(n_samples=8, seed=1), return_stats=True)
        >>> st.stderr.shape, st.n_samples.tolist()
        (torch.Size([2, 8, 8]), [8, 8])
    """
    _check_one_sigma(sigma)
    x = V.check_inputs(x)
    if relative:
        span = (x.flatten(1).amax(1) - x.flatten(1).amin(1)).to(torch.float64)
        noise_scale = span * V.check_noise_scale(noise_scale, x.shape[0], x.device)
    k = 2 if squared else 1
    if return_stats and return_n_samples:
        V.fail("return_n_samples", "give return_stats or return_n_samples, not both (the stats have .n_samples)")
    samp = SamplingOptions(n_samples=n_samples, seed=seed, image_ids=image_ids, tol=tol, max_samples=max_samples,
                           check_every=check_every, noise_design=sampling, target_error=target_error,
                           min_samples=min_samples, groups=groups).checked()
    if return_stats:
        check_even_groups(groups)
    est = estimate(model, x, sigmas=sigma, mixing=mixing, powers=(k,), target=target, output=output,
                   noise_scale=noise_scale, reduce_channels=reduce_channels, sampling=samp,
                   execution=ExecutionOptions(batch_size=batch_size, memory_budget=memory_budget, fast=fast),
                   x_checked=True, stats=bool(return_stats))
    m = finish_map((est.mean2 if squared else est.mean1)[:, 0], x, reduce_channels)
    if return_stats:
        return _map_stats(est, k, m, x, reduce_channels)
    return (m, est.n_samples[:, 0]) if return_n_samples else m


def _map_stats(est, k: int, m: torch.Tensor, x: torch.Tensor, reduce_channels: bool) -> MapStats:
    """MapStats of a one-σ estimate whose finished map is ``m``."""
    st = sigma_statistics(est, k, torch.ones(1, dtype=torch.float64))
    r, B, G = reduce_channels, m.shape[0], st.groups.shape[1]
    groups = finish_map(st.groups.flatten(0, 1), x, r).view(B, G, *m.shape[1:])
    return MapStats(map=m, stderr=finish_map(st.var.sqrt(), x, r),
                    halves=(finish_map(st.a, x, r), finish_map(st.b, x, r)), n_samples=est.n_samples[:, 0],
                    rel_error=relative_error(st.mean, st.var).to(output_dtype(x)),
                    half_counts=parity_counts(st.group_counts), groups=groups, group_counts=st.group_counts,
                    third=finish_map(st.third, x, r), dof=st.dof, squared=k == 2)


def gauss_legendre_01(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Legendre nodes and weights on [0, 1] (weights sum to 1): exact for degree 2n - 1."""
    nodes, weights = np.polynomial.legendre.leggauss(n)
    return torch.from_numpy((nodes + 1) / 2), torch.from_numpy(weights / 2)


@accepts_options
def integrated_grad(model, x, target=None, *, baseline=None, n_steps=32, squared=False, times_input=True,
                    output="log_softmax", batch_size=None, reduce_channels=True, image_ids=None, fast=None,
                    return_stats=False, memory_budget=None):
    """Integrated gradients along x_a = b + a (x − b), a in [0, 1] (damping mixing, σ = 1 − a).

    IG = ∫ g(x_a) da and IG² = ∫ g(x_a)² da by Gauss–Legendre quadrature with ``n_steps`` nodes (exact for
    integrands polynomial of degree < 2 n_steps in a).  ``times_input=True`` gives XIG = (x − b) ⊙ IG (the usual
    Integrated Gradients; its pixel sum approximates F(x) − F(b)) and XIG² = (x − b)² ⊙ IG²; channels are reduced
    after the multiplication.  Deterministic: ``return_stats=True`` is refused (no Monte Carlo error).

    Args:
        model: a classifier x (B, C, H, W) -> logits (B, K).
        x: images (B, C, H, W), floating point.
        target: None (the clean arg-max), an int or (B,) class indices.
        baseline: b, (B, C, H, W) or broadcastable; None = zeros.
        n_steps: quadrature nodes.
        squared, times_input: IG², and the (x − b) factor.
        output: "log_softmax", "logit" or "prob" of the target.
        batch_size, memory_budget, fast: how the passes run (or ``execution=``, an :class:`ExecutionOptions`).
        reduce_channels: False keeps (B, C, H, W).
        image_ids: None or (B,) ints.

    Returns:
        (B, H, W) float32 map (float64 for float64 x).

    Example:
        >>> sx.integrated_grad(model, x, n_steps=8).shape
        torch.Size([2, 8, 8])
    """
    if return_stats:
        V.fail("return_stats", "integrated_grad is deterministic Gauss-Legendre quadrature: it draws no "
                               "samples and has no Monte Carlo error (raise n_steps to reduce its error)")
    x = V.check_inputs(x)
    n_steps = V.check_positive_int(n_steps, "n_steps")
    # the quadrature's nodes (numpy solves an n_steps x n_steps eigenproblem) and the per-node accumulators
    V.check_memory(max(3 * 8 * n_steps**2, 2 * 8 * n_steps * x[:, :1 if reduce_channels else None].numel()),
                   "n_steps", x.device, f"{n_steps} quadrature nodes")
    if baseline is None:
        baseline = torch.zeros_like(x)
    alphas, weights = gauss_legendre_01(n_steps)
    k = 2 if squared else 1
    est = estimate(model, x, sigmas=1.0 - alphas, mixing="damping", powers=(k,), target=target, output=output,
                   baseline=baseline, reduce_channels=reduce_channels and not times_input,
                   sampling=SamplingOptions(n_samples=1, image_ids=image_ids),
                   execution=ExecutionOptions(batch_size=batch_size, memory_budget=memory_budget, fast=fast),
                   x_checked=True)
    mean = est.mean2 if squared else est.mean1                # (B, S, C', H, W)
    integral = combine_sigmas(mean, weights)   # in node order: an image's map ignores the other images
    if times_input:
        diff = (x.detach().to(torch.float64) - baseline.detach().to(device=x.device, dtype=torch.float64)
                .expand_as(x))
        integral = integral * (diff * diff if squared else diff)
        if reduce_channels:
            integral = integral.sum(dim=1, keepdim=True)
    return finish_map(integral, x, reduce_channels)
