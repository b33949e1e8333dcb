"""Case ``sg2``: SmoothGrad-Squared at equal n, spectral_xai vs Captum, each as a ratio to the floor.

floor    = the model's own n forward+backward passes per image on noisy inputs built beforehand, in
           the same chunks (only the passes are timed: the cost no implementation can avoid);
ours     = ``spectral_xai.smooth_grad(..., squared=True)`` (noise generation, passes, accumulation);
captum   = Captum ``NoiseTunnel(Saliency).attribute(nt_type="smoothgrad_sq")`` with the same rows per chunk;
ops_only = the fused ``perturb`` + ``accumulate_`` ops alone on the same rows (what ours adds; no model).
All explain the target logit with additive noise of the same std.  The maps are checked against
each other (different noise draws, so only roughly equal: Pearson correlation with a floor map).
"""
from __future__ import annotations

import torch

import spectral_xai as sx

from .common import captum_sg2, compare, resnet50, small_cnn_28


def noisy_chunks(x: torch.Tensor, target: torch.Tensor, sigma: float, n: int, batch_size: int):
    """The floor's inputs: rows ordered (image, sample), chunks of ``batch_size`` rows, noise drawn now."""
    g = torch.Generator(device=x.device).manual_seed(0)
    rows = torch.arange(x.shape[0], device=x.device).repeat_interleave(n)
    chunks = []
    for lo in range(0, rows.numel(), batch_size):
        idx = rows[lo:lo + batch_size]
        noise = torch.randn(idx.numel(), *x.shape[1:], generator=g, device=x.device)
        chunks.append(((x[idx] + sigma * noise).requires_grad_(True), target[idx].view(-1, 1), idx))
    return chunks


def floor_passes(model, chunks) -> list[torch.Tensor]:
    """n forward+backward passes per image on prebuilt inputs; returns the gradients of every chunk."""
    grads = []
    for xt, tgt, _ in chunks:
        (g,) = torch.autograd.grad(model(xt).gather(1, tgt).sum(), xt)
        grads.append(g)
    return grads


def floor_map(x, chunks, grads, n) -> torch.Tensor:
    """E[g²] summed over channels from the floor's gradients (for the agreement check only)."""
    acc = torch.zeros_like(x)
    for (_, _, idx), g in zip(chunks, grads):
        acc.index_add_(0, idx, g * g)
    return (acc / n).sum(1)


def ours_sg2(model, x, target, sigma, n, batch_size):
    return sx.smooth_grad(model, x, sigma, target=target, n_samples=n, output="logit", batch_size=batch_size)


def ops_only(x, sigma, n, batch_size):
    """What the library adds to the passes: perturb + accumulate_ over the same rows, no model."""
    from spectral_xai.ops import accumulate_, perturb

    B, C, H, W = x.shape
    dev = x.device
    f64 = dict(dtype=torch.float64, device=dev)
    rows = torch.stack([torch.arange(B).repeat_interleave(n), torch.zeros(B * n, dtype=torch.int64),
                        torch.arange(n).repeat(B)], 1).to(dev)
    sig, scales, ids = torch.tensor([sigma], **f64), torch.ones(B, **f64), torch.arange(B, device=dev)
    mean2, counts = torch.zeros(B, 1, H, W, **f64), torch.zeros(B, dtype=torch.int64, device=dev)
    empty = torch.empty(0, **f64)
    for lo in range(0, B * n, batch_size):
        chunk = rows[lo:lo + batch_size]
        xt = perturb(x, chunk, sig, scales, ids, None, 0, "additive")
        accumulate_(xt, chunk[:, 0], empty, mean2, counts, empty, empty, empty, 8)
    return mean2


def settings(device: torch.device, quick: bool) -> list[dict]:
    """Every setting: name, model and inputs factories, sigma, n (samples per image), rows per chunk.

    Small n keeps the suite short on a 2-core CPU: ratios at equal n and equal rows per chunk do not
    depend on n beyond the chunk count (at least two chunks per call here)."""
    from spectral_xai.zoo import efficientnet_lite0, photos

    def rand(b, c, s):
        return lambda: torch.rand(b, c, s, s, generator=torch.Generator().manual_seed(0))

    if quick:
        return [dict(name="cnn 28x28", model=small_cnn_28, x=rand(2, 1, 28), sigma=0.15, n=4, batch_size=8)]
    out = [
        dict(name="efficientnet-lite0 128px", model=efficientnet_lite0, x=lambda: photos(128), sigma=0.15, n=16,
             batch_size=32),
        dict(name="efficientnet-lite0 224px", model=efficientnet_lite0, x=lambda: photos(224), sigma=0.15, n=8,
             batch_size=16),
        dict(name="cnn 28x28", model=small_cnn_28, x=rand(16, 1, 28), sigma=0.15, n=32, batch_size=256),
    ]
    if device.type == "cuda":
        out.append(dict(name="resnet-50 (random weights) 224px", model=resnet50, x=rand(16, 3, 224), sigma=0.15,
                        n=32, batch_size=128))
    return out


def frozen_setup(s: dict, device: torch.device):
    """The frozen model, the images and their clean targets of setting ``s``."""
    model = s["model"]().to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = s["x"]().to(device)
    with torch.no_grad():
        target = model(x).argmax(1)
    return model, x, target


def prepare(s: dict, device: torch.device):
    """:func:`frozen_setup` and the floor's prebuilt noisy chunks of setting ``s``."""
    model, x, target = frozen_setup(s, device)
    return model, x, target, noisy_chunks(x, target, s["sigma"], s["n"], s["batch_size"])


def bench_setting(s: dict, device: torch.device, repeats: int) -> dict:
    model, x, target, chunks = prepare(s, device)
    sigma, n, bs = s["sigma"], s["n"], s["batch_size"]
    last = {}  # each method's output of its last timed run, for the agreement check

    def keep(name, fn):
        return lambda: last.__setitem__(name, fn())

    fns = {
        "floor": keep("floor", lambda: floor_passes(model, chunks)),
        "ours": keep("ours", lambda: ours_sg2(model, x, target, sigma, n, bs)),
        "captum": keep("captum", lambda: captum_sg2(model, x, target, sigma, n, bs)),
        "ops_only": lambda: ops_only(x, sigma, n, bs),
    }
    timing = compare(fns, "floor", repeats, device)
    ref = floor_map(x, chunks, last["floor"], n).flatten()
    corr = {k: float(torch.corrcoef(torch.stack([ref, last[k].flatten().to(ref)]))[0, 1]) for k in ("ours", "captum")}
    return {"setting": s["name"], "batch": list(x.shape), "n_samples": n, "sigma": sigma, "rows_per_chunk": bs,
            **timing, "pearson_vs_floor_map": corr}


def run(device: torch.device, quick: bool) -> dict:
    import captum

    repeats = 1 if quick else 7  # 7: the median of paired ratios survives a few repeats hit by load changes
    results = []
    for s in settings(device, quick):
        r = bench_setting(s, device, repeats)
        print(f"  {r['setting']:34s} floor {r['median_s']['floor']:.3f}s  ours/floor {r['ratio']['ours']:.3f}  "
              f"captum/floor {r['ratio']['captum']:.3f}  ops-only/floor {r['ratio']['ops_only']:.4f}", flush=True)
        results.append(r)

    def cell(r, k):
        lo, hi = r["ratio_range"][k]
        return f"{r['ratio'][k]:.3f} ({lo:.2f}–{hi:.2f})"

    rows = [[r["setting"], f"{r['batch'][0]} × {r['n_samples']}", f"{r['median_s']['floor']:.3f}", cell(r, "ours"),
             cell(r, "captum"), f"{r['ratio']['ops_only']:.4f}",
             f"{r['pearson_vs_floor_map']['ours']:.3f} / {r['pearson_vs_floor_map']['captum']:.3f}"] for r in results]
    return {
        "title": "SG² at equal n (ratio to the floor)", "captum": captum.__version__, "results": results,
        "note": "floor = the model's forward+backward passes alone on prebuilt noisy inputs; ratios are medians of "
                "per-repeat ratios (min–max over repeats); Pearson r of each map with the floor's own SG² map.",
        "table": {"columns": ["model", "images × n", "floor (s)", "ours / floor", "Captum / floor",
                              "fused ops alone / floor", "r ours / Captum"], "rows": rows},
    }
