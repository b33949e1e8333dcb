"""``torch.ops.spectral_xai.accumulate_``: running means of g and g² per (image, sigma) slot.

grads (N, C, H, W) any floating dtype/strides; slots (N,) int64, the rows of a slot contiguous
and in sample order.  mean1 / mean2: float64 (P, C', H, W), C' = C or 1 (channel-reduced:
signed channel sum for g, sum of per-channel squares for g²), or empty = not tracked.
counts (P,) int64 is advanced.  With n the count after a row: ``m <- m + (v - m) / n``.

Adaptive stopping (when ``checkpoint`` is non-empty, shaped like the primary mean = mean2 if
tracked else mean1): at every count that is a multiple of ``check_every``,
``delta[p] = max|m - checkpoint|``, ``scale[p] = max|m|``, then ``checkpoint <- m``; delta and
scale (P,) float64 keep the values of the last checkpoint reached in the call.

Monte Carlo statistics (``accumulate_stats_``, same pass; each optional, None or empty = not
requested, in place, advanced call after call).  v_k is the per-pixel value after the channel
reduction (g or Σ_c g_c for k=1, g² or Σ_c g_c² for k=2):

- ``sumsq1`` / ``sumsq2`` float64 (P, C', H, W), needs mean_k: Welford's sum of squared
  deviations ``d = v - m_{n-1}; m_n = m_{n-1} + d/n; S_n = S_{n-1} + d·(v - m_n)``, so the
  unbiased variance of v_k is ``S / (n - 1)``.
- ``sumcube1`` / ``sumcube2`` float64 (P, C', H, W), need sumsq_k: the sum of cubed deviations
  M3 (Pébay's online update, S before the row): ``q = d/n; t1 = d·q·(n − 1);
  M3 += t1·q·(n − 2) − 3·q·S``, so M3 = Σ_i (v_i − m_n)³ (docs/methods.md §11).
- ``group_counts`` int64 (P, G), 2 <= G <= :data:`MAX_GROUPS`: samples in each of G interleaved
  groups, row r in group ``sample_index[r] mod G``, ``sample_index`` (N,) int64 >= 0 (e.g. the
  chunk's sample-index column).  G = 2: the even (column 0) / odd (column 1) halves.
- ``group_mean1`` / ``group_mean2`` float64 (P, G, C', H, W), need group_counts: running means
  of v_k over each group's samples, exact means for any counts.
- ``nonfinite`` int64 (P,): advanced by the number of non-finite elements of grads in the
  slot's rows (every element, before the channel reduction).
"""
from __future__ import annotations

import torch

from .._validation import fail

from ..options import MAX_GROUPS  # most interleaved sample groups (csrc: kMaxGroups)
_STATS = ("sumsq1", "sumsq2", "sumcube1", "sumcube2", "group_mean1", "group_mean2", "group_counts", "nonfinite")
_INT_STATS = ("group_counts", "nonfinite")


def _requested(t) -> bool:
    return t is not None and t.numel() > 0


def _stat_args(grads, sample_index, stats: dict) -> list[torch.Tensor]:
    """The optional tensors in schema order, an empty tensor for each one not requested."""
    def empty(dtype):
        return torch.empty(0, dtype=dtype, device=grads.device)

    args = [sample_index if sample_index is not None else empty(torch.int64)]
    for name in _STATS:
        t = stats[name]
        args.append(t if t is not None else empty(torch.int64 if name in _INT_STATS else torch.float64))
    return args


def accumulate_(grads: torch.Tensor, slots: torch.Tensor, mean1: torch.Tensor, mean2: torch.Tensor,
                counts: torch.Tensor, checkpoint: torch.Tensor, delta: torch.Tensor, scale: torch.Tensor,
                check_every: int, *, sample_index: torch.Tensor | None = None, sumsq1: torch.Tensor | None = None,
                sumsq2: torch.Tensor | None = None, sumcube1: torch.Tensor | None = None,
                sumcube2: torch.Tensor | None = None, group_mean1: torch.Tensor | None = None,
                group_mean2: torch.Tensor | None = None, group_counts: torch.Tensor | None = None,
                nonfinite: torch.Tensor | None = None) -> None:
    """Compiled op (CPU and CUDA kernels), in place; see the module docstring for the shapes.

    Without any statistic this is ``accumulate_``; with one, ``accumulate_stats_`` (one pass).
    """
    stats = dict(sumsq1=sumsq1, sumsq2=sumsq2, sumcube1=sumcube1, sumcube2=sumcube2, group_mean1=group_mean1,
                 group_mean2=group_mean2, group_counts=group_counts, nonfinite=nonfinite)
    for name, t in [("sample_index", sample_index), *stats.items()]:
        if t is not None and not isinstance(t, torch.Tensor):
            fail(name, f"expected a tensor or None, got {type(t).__name__}", TypeError)
    if not any(_requested(t) for t in stats.values()):
        torch.ops.spectral_xai.accumulate_(grads, slots, mean1, mean2, counts, checkpoint, delta, scale,
                                           int(check_every))
        return
    torch.ops.spectral_xai.accumulate_stats_(grads, slots, mean1, mean2, counts, checkpoint, delta, scale,
                                             int(check_every), *_stat_args(grads, sample_index, stats))


@torch.library.register_fake("spectral_xai::accumulate_")
def _accumulate_fake(grads, slots, mean1, mean2, counts, checkpoint, delta, scale, check_every):
    return None


@torch.library.register_fake("spectral_xai::accumulate_stats_")
def _accumulate_stats_fake(grads, slots, mean1, mean2, counts, checkpoint, delta, scale, check_every, sample_index,
                           sumsq1, sumsq2, sumcube1, sumcube2, group_mean1, group_mean2, group_counts, nonfinite):
    return None


def _values(g: torch.Tensor, reduce: bool) -> tuple[torch.Tensor, torch.Tensor]:
    g = g.to(torch.float64)
    if not reduce:
        return g, g * g
    v1 = torch.zeros_like(g[0:1])
    v2 = torch.zeros_like(g[0:1])
    for c in range(g.shape[0]):  # sequential channel sum, as the kernels
        v = g[c:c + 1]
        v1 = v1 + v
        v2 = v2 + v * v
    return v1, v2


def _welford_(mean: torch.Tensor, sumsq: torch.Tensor | None, v: torch.Tensor, n: int,
              sumcube: torch.Tensor | None = None) -> None:
    """One running-mean step of ``mean`` (and Welford's ``sumsq``, Pébay's ``sumcube``) with the n-th value v,
    in place, in the kernels' order of operations."""
    d = v - mean
    dn = float(n)
    mean.copy_(mean + d / dn)
    if sumsq is None:
        return
    if sumcube is not None:
        q = d / dn
        t1 = d * q * (dn - 1.0)
        sumcube.copy_(sumcube + (t1 * q * (dn - 2.0) - 3.0 * q * sumsq))
    sumsq.copy_(sumsq + d * (v - mean))


def accumulate_reference(grads, slots, mean1, mean2, counts, checkpoint, delta, scale, check_every, *,
                         sample_index=None, sumsq1=None, sumsq2=None, sumcube1=None, sumcube2=None,
                         group_mean1=None, group_mean2=None, group_counts=None, nonfinite=None) -> None:
    """Pure-PyTorch reference of :func:`accumulate_` with its statistics (in place, row by row)."""
    track_stop = checkpoint.numel() > 0
    means = [m if m.numel() > 0 else None for m in (mean1, mean2)]
    sumsqs = [s if _requested(s) else None for s in (sumsq1, sumsq2)]
    cubes = [c if _requested(c) else None for c in (sumcube1, sumcube2)]
    groups = [h if _requested(h) else None for h in (group_mean1, group_mean2)]
    G = group_counts.shape[1] if _requested(group_counts) else 0
    primary = means[1] if means[1] is not None else means[0]
    reduce = primary.shape[1] == 1 and grads.shape[1] > 1
    slot_list = slots.tolist()
    seg_len: dict[int, int] = {}
    for p in slot_list:
        seg_len[p] = seg_len.get(p, 0) + 1
    start = {p: int(counts[p]) for p in seg_len}
    for r, p in enumerate(slot_list):
        values = _values(grads[r], reduce)
        n = int(counts[p]) + 1
        counts[p] = n
        if _requested(nonfinite):
            nonfinite[p] += int((~torch.isfinite(grads[r])).sum())
        if G:
            q = int(sample_index[r]) % G
            group_counts[p, q] += 1
        for k in range(2):
            if means[k] is not None:
                _welford_(means[k][p], sumsqs[k][p] if sumsqs[k] is not None else None, values[k], n,
                          cubes[k][p] if cubes[k] is not None else None)
            if groups[k] is not None:
                _welford_(groups[k][p, q], None, values[k], int(group_counts[p, q]))
        if track_stop and n % check_every == 0:
            n_last = ((start[p] + seg_len[p]) // check_every) * check_every
            if n == n_last:
                delta[p] = (primary[p] - checkpoint[p]).abs().max()
                scale[p] = primary[p].abs().max()
            checkpoint[p] = primary[p]
