"""Monte Carlo error of sampled maps (docs/methods.md §11): standard errors, halves, groups, third moments,
relative errors, intervals and the jackknife over groups.

A sampled map m̂ = (1/n) Σ_i h_i averages per-sample maps h_i (after the channel reduction).  The engine's
fused accumulate op keeps, per (image, σ) slot, Welford's sum of squared deviations S of h_i, the sum of cubed
deviations M3, and the means of G interleaved groups (sample i in group i mod G); from them
``se² = S / (n (n − 1))``, the third central moment of m̂ ``k3 / n²`` with ``k3 = n·M3 / ((n − 1)(n − 2))``,
and the halves (A, B) over the even / odd sample indices.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from . import _validation as V
from .mc_interval import skewness_corrected_interval


@dataclass
class MapStats:
    """A sampled map with its Monte Carlo error.

    map (B, H, W) (or (B, C, H, W) unreduced): the estimate, identical to the plain return value;
    stderr: per-pixel standard error of ``map``, same shape; halves (A, B): the means over the samples with
    even / odd sample index, same shape; n_samples (B,) samples used; rel_error (B,) ||stderr||_2 / ||map||_2;
    half_counts (B, 2) samples in A and in B.  ``map == (n_A·A + n_B·B) / n``, so ``(A + B) / 2`` for even n;
    for odd n the half with one sample more weighs more.  groups (B, G, ...): the means of the G interleaved
    sample groups (sample i in group i mod G; G even, A = the count-weighted mean of the even groups, B of the
    odd ones); group_counts (B, G); third: the estimated third central moment of ``map`` (k3 / n², 0 where
    n < 3), same shape as map; dof (B,) degrees of freedom of ``stderr`` (n − 1); squared: the per-sample
    values are squares (g² or Σ_c g_c²), which decides the interval's default."""

    map: torch.Tensor
    stderr: torch.Tensor
    halves: tuple[torch.Tensor, torch.Tensor]
    n_samples: torch.Tensor
    rel_error: torch.Tensor
    half_counts: torch.Tensor
    groups: torch.Tensor | None = None
    group_counts: torch.Tensor | None = None
    third: torch.Tensor | None = None
    dof: torch.Tensor | None = None
    squared: bool = False

    def interval(self, level: float = 0.95, *, skewness: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(lo, hi) per pixel, each shaped like ``map`` (docs/methods.md §11): with ``skewness`` (default: for
        squared maps, SG²) the skewness-corrected interval of
        :func:`spectral_xai.mc_interval.skewness_corrected_interval`, else (default for signed maps, SG) the
        Student-t interval, which covers better where the per-sample values are nearly symmetric."""
        return map_interval(self.map, self.stderr, self.third, self.dof, level,
                            self.squared if skewness is None else skewness)


def map_interval(m, stderr, third, dof, level: float, skewness: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The interval of a finished map m (B, ...) from its stderr and third (like m) and dof (B,), in m's dtype;
    ``skewness=False`` ignores ``third`` (the Student-t interval)."""
    if third is None or dof is None:
        V.fail("interval", "needs the third moments and degrees of freedom of return_stats=True")
    if not isinstance(skewness, bool):
        V.fail("skewness", f"expected True, False or None, got {type(skewness).__name__}", TypeError)
    d = dof.to(device=m.device, dtype=torch.float64).view(-1, *([1] * (m.dim() - 1)))
    k3 = third.double() if skewness else torch.zeros((), dtype=torch.float64, device=m.device)
    lo, hi = skewness_corrected_interval(m.double(), stderr.double().square(), k3, d, level)
    return lo.to(m.dtype), hi.to(m.dtype)


def check_even_groups(groups: int) -> None:
    """The halves (A, B) of the statistics are the even / odd groups: return_stats needs an even G."""
    if groups % 2:
        V.fail("groups", f"return_stats needs an even number of groups (the halves A, B are the even / odd "
                         f"groups), got {groups}")


def _expand(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """t (B, S[, G]) viewed with trailing singleton axes to broadcast against ``like``."""
    return t.view(*t.shape, *([1] * (like.dim() - t.dim())))


def mean_variance(sumsq: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Variance of a running mean, se² = S / (n (n − 1)), 0 where n <= 1 (a noiseless slot's one sample
    is its exact mean).  sumsq (B, S, ...) float64, counts (B, S) -> like sumsq."""
    n = _expand(counts.to(sumsq.dtype), sumsq)
    return torch.where(n > 1, sumsq / (n * (n - 1)).clamp(min=1), torch.zeros_like(sumsq))


def mean_third_moment(sumcube: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Third central moment of a running mean, k3 / n² = M3 / (n (n − 1)(n − 2)) with k3 = n·M3 / ((n − 1)(n − 2))
    the unbiased third cumulant of the samples; 0 where n < 3.  sumcube (B, S, ...), counts (B, S) -> like sumcube."""
    n = _expand(counts.to(sumcube.dtype), sumcube)
    return torch.where(n > 2, sumcube / (n * (n - 1) * (n - 2)).clamp(min=1), torch.zeros_like(sumcube))


def filled_groups(group_mean: torch.Tensor, group_counts: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Group means (B, S, G, ...) with an empty group replaced by the slot's mean (a slot with fewer samples
    than groups: a noiseless slot's one exact sample).  group_counts (B, S, G); mean (B, S, ...)."""
    return torch.where(_expand(group_counts == 0, group_mean), mean.unsqueeze(2), group_mean)


def halves_of_groups(groups: torch.Tensor, counts: torch.Tensor, mean: torch.Tensor):
    """(A, B) (B, S, ...): the count-weighted means of the even / odd groups of (B, S, G, ...) filled groups;
    for G = 2 the groups themselves (bit for bit).  A half without samples is the slot's mean."""
    G = groups.shape[2]
    if G == 2:
        return groups[:, :, 0], groups[:, :, 1]
    out = []
    for parity in (0, 1):
        n = counts[:, :, parity::2].to(groups.dtype)
        total = n.sum(2)
        s = (_expand(n, groups[:, :, parity::2]) * groups[:, :, parity::2]).sum(2)
        t = _expand(total, s)
        out.append(torch.where(t > 0, s / t.clamp(min=1), mean))
    return out[0], out[1]


def relative_error(m: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """(B,) ||se||_2 / ||m||_2 over every element of an image; 0 for an exact zero map, inf for a zero map
    with error.  m, var (B, ...)."""
    num = var.flatten(1).sum(1).sqrt()
    den = m.flatten(1).square().sum(1).sqrt()
    return torch.where(den > 0, num / den.clamp(min=torch.finfo(den.dtype).tiny),
                       torch.where(num > 0, torch.full_like(num, float("inf")), torch.zeros_like(num)))


def combine_sigmas(values: torch.Tensor, weights: torch.Tensor, power: int = 1) -> torch.Tensor:
    """Σ_j w_j^power v_j over the σ axis 1 (power 1: maps, 2: variances, 3: third moments), summed elementwise
    in σ order, so an image's result never depends on the other images of the call (a batched reduction such as
    einsum may change the last bit with the batch).  values (B, S, ...), weights (S,) -> (B, ...)."""
    w = weights.to(device=values.device, dtype=values.dtype)
    w = w if power == 1 else w ** power
    out = values[:, 0] * w[0]
    for j in range(1, values.shape[1]):
        out = out + values[:, j] * w[j]
    return out


def welch_satterthwaite(var_s: torch.Tensor, counts: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(B,) degrees of freedom of the σ-weighted variance Σ_j w_j² se_j² (per image, over every pixel):
    (Σ_j a_j)² / Σ_j a_j² / (n_j − 1) with a_j = w_j² Σ_pixels se_j²; one σ: n − 1; no variance: max n_j − 1.
    var_s (B, S, ...), counts (B, S)."""
    n = counts.to(torch.float64)
    fallback = (n.max(dim=1).values - 1).clamp(min=0)
    if var_s.shape[1] == 1:
        return fallback
    a = var_s.flatten(2).sum(2) * weights.to(device=var_s.device, dtype=var_s.dtype).square()
    den = torch.where(n > 1, a.square() / (n - 1).clamp(min=1), torch.zeros_like(a)).sum(1)
    num = a.sum(1).square()
    return torch.where(den > 0, num / den.clamp(min=torch.finfo(den.dtype).tiny), fallback)


@dataclass
class SigmaStats:
    """Statistics of g^k per σ slot and of the σ-weighted map Σ_j w_j m_j, float64.

    Per σ: mean_s, var_s (se²), a_s, b_s (halves), third_s (B, S, C', ...); groups_s (B, S, G, C', ...);
    counts_s (B, S, G); dof_s (B, S) = n − 1.  Combined (the σ slots are independent: se² = Σ_j w_j² se_j²,
    κ3 = Σ_j w_j³ κ3_j): mean, var, a, b, third (B, C', ...); groups (B, G, C', ...); group_counts (B, G) of
    the σ with most samples; dof (B,) by Welch–Satterthwaite."""

    mean_s: torch.Tensor
    var_s: torch.Tensor
    a_s: torch.Tensor
    b_s: torch.Tensor
    third_s: torch.Tensor
    groups_s: torch.Tensor
    counts_s: torch.Tensor
    dof_s: torch.Tensor
    mean: torch.Tensor
    var: torch.Tensor
    a: torch.Tensor
    b: torch.Tensor
    third: torch.Tensor
    groups: torch.Tensor
    group_counts: torch.Tensor
    dof: torch.Tensor


def sigma_statistics(est, k: int, weights: torch.Tensor) -> SigmaStats:
    """From an engine Estimate with statistics, for g^k: the per-σ and σ-weighted statistics."""
    mean = est.mean2 if k == 2 else est.mean1
    var = mean_variance(est.sumsq2 if k == 2 else est.sumsq1, est.n_samples)
    third = mean_third_moment(est.sumcube2 if k == 2 else est.sumcube1, est.n_samples)
    groups = filled_groups(est.group_mean2 if k == 2 else est.group_mean1, est.group_counts, mean)
    a, b = halves_of_groups(groups, est.group_counts, mean)
    comb = [combine_sigmas(t, weights) for t in (mean, a, b, groups)]
    return SigmaStats(mean_s=mean, var_s=var, a_s=a, b_s=b, third_s=third, groups_s=groups,
                      counts_s=est.group_counts, dof_s=(est.n_samples - 1).clamp(min=0).to(torch.float64),
                      mean=comb[0], var=combine_sigmas(var, weights, 2), a=comb[1], b=comb[2],
                      third=combine_sigmas(third, weights, 3), groups=comb[3],
                      group_counts=est.group_counts.max(dim=1).values,
                      dof=welch_satterthwaite(var, est.n_samples, weights))


def parity_counts(group_counts: torch.Tensor) -> torch.Tensor:
    """(..., 2) samples with an even / odd sample index from group counts (..., G), G even."""
    return torch.stack([group_counts[..., 0::2].sum(-1), group_counts[..., 1::2].sum(-1)], dim=-1)


def leave_one_group_out(groups: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """(B, G, ...) float64: for each g, the count-weighted mean of every group but g (the jackknife's
    leave-one-out estimates; where g holds every sample, the mean of all).  groups (B, G, ...) group means,
    counts (B, G) their sample counts."""
    g = groups.to(torch.float64)
    n = _expand(counts.to(device=g.device, dtype=torch.float64), g)
    total = (n * g).sum(1, keepdim=True)
    size = n.sum(1, keepdim=True)
    rest = size - n
    return torch.where(rest > 0, (total - n * g) / rest.clamp(min=1), total / size.clamp(min=1))


def jackknife_error(full: torch.Tensor, loo: torch.Tensor) -> torch.Tensor:
    """(B,) jackknife standard error sqrt((G − 1)/G · Σ_g (loo_g − mean_g loo)²) of a statistic whose value on
    all samples is ``full`` (B,) and on the leave-one-group-out means ``loo`` (B, G)."""
    if loo.dim() != 2 or full.shape != loo.shape[:1]:
        V.fail("loo", f"expected shape (B, G) with B = {tuple(full.shape)}, got {tuple(loo.shape)}")
    G = loo.shape[1]
    loo = loo.to(torch.float64)
    return ((G - 1) / G * (loo - loo.mean(1, keepdim=True)).square().sum(1)).sqrt()
