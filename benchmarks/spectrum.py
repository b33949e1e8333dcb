"""Case ``spectrum``: Expected Frequency throughput, the fused ops vs the authors' numpy recipe vs plain torch.

For B rank-normalised maps: ours = ``spectral_xai.expected_frequency`` (rank op + rfft2 + fused ring
pass); numpy = the authors' recipe per image (scipy rankdata, np.fft.fft2, fftshift, integer radius,
bincount mean); torch = the same recipe batched in plain torch (fft2, fftshift, bincount).  All three
agree (max relative difference to the numpy recipe reported); ratios are in maps per second.
"""
from __future__ import annotations

import numpy as np
import scipy.stats
import torch

import spectral_xai as sx

from .common import compare


def ef_numpy(maps: np.ndarray, rank: bool = True) -> np.ndarray:
    """The authors' recipe, one (H, W) map at a time (``rank=False``: the same without the rank
    normalisation).  (B, H, W) -> (B,)."""
    out = []
    for m in maps:
        r = scipy.stats.rankdata(m.ravel(), "average").reshape(m.shape) / m.size if rank else m
        p = np.abs(np.fft.fftshift(np.fft.fft2(r))) ** 2
        H, W = m.shape
        v, u = np.meshgrid(np.arange(W) - W // 2, np.arange(H) - H // 2)
        k = np.floor(np.sqrt(u**2 + v**2)).astype(int)
        s = np.bincount(k.ravel(), p.ravel()) / np.bincount(k.ravel())
        w = np.arange(s.size) / (s.size - 1)
        out.append((w * s).sum() / s.sum())
    return np.array(out)


def ef_torch(maps: torch.Tensor) -> torch.Tensor:
    """The same recipe batched in plain torch.  (B, H, W) -> (B,) float64."""
    B, H, W = maps.shape
    flat = maps.flatten(1)
    ranks = torch.empty_like(flat, dtype=torch.float64)
    for b in range(B):  # average ranks with ties, plain torch
        _, inv, cnt = torch.unique(flat[b], sorted=True, return_inverse=True, return_counts=True)
        ends = torch.cumsum(cnt, 0).double()
        ranks[b] = (ends - (cnt.double() - 1) / 2)[inv] / flat.shape[1]
    p = torch.fft.fftshift(torch.fft.fft2(ranks.view(B, H, W)).abs() ** 2, dim=(-2, -1))
    u = torch.arange(H, device=maps.device) - H // 2
    v = torch.arange(W, device=maps.device) - W // 2
    k = torch.sqrt((u.view(-1, 1) ** 2 + v.view(1, -1) ** 2).double()).floor().long().flatten()
    K = int(k.max()) + 1
    s = torch.zeros(B, K, dtype=torch.float64, device=maps.device).index_add_(1, k, p.flatten(1)) \
        / torch.bincount(k, minlength=K)
    w = torch.arange(K, dtype=torch.float64, device=maps.device) / (K - 1)
    return (s * w).sum(1) / s.sum(1)


def run(device: torch.device, quick: bool) -> dict:
    size, batch, repeats = (64, 8, 1) if quick else (224, 64, 5)
    maps = torch.randn(batch, size, size, generator=torch.Generator().manual_seed(0))
    arr = maps.double().numpy()
    maps = maps.to(device)
    fns = {"numpy_recipe": lambda: ef_numpy(arr), "ours": lambda: sx.expected_frequency(maps),
           "plain_torch": lambda: ef_torch(maps)}
    ref = ef_numpy(arr)
    agree = {k: float(np.abs(torch.as_tensor(fn()).cpu().double().numpy() - ref).max() / np.abs(ref).max())
             for k, fn in fns.items()}
    timing = compare(fns, "numpy_recipe", repeats, device)
    rate = {k: batch / v for k, v in timing["median_s"].items()}
    speedup = {k: 1 / v for k, v in timing["ratio"].items()}  # time ratio -> maps/s ratio
    print(f"  ours {rate['ours']:.0f} maps/s = {speedup['ours']:.1f}x the numpy recipe, "
          f"{speedup['ours'] / speedup['plain_torch']:.1f}x plain torch", flush=True)
    rows = [[k, f"{rate[k]:.1f}", f"{speedup[k]:.2f}", f"{agree[k]:.1e}"] for k in fns]
    return {
        "title": f"Expected Frequency of {batch} maps of {size}×{size} (maps/s)", "size": size, "batch": batch,
        **timing, "maps_per_s": rate, "speedup_over_numpy": speedup,
        "ours_over_plain_torch": speedup["ours"] / speedup["plain_torch"], "max_rel_diff_to_numpy": agree,
        "note": "speed-up = median over repeats of t_numpy / t_method (same repeat).",
        "table": {"columns": ["method", "maps/s", "speed-up over the numpy recipe", "max rel. diff to numpy"],
                  "rows": rows},
    }
