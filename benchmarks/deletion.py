"""Case ``deletion``: deletion/insertion curves, batched over the fractions vs a loop over the fractions.

batched = ``spectral_xai.metrics.deletion_insertion`` (all (image, fraction) rows in chunks of
``batch_size`` forward passes without gradients); per_q_loop = the usual implementation: for each
fraction q, one forward pass of the B masked images (same masks, same blur baseline, same scores).
The two must give the same curves (max abs difference reported).
"""
from __future__ import annotations

import torch

from spectral_xai.metrics import deletion_insertion
from spectral_xai.metrics.faithfulness import DEFAULT_FRACTIONS, blur_baseline, keep_masks

from .common import compare, small_cnn_28


def per_q_loop(model, x, maps, target):
    """Deletion and insertion curves (B, Q) with one forward pass of B images per fraction."""
    q = torch.tensor(DEFAULT_FRACTIONS, dtype=torch.float64)
    keep = keep_masks(maps.double(), q)
    base = blur_baseline(x)
    curves = {}
    with torch.no_grad():
        for name in ("deletion", "insertion"):
            cols = []
            for j in range(q.numel()):
                m = keep[:, j:j + 1] if name == "deletion" else 1 - keep[:, j:j + 1]
                logits = model(x * m + base * (1 - m)).double()
                cols.append(torch.softmax(logits, 1).gather(1, target.view(-1, 1))[:, 0])
            curves[name] = torch.stack(cols, 1)
    return curves


def run(device: torch.device, quick: bool) -> dict:
    import spectral_xai as sx
    from spectral_xai.zoo import efficientnet_lite0, photos

    if quick:
        name, model, x, batch_size, repeats = "cnn 28x28", small_cnn_28(), \
            torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0)), 64, 1
    else:
        name, model, x, batch_size, repeats = "efficientnet-lite0 128px", efficientnet_lite0(), photos(128), 64, 5
    model, x = model.to(device).eval(), x.to(device)
    with torch.no_grad():
        target = model(x).argmax(1)
    maps = sx.vanilla_grad(model, x, target, squared=True)
    fns = {"per_q_loop": lambda: per_q_loop(model, x, maps, target),
           "batched": lambda: deletion_insertion(model, x, maps, target, batch_size=batch_size)}
    timing = compare(fns, "per_q_loop", repeats, device)
    a, b = fns["batched"](), fns["per_q_loop"]()
    diff = max(float((a[f"{k}_curve"] - b[k]).abs().max()) for k in ("deletion", "insertion"))
    speedup = 1 / timing["ratio"]["batched"]
    print(f"  batched deletion/insertion {speedup:.2f}x the per-q loop (max |diff| {diff:.1e})", flush=True)
    B, Q = x.shape[0], len(DEFAULT_FRACTIONS)
    return {
        "title": "Deletion/insertion: batched vs a loop over the fractions", "setting": name,
        "images": B, "fractions": Q, "rows_per_chunk": batch_size, **timing, "speedup": speedup,
        "max_abs_curve_diff": diff,
        "table": {"columns": ["model", "images × fractions × 2", "per-q loop (s)", "batched (s)",
                              "speed-up (median of paired)", "max |curve diff|"],
                  "rows": [[name, f"{B} × {Q} × 2", f"{timing['median_s']['per_q_loop']:.3f}",
                            f"{timing['median_s']['batched']:.3f}", f"{speedup:.2f}", f"{diff:.1e}"]]},
    }
