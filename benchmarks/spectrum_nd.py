"""Case ``spectrum_nd``: radial power spectrum throughput of signals (B, L) and volumes (B, D, H, W), the fused op
vs numpy per map vs the pure-PyTorch reference.

ours = ``spectral_xai.radial_power_spectrum(maps, ndim=1|3)`` (rfftn over the map axes + the fused shell pass,
float64 accumulation); numpy = per map np.fft.fftn, fftshift, integer radius floor(||k − n//2||), bincount
mean (the recipe of docs/methods.md §7 in N-D); torch = ``ops.radial_power_spectrum_reference`` (batched full
fftn, fftshift, index_add).  All three agree (max relative difference to numpy reported); maps per second.
"""
from __future__ import annotations

import numpy as np
import torch

import spectral_xai as sx
from spectral_xai.ops import radial_power_spectrum_reference

from .common import compare


def shells_numpy(maps: np.ndarray) -> list[np.ndarray]:
    """The N-D recipe, one map at a time.  (B, *spatial) -> B spectra (K,)."""
    shape = maps.shape[1:]
    axes = np.meshgrid(*[np.arange(n) - n // 2 for n in shape], indexing="ij")
    k = np.floor(np.sqrt(sum(a.astype(np.float64) ** 2 for a in axes))).astype(int).ravel()
    counts = np.bincount(k)
    return [np.bincount(k, (np.abs(np.fft.fftshift(np.fft.fftn(m))) ** 2).ravel()) / counts for m in maps]


def _one(shape: tuple, batch: int, repeats: int, device: torch.device) -> dict:
    ndim = len(shape)
    maps = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0))
    arr = maps.double().numpy()
    maps = maps.to(device)
    fns = {"numpy_per_map": lambda: shells_numpy(arr), "ours": lambda: sx.radial_power_spectrum(maps, ndim=ndim),
           "torch_reference": lambda: radial_power_spectrum_reference(maps)}
    ref = np.stack(shells_numpy(arr))
    agree = {k: float(np.abs(np.stack([np.asarray(torch.as_tensor(s).cpu().double()) for s in fn()]) - ref).max()
                      / np.abs(ref).max()) for k, fn in fns.items()}
    timing = compare(fns, "numpy_per_map", repeats, device)
    rate = {k: batch / v for k, v in timing["median_s"].items()}
    speedup = {k: 1 / v for k, v in timing["ratio"].items()}
    label = "×".join(str(n) for n in shape)
    print(f"  {ndim}-D {label}: ours {rate['ours']:.0f} maps/s = {speedup['ours']:.1f}x numpy per map, "
          f"{speedup['ours'] / speedup['torch_reference']:.1f}x the torch reference", flush=True)
    return {"shape": list(shape), "batch": batch, **timing, "maps_per_s": rate, "speedup_over_numpy": speedup,
            "max_rel_diff_to_numpy": agree,
            "rows": [[f"{ndim}-D {label} (B = {batch})", k, f"{rate[k]:.1f}", f"{speedup[k]:.2f}", f"{agree[k]:.1e}"]
                     for k in fns]}


def run(device: torch.device, quick: bool) -> dict:
    cases = ([((256,), 16, 1), ((8, 8, 8), 4, 1)] if quick
             else [((4096,), 512, 5), ((32, 32, 32), 32, 5), ((64, 64, 64), 8, 5)])
    parts = [_one(shape, batch, repeats, device) for shape, batch, repeats in cases]
    return {
        "title": "radial power spectrum of signals and volumes (maps/s)", "cases": parts,
        "note": "speed-up = median over repeats of t_numpy / t_method (same repeat); float32 maps: ours takes the "
                "real FFT in float32 and accumulates the shells in float64 (hence ~2e-7), the torch reference and "
                "numpy work in float64.",
        "table": {"columns": ["maps", "method", "maps/s", "speed-up over numpy per map", "max rel. diff to numpy"],
                  "rows": [row for p in parts for row in p["rows"]]},
    }
