"""Perturbation explainers (the papers' finite-difference methods) in the same engine contract
(docs/methods.md §10): RISE and Occlusion.

Both take model, x (B, C, H, W), target (clean arg-max by default), explain F = the target-class
probability (``output`` as everywhere: "prob" default here, "log_softmax", "logit"), run batched
forward passes without gradients, and return (B, H, W) maps.  RISE masks come from the same Philox
counter generator as the gradient noise, keyed by (seed, image id, mask index), so a map does not
depend on batch size or chunking and an image explained alone with its id gets the same map.
"""
from __future__ import annotations

import math
import sys
import time

import torch
import torch.nn.functional as F

from . import _validation as V
from .model_calls import batched_logits, check_model_device, explained_output, model_scope, prepare_inference, resolve_targets
from .ops._philox import philox4x32_10
from .options import accepts_options, output_dtype

RISE_STREAM = 0xFFFFFFFE  # sigma-index word reserved for the RISE masks


def _uniforms(seed: int, image_id: int, n_masks: int, per_mask: int) -> torch.Tensor:
    """(n_masks, per_mask) uniforms in (0, 1) keyed by (seed, image id, mask index, position)."""
    groups = (per_mask + 3) // 4
    i = torch.arange(n_masks, dtype=torch.int64).repeat_interleave(groups)
    g = torch.arange(groups, dtype=torch.int64).repeat(n_masks)
    w = philox4x32_10([g, i, torch.full_like(i, RISE_STREAM), torch.full_like(i, image_id)],
                      (seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF))
    u = (torch.stack(w, dim=1).to(torch.float64) + 0.5) / 2.0**32                 # (n_masks*groups, 4)
    return u.reshape(n_masks, groups * 4)[:, :per_mask]


def rise_masks(seed: int, image_id: int, n_masks: int, size: tuple[int, int], grid: int = 7,
               p: float = 0.5) -> torch.Tensor:
    """(n_masks, H, W) RISE masks: Bernoulli(p) cells on a grid x grid lattice, bilinearly up-sampled to
    (grid + 1) cells of ceil(H/grid) x ceil(W/grid) pixels and cropped at a random shift."""
    H, W = size
    ch, cw = math.ceil(H / grid), math.ceil(W / grid)
    u = _uniforms(seed, image_id, n_masks, grid * grid + 2)
    cells = (u[:, : grid * grid] < p).to(torch.float32).view(n_masks, 1, grid, grid)
    up = F.interpolate(cells, size=((grid + 1) * ch, (grid + 1) * cw), mode="bilinear", align_corners=False)
    dy = (u[:, -2] * ch).floor().to(torch.int64)
    dx = (u[:, -1] * cw).floor().to(torch.int64)
    rows = (dy.view(-1, 1) + torch.arange(H)).view(n_masks, 1, H, 1).expand(n_masks, 1, H, (grid + 1) * cw)
    crop = up.gather(2, rows)
    cols = (dx.view(-1, 1) + torch.arange(W)).view(n_masks, 1, 1, W).expand(n_masks, 1, H, W)
    return crop.gather(3, cols)[:, 0]


def _progress(images, on: bool, what: str, per_image: int, unit: str):
    """Yields the image indices; with ``on``, a line on stderr after each image: done, rate, ETA."""
    start, total = time.perf_counter(), len(images)
    for k, b in enumerate(images):
        yield b
        if on:
            spent = time.perf_counter() - start
            rate = (k + 1) * per_image / max(spent, 1e-9)
            print(f"{what}: image {k + 1}/{total}, {rate:.0f} {unit}/s, elapsed {spent:.0f} s, "
                  f"ETA {spent / (k + 1) * (total - k - 1):.0f} s", file=sys.stderr, flush=True)


def _scores(model, n_rows: int, batch_size: int, inputs_of, targets_of, output: str, targets: torch.Tensor):
    """Yields (chunk slice, F (rows,) float64) of the explained output over batched forward passes;
    ``targets`` (B,): every class explained (checked against the model's outputs)."""
    for sl, logits in batched_logits(model, n_rows, batch_size, inputs_of, targets):
        yield sl, explained_output(logits.to(torch.float64), targets_of(sl), output)


def _checked(model, x, output: str) -> torch.Tensor:
    """The checks both explainers start with: x (B, C, H, W) images, the model's device, the output."""
    x = V.check_images(x)
    check_model_device(model, x)
    V.check_output(output)
    return x


@accepts_options
def rise(model, x, target=None, *, n_masks: int = 2000, grid: int = 7, p: float = 0.5, output: str = "prob",
         seed: int = 0, image_ids=None, batch_size: int | None = None, progress: bool = False) -> torch.Tensor:
    """RISE (Petsiuk et al. 2018, docs/methods.md §10): map = Σ_i F(x ⊙ M_i) M_i / (n_masks · p).

    Args:
        model: a classifier x (B, C, H, W) -> logits (B, K).
        x: images (B, C, H, W).
        target: None (the clean arg-max), an int or (B,) class indices.
        n_masks, grid, p: masks per image, their cell grid and keep probability.
        output: "prob" (default here), "log_softmax" or "logit" of the target.
        seed, image_ids: the mask keys (or ``sampling=``).
        batch_size: rows per forward pass (or ``execution=``).
        progress: a line per image on stderr (images done, masks/s, ETA).

    Returns:
        (B, H, W) float32 map (float64 for float64 x).

    Example:
        >>> sx.rise(model, x, n_masks=16).shape
        torch.Size([2, 8, 8])
    """
    x = _checked(model, x, output)
    n_masks = V.check_positive_int(n_masks, "n_masks")
    grid = V.check_positive_int(grid, "grid")
    if not 0 < p < 1:
        V.fail("p", f"expected 0 < p < 1, got {p!r}")
    seed = V.check_seed(seed)
    ids = V.check_image_ids(image_ids, x.shape[0], torch.device("cpu"))
    B, _, H, W = x.shape
    out_dtype = output_dtype(x)
    out = torch.zeros(B, H, W, dtype=torch.float64, device=x.device)
    with model_scope(model):
        x, batch_size = prepare_inference(model, x, batch_size)
        targets = resolve_targets(model, x, target, batch_size)
        for b in _progress(range(B), progress, "RISE", n_masks, "masks"):
            masks = rise_masks(seed, int(ids[b]), n_masks, (H, W), grid, p).to(x.device)
            masked = lambda sl: x[b:b + 1] * masks[sl].unsqueeze(1).to(x.dtype)  # noqa: E731
            for sl, f in _scores(model, n_masks, batch_size, masked, lambda sl: targets[b].expand(sl.stop - sl.start),
                                 output, targets):
                out[b] += (f.view(-1, 1, 1) * masks[sl].to(torch.float64)).sum(dim=0)
    return (out / (n_masks * p)).to(out_dtype)


@accepts_options
def occlusion(model, x, target=None, *, window: int | None = None, stride: int | None = None, baseline=0.0,
              output: str = "prob", batch_size: int | None = None, progress: bool = False) -> torch.Tensor:
    """Occlusion (docs/methods.md §10): every pixel gets the mean of F(x) − F(occluded) over the windows
    that cover it.

    Args:
        model, x, target, output, batch_size, progress: as in :func:`rise` (x (B, C, H, W)).
        window: patch side (default one cell of a 7 x 7 grid).
        stride: default window // 2.
        baseline: the value an occluded patch takes.

    Returns:
        The (B, H, W) map, float32 (float64 for float64 x).

    Example:
        >>> sx.occlusion(model, x, window=4).shape
        torch.Size([2, 8, 8])
    """
    x = _checked(model, x, output)
    B, _, H, W = x.shape
    out_dtype = output_dtype(x)
    window = V.check_positive_int(window if window is not None else math.ceil(min(H, W) / 7), "window")
    stride = V.check_positive_int(stride if stride is not None else max(1, window // 2), "stride")
    if window > min(H, W):
        V.fail("window", f"must fit in the image ({H} x {W}), got {window}")
    ys = list(range(0, H - window + 1, stride))
    xs = list(range(0, W - window + 1, stride))
    if ys[-1] != H - window:
        ys.append(H - window)
    if xs[-1] != W - window:
        xs.append(W - window)
    patches = [(y, xx) for y in ys for xx in xs]
    total = torch.zeros(B, H, W, dtype=torch.float64, device=x.device)
    cover = torch.zeros(H, W, dtype=torch.float64, device=x.device)
    for y, xx in patches:
        cover[y:y + window, xx:xx + window] += 1
    with model_scope(model):
        x, batch_size = prepare_inference(model, x, batch_size)
        targets = resolve_targets(model, x, target, batch_size)
        clean = torch.cat([f for _, f in _scores(model, B, batch_size, lambda sl: x[sl], lambda sl: targets[sl],
                                                  output, targets)])

        def occluded(sl, b):
            inp = x[b:b + 1].repeat(sl.stop - sl.start, 1, 1, 1)
            for k, (y, xx) in enumerate(patches[sl]):
                inp[k, :, y:y + window, xx:xx + window] = baseline
            return inp

        for b in _progress(range(B), progress, "occlusion", len(patches), "windows"):
            for sl, f in _scores(model, len(patches), batch_size, lambda sl: occluded(sl, b),
                                 lambda sl: targets[b].expand(sl.stop - sl.start), output, targets):
                drop = clean[b] - f
                for k, (y, xx) in enumerate(patches[sl]):
                    total[b, y:y + window, xx:xx + window] += drop[k]
    return (total / cover).to(out_dtype)
