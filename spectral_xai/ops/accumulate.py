"""``torch.ops.spectral_xai.accumulate_``: running means of g and g² per (image, sigma) slot.

grads (N, C, H, W) any floating dtype/strides; slots (N,) int64, the rows of a slot contiguous
and in sample order.  mean1 / mean2: float64 (P, C', H, W), C' = C or 1 (channel-reduced:
signed channel sum for g, sum of per-channel squares for g²), or empty = not tracked.
counts (P,) int64 is advanced.  With n the count after a row: ``m <- m + (v - m) / n``.

Adaptive stopping (when ``checkpoint`` is non-empty, shaped like the primary mean = mean2 if
tracked else mean1): at every count that is a multiple of ``check_every``,
``delta[p] = max|m - checkpoint|``, ``scale[p] = max|m|``, then ``checkpoint <- m``; delta and
scale (P,) float64 keep the values of the last checkpoint reached in the call.
"""
from __future__ import annotations

import torch


def accumulate_(grads: torch.Tensor, slots: torch.Tensor, mean1: torch.Tensor, mean2: torch.Tensor,
                counts: torch.Tensor, checkpoint: torch.Tensor, delta: torch.Tensor, scale: torch.Tensor,
                check_every: int) -> None:
    """Compiled op (CPU and CUDA kernels), in place; see the module docstring."""
    torch.ops.spectral_xai.accumulate_(grads, slots, mean1, mean2, counts, checkpoint, delta, scale,
                                       int(check_every))


@torch.library.register_fake("spectral_xai::accumulate_")
def _accumulate_fake(grads, slots, mean1, mean2, counts, checkpoint, delta, scale, check_every):
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


def accumulate_reference(grads, slots, mean1, mean2, counts, checkpoint, delta, scale, check_every) -> None:
    """Pure-PyTorch reference of :func:`accumulate_` (in place, row by row)."""
    track1, track2, track_stop = mean1.numel() > 0, mean2.numel() > 0, checkpoint.numel() > 0
    primary = mean2 if track2 else mean1
    acc_c = primary.shape[1]
    reduce = acc_c == 1 and grads.shape[1] > 1
    slot_list = slots.tolist()
    seg_len: dict[int, int] = {}
    for p in slot_list:
        seg_len[p] = seg_len.get(p, 0) + 1
    start = {p: int(counts[p]) for p in seg_len}
    for r, p in enumerate(slot_list):
        v1, v2 = _values(grads[r], reduce)
        n = int(counts[p]) + 1
        counts[p] = n
        if track1:
            mean1[p] = mean1[p] + (v1 - mean1[p]) / float(n)
        if track2:
            mean2[p] = mean2[p] + (v2 - mean2[p]) / float(n)
        if track_stop and n % check_every == 0:
            n_last = ((start[p] + seg_len[p]) // check_every) * check_every
            if n == n_last:
                delta[p] = (primary[p] - checkpoint[p]).abs().max()
                scale[p] = primary[p].abs().max()
            checkpoint[p] = primary[p]
