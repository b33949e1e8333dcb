"""Monte Carlo errors of the numbers derived from sampled maps (docs/methods.md §11): ΔEF, σ*, ArgLens,
inconsistency across σ and deletion/insertion AUC, each from the halves or the sample groups of the same
passes (no extra model passes, except the AUC of the halves' maps).

Estimators: ΔEF, error propagation sqrt(se_m² + se_ref²) of two independent EFs; σ*, the rate at which two
disjoint halves of the groups choose different σ*; ArgLens, the pixels whose argmax over σ agrees between the
halves; inconsistency, the delete-a-group jackknife; a statistic θ of two halves, |θ(A) − θ(B)|/2.
"""
from __future__ import annotations

from itertools import combinations

import torch

from . import _validation as V
from .mc_stats import jackknife_error, leave_one_group_out
from .metrics import inconsistency
from .noise_level import sigma_star

MAX_SPLIT_GROUPS = 8    # more groups are pooled (g mod 8) before the balanced splits (35 splits for 8)


def gap_mc_error(method_error: torch.Tensor, reference_error=0.0) -> torch.Tensor:
    """Standard error of ΔEF = |EF(method) − EF(reference)| from the two EFs' standard errors (B,) (the
    reference's 0 when it is deterministic): sqrt(se_m² + se_ref²), the two EFs being independent.  Away
    from ΔEF = 0 the |·| leaves the error unchanged; near 0 (|ΔEF| within a few se) ΔEF is biased upwards
    by up to sqrt(2/π)·se and its spread is smaller than se.  -> (B,) float64."""
    m = torch.as_tensor(method_error, dtype=torch.float64)
    r = torch.as_tensor(reference_error, dtype=torch.float64, device=m.device)
    return (m.square() + r.square()).sqrt()


def half_split_error(value_a: torch.Tensor, value_b: torch.Tensor) -> torch.Tensor:
    """|θ(A) − θ(B)|/2: the half-split standard error of a statistic θ of a sampled map from its values on
    the two halves (B,) (to first order Var θ(A) = 2·Var θ(m), so E(θ(A) − θ(B))² = 4·Var θ(m)); one degree
    of freedom per image.  -> (B,) float64."""
    return (torch.as_tensor(value_a, dtype=torch.float64) - torch.as_tensor(value_b, dtype=torch.float64)).abs() / 2


def _check_groups(groups: torch.Tensor, counts: torch.Tensor) -> None:
    """groups (B, S, G, H, W) per-σ group means, counts (B, S, G) with an even G >= 2."""
    if not isinstance(groups, torch.Tensor) or groups.dim() != 5:
        V.fail("groups", f"expected per-σ group means (B, S, G, H, W), got "
                         f"{tuple(groups.shape) if isinstance(groups, torch.Tensor) else type(groups).__name__}")
    if not isinstance(counts, torch.Tensor) or tuple(counts.shape) != tuple(groups.shape[:3]):
        V.fail("group_counts", f"expected shape {tuple(groups.shape[:3])} (B, S, G), got "
                               f"{tuple(counts.shape) if isinstance(counts, torch.Tensor) else type(counts).__name__}")
    if groups.shape[2] < 2 or groups.shape[2] % 2:
        V.fail("groups", f"needs an even number of groups >= 2, got {groups.shape[2]}")


def _pooled(groups: torch.Tensor, counts: torch.Tensor):
    """At most :data:`MAX_SPLIT_GROUPS` count-weighted groups (group g into g mod 8) of (B, S, G, ...)."""
    G = groups.shape[2]
    if G <= MAX_SPLIT_GROUPS:
        return groups.double(), counts.double()
    P = MAX_SPLIT_GROUPS
    n = counts.double()
    w = n.view(*n.shape, *([1] * (groups.dim() - 3))) * groups.double()
    idx = torch.arange(G, device=groups.device) % P
    size = torch.zeros(*n.shape[:2], P, dtype=torch.float64, device=n.device).index_add_(2, idx, n)
    total = torch.zeros(*w.shape[:2], P, *w.shape[3:], dtype=torch.float64, device=w.device).index_add_(2, idx, w)
    s = size.view(*size.shape, *([1] * (groups.dim() - 3)))
    return total / s.clamp(min=1), size


def group_splits(groups: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two sides of every balanced split of the groups into two disjoint halves: (A, B), each
    (B, K, S, H, W) float64, the count-weighted means of each side's groups (K = C(G, G/2)/2 splits; G = 2:
    the halves themselves, K = 1; more than 8 groups are first pooled g mod 8).  groups (B, S, G, H, W),
    counts (B, S, G); a σ whose samples all lie on one side (a noiseless σ) gets its mean on both sides."""
    _check_groups(groups, counts)
    g, n = _pooled(groups, counts)
    G = g.shape[2]
    first = [c for c in combinations(range(G), G // 2) if 0 in c]         # each split once (group 0 on side A)
    sides = []
    for chosen in first:
        mask = torch.zeros(G, dtype=torch.bool, device=g.device)
        mask[list(chosen)] = True
        means = []
        for m in (mask, ~mask):
            nm = n[:, :, m]
            total = nm.sum(2)
            s = (nm.view(*nm.shape, 1, 1) * g[:, :, m]).sum(2)
            means.append((s, total))
        full = (means[0][0] + means[1][0]) / (means[0][1] + means[1][1]).clamp(min=1).view(*n.shape[:2], 1, 1)
        sides.append([torch.where(t.view(*n.shape[:2], 1, 1) > 0, s / t.clamp(min=1).view(*n.shape[:2], 1, 1), full)
                      for s, t in means])
    return torch.stack([a for a, _ in sides], 1), torch.stack([b for _, b in sides], 1)


def sigma_star_change(groups: torch.Tensor, counts: torch.Tensor, sigmas: torch.Tensor, noise_scale=1.0,
                      exponent: float = 2.5, *, mixing: str = "convex", admissible="image-dependent") -> torch.Tensor:
    """How often σ* would change (docs/methods.md §11): over the balanced splits of the sample groups into two
    disjoint halves (:func:`group_splits`), the fraction whose two halves choose different σ* (by
    :func:`~spectral_xai.noise_level.sigma_star` with the same rule); 0 = stable.  Each half has n/2 samples,
    so this is the change rate of an n/2-sample σ*: about right where σ* is a near tie, an upper bound for
    n samples elsewhere.  groups (B, S, G, H, W), counts (B, S, G) (``per_sigma_groups``,
    ``per_sigma_group_counts`` of ``spectral_lens(..., return_stats=True, return_per_sigma=True)``); sigmas
    (S,).  -> (B,) float64 in [0, 1].  σ* depends on a map only through its sum over the pixels (CS(σ) is
    linear in it), so the splits are taken of the per-σ sums: memory O(B·S·G), not of the maps."""
    _check_groups(groups, counts)
    a, b = group_splits(groups.double().sum(dim=(3, 4), keepdim=True), counts)
    B, K = a.shape[:2]

    def star(h):
        st = sigma_star(h.flatten(0, 1), sigmas, _repeat(noise_scale, K), exponent, mixing=mixing,
                        admissible=_repeat(admissible, K))
        return st.index.view(B, K)

    return (star(a) != star(b)).double().mean(1)


def _repeat(v, k: int):
    """A per-image (B, ...) tensor repeated for k replicates of each image (row b*k + r); anything else as is."""
    return v.repeat_interleave(k, dim=0) if isinstance(v, torch.Tensor) and v.dim() >= 1 and \
        not (v.dtype == torch.bool and v.dim() == 1) else v


def arglens_agreement(per_sigma_a: torch.Tensor, per_sigma_b: torch.Tensor) -> torch.Tensor:
    """(B, H, W) bool: where the ArgLens of the halves agree, argmax_σ of A's per-σ maps == that of B's
    (ties -> the smallest σ, as ArgLens).  per_sigma_a, per_sigma_b (B, S, H, W)."""
    if per_sigma_a.shape != per_sigma_b.shape or per_sigma_a.dim() < 3:
        V.fail("per_sigma_b", f"expected the shape of per_sigma_a {tuple(per_sigma_a.shape)} (B, S, ...), got "
                              f"{tuple(per_sigma_b.shape)}")
    return per_sigma_a.argmax(dim=1) == per_sigma_b.argmax(dim=1)


def inconsistency_mc_error(groups: torch.Tensor, counts: torch.Tensor, *, measure: str = "cosine",
                           downsample: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """(inconsistency (B,), its delete-a-group jackknife standard error (B,)), float64: ``sx.inconsistency`` of
    the per-σ maps (the count-weighted mean of the groups) and sqrt((G − 1)/G·Σ_g (θ_g − θ̄)²) with θ_g the
    inconsistency of the per-σ maps without group g (G − 1 degrees of freedom; G = 2: |θ(B) − θ(A)|/2).
    groups (B, S, G, H, W), counts (B, S, G) as in :func:`sigma_star_change`; measure, downsample as in
    :func:`~spectral_xai.metrics.inconsistency`."""
    _check_groups(groups, counts)
    B, S, G = groups.shape[:3]
    n = counts.double()
    g = groups.double()
    full = (n.view(B, S, G, 1, 1) * g).sum(2) / n.sum(2).clamp(min=1).view(B, S, 1, 1)
    loo = leave_one_group_out(g.flatten(0, 1), n.flatten(0, 1)).view(B, S, G, *g.shape[3:])
    theta = inconsistency(full, measure=measure, downsample=downsample).double()
    reps = inconsistency(loo.transpose(1, 2).flatten(0, 1), measure=measure, downsample=downsample)
    return theta, jackknife_error(theta, reps.double().view(B, G))
