"""Monte Carlo error of sampled maps (docs/methods.md §11): standard errors, halves, relative errors.

A sampled map m̂ = (1/n) Σ_i h_i averages per-sample maps h_i (after the channel reduction).  The engine's
fused accumulate op keeps, per (image, σ) slot, Welford's sum of squared deviations S of h_i and the means of
the samples with even / odd sample index; from them ``se² = S / (n (n − 1))`` and the halves (A, B).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class MapStats:
    """A sampled map with its Monte Carlo error.

    map (B, H, W) (or (B, C, H, W) unreduced): the estimate, identical to the plain return value;
    stderr: per-pixel standard error of ``map``, same shape; halves (A, B): the means over the samples with
    even / odd sample index, same shape; n_samples (B,) samples used; rel_error (B,) ||stderr||_2 / ||map||_2;
    half_counts (B, 2) samples in A and in B.  ``map == (n_A·A + n_B·B) / n``, so ``(A + B) / 2`` for even n;
    for odd n the half with one sample more weighs more."""

    map: torch.Tensor
    stderr: torch.Tensor
    halves: tuple[torch.Tensor, torch.Tensor]
    n_samples: torch.Tensor
    rel_error: torch.Tensor
    half_counts: torch.Tensor


def mean_variance(sumsq: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Variance of a running mean, se² = S / (n (n − 1)), 0 where n <= 1 (a noiseless slot's one sample
    is its exact mean).  sumsq (B, S, ...) float64, counts (B, S) -> like sumsq."""
    n = counts.to(sumsq.dtype).view(*counts.shape, *([1] * (sumsq.dim() - counts.dim())))
    return torch.where(n > 1, sumsq / (n * (n - 1)).clamp(min=1), torch.zeros_like(sumsq))


def filled_halves(half_mean: torch.Tensor, half_counts: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Halves (B, S, 2, ...) with an empty half replaced by the slot's mean (only a one-sample slot has one:
    a noiseless slot, whose one sample is exact).  half_counts (B, S, 2); mean (B, S, ...)."""
    empty = (half_counts == 0).view(*half_counts.shape, *([1] * (half_mean.dim() - half_counts.dim())))
    return torch.where(empty, mean.unsqueeze(2), half_mean)


def relative_error(m: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """(B,) ||se||_2 / ||m||_2 over every element of an image; 0 for an exact zero map, inf for a zero map
    with error.  m, var (B, ...)."""
    num = var.flatten(1).sum(1).sqrt()
    den = m.flatten(1).square().sum(1).sqrt()
    return torch.where(den > 0, num / den.clamp(min=torch.finfo(den.dtype).tiny),
                       torch.where(num > 0, torch.full_like(num, float("inf")), torch.zeros_like(num)))


def combine_sigmas(values: torch.Tensor, weights: torch.Tensor, square: bool = False) -> torch.Tensor:
    """Σ_j w_j v_j (or Σ_j w_j² v_j for variances, ``square=True``) over the σ axis 1, summed elementwise in
    σ order, so an image's result never depends on the other images of the call (a batched reduction such as
    einsum may change the last bit with the batch).  values (B, S, ...), weights (S,) -> (B, ...)."""
    w = weights.to(device=values.device, dtype=values.dtype)
    w = w * w if square else w
    out = values[:, 0] * w[0]
    for j in range(1, values.shape[1]):
        out = out + values[:, j] * w[j]
    return out


def sigma_statistics(est, k: int, weights: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """From an engine Estimate with statistics, for g^k: per σ slot (B, S, C', H, W) float64 mean, se² and the
    halves A, B; then the same for the σ-weighted map Σ_j w_j m_j (B, C', H, W) (the σ slots are independent,
    so se² = Σ_j w_j² se_j²).  -> (mean_s, var_s, a_s, b_s, mean, var, a, b)."""
    mean = est.mean2 if k == 2 else est.mean1
    var = mean_variance(est.sumsq2 if k == 2 else est.sumsq1, est.n_samples)
    halves = filled_halves(est.half_mean2 if k == 2 else est.half_mean1, est.half_counts, mean)
    a, b = halves[:, :, 0], halves[:, :, 1]
    combined = [combine_sigmas(t, weights) for t in (mean, a, b)]
    return (mean, var, a, b, combined[0], combine_sigmas(var, weights, square=True), combined[1], combined[2])


def student_t_quantile(p: float, dof: int) -> float:
    """The p-quantile (0.5 < p < 1) of Student's t with ``dof`` >= 1 degrees of freedom: closed forms for 1, 2
    and 4, Newton on the closed-form CDF for 3, the Cornish–Fisher expansion to 1/dof⁴ (Abramowitz & Stegun
    26.7.5) from 5 on (relative error below 1.1e-4 for p <= 0.975, 8e-4 for p <= 0.995)."""
    import math
    from statistics import NormalDist

    if not 0.5 < p < 1 or dof < 1:
        raise ValueError(f"student_t_quantile: needs 0.5 < p < 1 and dof >= 1, got p={p}, dof={dof}")
    if dof == 1:
        return math.tan(math.pi * (p - 0.5))
    if dof == 2:
        return (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    if dof == 4:
        a = 4 * p * (1 - p)
        return 2 * math.sqrt(math.cos(math.acos(math.sqrt(a)) / 3) / math.sqrt(a) - 1)
    z = NormalDist().inv_cdf(p)
    t = z + (z ** 3 + z) / 4 / dof + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96 / dof ** 2 \
        + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384 / dof ** 3 \
        + (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / 92160 / dof ** 4
    if dof == 3:
        r3 = math.sqrt(3)
        for _ in range(3):
            cdf = 0.5 + (t / (r3 * (1 + t * t / 3)) + math.atan(t / r3)) / math.pi
            pdf = 6 * r3 / (math.pi * (3 + t * t) ** 2)
            t -= (cdf - p) / pdf
    return t
