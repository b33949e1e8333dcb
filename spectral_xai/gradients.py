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
from .options import ExecutionOptions, SamplingOptions, output_dtype
from .stats import MapStats, combine_sigmas, relative_error, sigma_statistics


def finish_map(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B, C', *spatial) float64 -> (B, *spatial) if C' == 1 else (B, C, *spatial), in the output dtype of x."""
    m = m.to(output_dtype(x))
    return m[:, 0] if m.shape[1] == 1 else m


def vanilla_grad(model, x, target=None, *, squared=False, output="log_softmax", reduce_channels=True,
                 batch_size=None, image_ids=None, fast=None):
    """VanillaGrad g (k=1) or g² (k=2) at the clean input.  x (B, C, H, W) -> (B, H, W).

    ``fast``: None or a :class:`~spectral_xai.FastPath` (autocast, channels_last, torch.compile)."""
    k = 2 if squared else 1
    est = estimate(model, x, sigmas=0.0, mixing="additive", powers=(k,), target=target, output=output,
                   reduce_channels=reduce_channels, sampling=SamplingOptions(n_samples=1, image_ids=image_ids),
                   execution=ExecutionOptions(batch_size=batch_size, fast=fast))
    return finish_map((est.mean2 if squared else est.mean1)[:, 0], x)


def _check_one_sigma(sigma) -> None:
    if isinstance(sigma, (list, tuple)) or (isinstance(sigma, torch.Tensor) and sigma.numel() != 1):
        V.fail("sigma", "smooth_grad takes one noise level; use spectral_lens for several", TypeError)


def smooth_grad(model, x, sigma, target=None, *, n_samples=32, squared=True, mixing="additive",
                noise_scale=1.0, relative=False, output="log_softmax", seed=0, image_ids=None,
                batch_size=None, reduce_channels=True, tol=None, max_samples=None, check_every=8,
                return_n_samples=False, sampling="iid", fast=None, return_stats=False, target_error=None,
                min_samples=8):
    """SmoothGrad E[g] (``squared=False``) or SmoothGrad-Squared E[g²] (default).

    x (B, C, H, W) -> (B, H, W).  ``mixing="additive"``: x~ = x + sigma*noise_scale*eps (sigma is the
    absolute std, as Captum's ``stdevs`` when noise_scale = 1); ``relative=True`` uses the original
    SmoothGrad scale, std = sigma * (max x_b - min x_b) per image.  ``mixing="convex"``:
    x~ = (1 - sigma) x + sigma*noise_scale*eps, 0 <= sigma <= 1.  With ``tol`` the sampling stops per
    image once the running mean changes by at most tol * its max over ``check_every`` samples
    (``n_samples`` or ``max_samples`` is the cap); ``return_n_samples=True`` also returns (B,) samples used.
    ``target_error`` (recommended over ``tol``): stop an image at the first check with n >= ``min_samples``
    where its relative Monte Carlo error ||se||_2 / ||map||_2 <= target_error (cap: ``max_samples``, default
    ``n_samples``); the noise keys do not change, so the map is a prefix of a longer run (docs/methods.md §11).
    ``return_stats=True`` returns a :class:`~spectral_xai.stats.MapStats` (.map identical to the plain
    return value, .stderr, .halves, .n_samples, .rel_error) from the same passes; needs n_samples >= 2.
    ``fast``: None or a :class:`~spectral_xai.FastPath` (autocast, channels_last, torch.compile).
    ``sampling="lhs"``: Latin hypercube noise over the ``n_samples`` of each image (unbiased like ``"iid"``,
    lower variance where the map is dominated by per-element effects; no ``tol``), see
    :mod:`spectral_xai.sampling`.
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
                           min_samples=min_samples)
    est = estimate(model, x, sigmas=sigma, mixing=mixing, powers=(k,), target=target, output=output,
                   noise_scale=noise_scale, reduce_channels=reduce_channels, sampling=samp,
                   execution=ExecutionOptions(batch_size=batch_size, fast=fast), x_checked=True,
                   stats=bool(return_stats))
    m = finish_map((est.mean2 if squared else est.mean1)[:, 0], x)
    if return_stats:
        return _map_stats(est, k, m, x)
    return (m, est.n_samples[:, 0]) if return_n_samples else m


def _map_stats(est, k: int, m: torch.Tensor, x: torch.Tensor) -> MapStats:
    """MapStats of a one-σ estimate whose finished map is ``m``."""
    _, _, _, _, mean, var, a, b = sigma_statistics(est, k, torch.ones(1, dtype=torch.float64))
    return MapStats(map=m, stderr=finish_map(var.sqrt(), x), halves=(finish_map(a, x), finish_map(b, x)),
                    n_samples=est.n_samples[:, 0], rel_error=relative_error(mean, var).to(output_dtype(x)),
                    half_counts=est.half_counts[:, 0])


def gauss_legendre_01(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Legendre nodes and weights on [0, 1] (weights sum to 1): exact for degree 2n - 1."""
    nodes, weights = np.polynomial.legendre.leggauss(n)
    return torch.from_numpy((nodes + 1) / 2), torch.from_numpy(weights / 2)


def integrated_grad(model, x, target=None, *, baseline=None, n_steps=32, squared=False, times_input=True,
                    output="log_softmax", batch_size=None, reduce_channels=True, image_ids=None, fast=None,
                    return_stats=False):
    """Integrated gradients along x_a = b + a (x - b), a in [0, 1] (damping mixing, sigma = 1 - a).

    IG  = int_0^1 g(x_a) da,  IG² = int_0^1 g(x_a)² da,  by Gauss-Legendre quadrature with
    ``n_steps`` nodes (exact for integrands polynomial of degree < 2 n_steps in a).
    ``times_input=True`` gives XIG = (x - b) * IG (the usual Integrated Gradients, whose sum over
    pixels approximates F(x) - F(b)) and XIG² = (x - b)² * IG² = int ((x - b) g)² da.
    Channels are reduced after the multiplication.  x (B, C, H, W) -> (B, H, W).
    ``fast``: None or a :class:`~spectral_xai.FastPath` (autocast, channels_last, torch.compile).
    ``return_stats=True`` is refused: the quadrature is deterministic, it has no Monte Carlo error (its error
    is the quadrature error, which shrinks with ``n_steps``).
    """
    if return_stats:
        V.fail("return_stats", "integrated_grad is deterministic Gauss-Legendre quadrature: it draws no "
                               "samples and has no Monte Carlo error (raise n_steps to reduce its error)")
    x = V.check_inputs(x)
    n_steps = V.check_positive_int(n_steps, "n_steps")
    if baseline is None:
        baseline = torch.zeros_like(x)
    alphas, weights = gauss_legendre_01(n_steps)
    k = 2 if squared else 1
    est = estimate(model, x, sigmas=1.0 - alphas, mixing="damping", powers=(k,), target=target, output=output,
                   baseline=baseline, reduce_channels=reduce_channels and not times_input,
                   sampling=SamplingOptions(n_samples=1, image_ids=image_ids),
                   execution=ExecutionOptions(batch_size=batch_size, fast=fast), x_checked=True)
    mean = est.mean2 if squared else est.mean1                # (B, S, C', H, W)
    integral = combine_sigmas(mean, weights)   # in node order: an image's map ignores the other images
    if times_input:
        diff = (x.detach().to(torch.float64) - baseline.detach().to(device=x.device, dtype=torch.float64)
                .expand_as(x))
        integral = integral * (diff * diff if squared else diff)
        if reduce_channels:
            integral = integral.sum(dim=1, keepdim=True)
    return finish_map(integral, x)
