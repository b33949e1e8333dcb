"""Faithfulness by deletion and insertion (docs/methods.md §9, ECCV24 §5 and App. G), batched over the fractions.

Per image and removal fraction q: the channel-summed map ranks the pixels; the top q·N (MoRF, most
relevant first) or bottom q·N (LeRF) pixels are removed (ties broken by pixel index), giving a keep
mask M; with ``erosion=k`` the keep mask is eroded by a k x k window (the removed set grows), and the
*actual* removed fraction q' = 1 − mean(M') is the AUC's x axis.  Deletion shows x·M' + b·(1 − M'),
insertion x·(1 − M') + b·M', with b a box blur of 0.45·H (the authors' 100 px at 224²), black, or a
tensor.  Scores: the target-class probability (curves per image) and, with ``labels``, top-1 hits.

A caveat, measured on EfficientNet-Lite0 with the 4 bundled photos at 128 px (mean AUCs): with the
*black* baseline, deleting random single pixels destroys the prediction as fast as the best map
(deletion 0.050 for random and for SL²; the pixel-removal artefact the paper warns about); with the
blur baseline random is clearly worse (0.180 vs SL² 0.091, SG² 0.132).  Insertion, and MoRF against
LeRF, separate the maps more robustly (blur insertion: SL² 0.49, SG² 0.33, random 0.14).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import _validation as V
from ..options import DELETION_FRACTIONS as DEFAULT_FRACTIONS
from ..model_calls import batched_logits, check_model_device, model_scope, prepare_inference, resolve_targets



_AVG_POOL = {3: F.avg_pool1d, 4: F.avg_pool2d, 5: F.avg_pool3d}
_MAX_POOL = {3: F.max_pool1d, 4: F.max_pool2d, 5: F.max_pool3d}


def blur_baseline(x: torch.Tensor, fraction: float = 0.45) -> torch.Tensor:
    """Box blur with a (odd) kernel of ``fraction``·n pixels along every map axis, n the first map axis (H of
    images, L of signals, D of volumes), edges averaged over the valid pixels.  x (B, C, ...) -> same shape."""
    k = max(1, int(round(fraction * x.shape[2])))
    k += 1 - k % 2
    return _AVG_POOL[x.dim()](x, k, stride=1, padding=k // 2, count_include_pad=False)


def keep_masks(maps: torch.Tensor, fractions: torch.Tensor, *, erosion: int = 1, order: str = "morf") -> torch.Tensor:
    """Keep masks (B, Q, *spatial) float: 0 where the top (MoRF) / bottom (LeRF) fraction is removed, eroded.
    maps (B, L), (B, H, W) or (B, D, H, W)."""
    B, *sp = maps.shape
    N = maps[0].numel()
    flat = maps.reshape(B, N)
    idx = torch.argsort(flat, dim=1, descending=(order == "morf"), stable=True)
    rank = torch.empty_like(idx)
    rank.scatter_(1, idx, torch.arange(N, device=maps.device).expand(B, N))
    n_removed = torch.round(fractions.to(maps.device, torch.float64) * N).to(torch.int64)       # (Q,)
    keep = (rank.unsqueeze(1) >= n_removed.view(1, -1, 1)).to(torch.float32).view(B, -1, *sp)
    if erosion > 1:  # erode the keep mask: a pixel is kept only if its whole k x k window is kept
        keep = -_MAX_POOL[keep.dim()](-keep, erosion, stride=1, padding=erosion // 2)
    return keep


def check_fractions(fractions) -> torch.Tensor:
    """Removal fractions: a 1-D sequence or tensor of at least 2 finite, strictly increasing values in
    [0, 1] -> (Q,) float64 CPU.  Increasing because the curves are integrated in that order; the
    requested order is never changed silently."""
    if isinstance(fractions, torch.Tensor) and (fractions.dtype == torch.bool or fractions.is_complex()):
        V.fail("fractions", f"expected real numbers, got a {fractions.dtype} tensor", TypeError)
    try:
        q = torch.as_tensor(fractions, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        V.fail("fractions", f"expected a 1-D sequence of numbers, got {type(fractions).__name__}", TypeError)
    if q.dim() != 1:
        V.fail("fractions", f"expected a 1-D sequence, got shape {tuple(q.shape)}")
    if q.numel() < 2:
        V.fail("fractions", f"expected at least two fractions, got {q.numel()}")
    if not bool(torch.isfinite(q).all()):
        V.fail("fractions", f"contains NaN or Inf: {q.tolist()}")
    if bool((q < 0).any()) or bool((q > 1).any()):
        V.fail("fractions", f"expected values in [0, 1], got min {q.min().item():g}, max {q.max().item():g}")
    if not bool((q[1:] > q[:-1]).all()):
        V.fail("fractions", f"expected strictly increasing values (sorted, no repeats), got {q.tolist()}")
    return q


def deletion_insertion(model, x, maps, target=None, *, fractions=None, erosion: int = 1, baseline="blur",
                       order: str = "morf", labels=None, batch_size: int | None = None) -> dict:
    """Deletion and insertion curves and AUCs for x (B, C, H, W) and maps (B, H, W) or (B, C, H, W); signals
    x (B, C, L) with maps (B, L) and volumes x (B, C, D, H, W) with maps (B, D, H, W) alike (windows and blur
    along every map axis).

    ``fractions``: at least 2 strictly increasing values in [0, 1] (default 0, 0.05, ..., 1).
    Returns fractions (Q,), removed_fraction (B, Q) (actual, after erosion), deletion_curve /
    insertion_curve (B, Q) target-class probabilities, deletion_auc (lower is better) / insertion_auc
    (higher is better) (B,) by the trapezoid rule over removed_fraction, and with ``labels`` (B,) also
    deletion_accuracy / insertion_accuracy (B, Q) top-1 hits.  All fractions of an image go through
    the model as batched forward passes without gradients.
    """
    x = V.check_inputs(x)
    check_model_device(model, x)
    maps = _check_maps(maps, x)
    labels = _check_labels(labels, x)
    if order not in ("morf", "lerf"):
        V.fail("order", f"expected 'morf' or 'lerf', got {order!r}")
    V.check_positive_int(erosion, "erosion")
    if erosion % 2 == 0:
        V.fail("erosion", f"expected an odd window size, got {erosion}")
    q = check_fractions(DEFAULT_FRACTIONS if fractions is None else fractions)
    base = _baseline_images(baseline, x)
    keep = keep_masks(maps, q, erosion=erosion, order=order)                       # (B, Q, *spatial)
    removed = 1 - keep.flatten(2).mean(dim=2).to(torch.float64)                      # (B, Q)
    with model_scope(model):
        x, batch_size = prepare_inference(model, x, batch_size)
        targets = resolve_targets(model, x, target, batch_size)
        curves, hits = {}, {}
        for name in ("deletion", "insertion"):
            curves[name], hits[name] = _curve(model, x, base.to(x), keep if name == "deletion" else 1 - keep,
                                              targets, batch_size)
    out = {"fractions": q, "removed_fraction": removed}
    for name in ("deletion", "insertion"):
        out[f"{name}_curve"] = curves[name]
        out[f"{name}_auc"] = torch.trapezoid(curves[name], removed.to(curves[name].device), dim=1)
        if labels is not None:
            out[f"{name}_accuracy"] = (hits[name] == labels.view(-1, 1)).to(torch.float64)
    return out


def _check_labels(labels, x: torch.Tensor) -> torch.Tensor | None:
    """None, or (B,) integer class labels -> (B,) int64 on x's device."""
    if labels is None:
        return None
    try:
        lab = torch.as_tensor(labels)
    except (TypeError, ValueError, RuntimeError):
        V.fail("labels", f"expected (B,) integer classes, got {type(labels).__name__}", TypeError)
    if lab.is_floating_point() or lab.is_complex() or lab.dtype == torch.bool:
        V.fail("labels", f"expected integer classes, got {lab.dtype}", TypeError)
    if lab.dim() != 1 or lab.numel() != x.shape[0]:
        V.fail("labels", f"expected {x.shape[0]} labels (one per image of x), got shape {tuple(lab.shape)}")
    return lab.to(device=x.device, dtype=torch.int64)


def _check_maps(maps, x: torch.Tensor) -> torch.Tensor:
    """(B, *spatial) or (B, C, *spatial) finite maps matching x (B, C, *spatial) -> (B, *spatial) float64 on x's
    device (channels summed)."""
    sp = tuple(x.shape[2:])
    if not isinstance(maps, torch.Tensor) or maps.dim() not in (x.dim() - 1, x.dim()) \
            or maps.shape[0] != x.shape[0] or tuple(maps.shape[-len(sp):]) != sp:
        V.fail("maps", f"expected (B, *spatial) or (B, C, *spatial) maps matching x {tuple(x.shape)}, "
                       f"got {getattr(maps, 'shape', type(maps))}")
    maps = maps.detach().to(x.device, torch.float64)
    if maps.dim() == x.dim():
        maps = maps.sum(dim=1)
    if not bool(torch.isfinite(maps).all()):
        V.fail("maps", "contains NaN or Inf values")
    return maps


def _baseline_images(baseline, x: torch.Tensor) -> torch.Tensor:
    """The images that replace removed pixels: "blur", "black" or a tensor broadcast to x."""
    if isinstance(baseline, str):
        if baseline == "blur":
            return blur_baseline(x)
        if baseline == "black":
            return torch.zeros_like(x)
        V.fail("baseline", f"expected 'blur', 'black' or a tensor, got {baseline!r}")
    if isinstance(baseline, torch.Tensor):
        try:
            return baseline.to(x).expand_as(x)
        except RuntimeError:
            V.fail("baseline", f"shape {tuple(baseline.shape)} does not broadcast to {tuple(x.shape)}")
    V.fail("baseline", f"expected 'blur', 'black' or a tensor, got {type(baseline).__name__}", TypeError)


def _curve(model, x, base, keep, targets, batch_size) -> tuple[torch.Tensor, torch.Tensor]:
    """Target probabilities and top-1 classes (B, Q) of x ⊙ keep + base ⊙ (1 − keep), keep (B, Q, *spatial),
    over batched forward passes (rows ordered (image, fraction))."""
    B, Q = keep.shape[:2]
    rows = torch.cartesian_prod(torch.arange(B), torch.arange(Q)).to(x.device)       # (B·Q, 2): (b, q)

    def inputs(sl):
        bi, qi = rows[sl, 0], rows[sl, 1]
        mk = keep[bi, qi].unsqueeze(1).to(x.dtype)
        return x[bi] * mk + base[bi] * (1 - mk)

    probs = torch.empty(B, Q, dtype=torch.float64, device=x.device)
    top1 = torch.empty(B, Q, dtype=torch.int64, device=x.device)
    for sl, logits in batched_logits(model, B * Q, batch_size, inputs, targets):
        bi, qi = rows[sl, 0], rows[sl, 1]
        logits = logits.to(torch.float64)
        probs[bi, qi] = torch.softmax(logits, dim=1).gather(1, targets[bi].view(-1, 1)).squeeze(1)
        top1[bi, qi] = logits.argmax(dim=1)
    return probs, top1
