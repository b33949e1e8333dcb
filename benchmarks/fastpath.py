"""Case ``fastpath``: SG² at equal n with the fast path (autocast, channels_last, torch.compile) vs ours fp32 vs
Captum fp32, and each variant's Spearman agreement with fp32 (:func:`bench_case`; the study
``benchmarks/studies/fastpath.py`` runs more models).

CPU: the small CNN only (low-precision autocast has no fast CPU kernels here, and inductor on
EfficientNet-Lite0 takes minutes; ``python benchmarks/studies/fastpath.py`` runs more).  CUDA: the small CNN,
EfficientNet-Lite0 and ResNet-50 (random weights) at 224 px.
"""
from __future__ import annotations

import statistics
import time

import torch
from scipy.stats import spearmanr

import spectral_xai as sx

from .common import captum_sg2, resnet50, small_cnn, sync


def variants(device: torch.device, compile_here: bool) -> dict:
    """Name -> FastPath (None = fp32 as given)."""
    bf16, fp16 = torch.bfloat16, torch.float16
    out = {"ours_fp32": None, "ours_channels_last": sx.FastPath(channels_last=True),
           "ours_bf16": sx.FastPath(dtype=bf16), "ours_fp16": sx.FastPath(dtype=fp16)}
    if device.type == "cuda":  # on CPU bf16 + channels_last is 3-20x slower than bf16 (no fast kernels)
        out["ours_bf16_channels_last"] = sx.FastPath(dtype=bf16, channels_last=True)
    if compile_here:
        out["ours_compile"] = sx.FastPath(compile=True)
        if device.type == "cuda":
            out["ours_compile_reduce_overhead"] = sx.FastPath(compile="reduce-overhead")
            out["ours_bf16_channels_last_compile"] = sx.FastPath(dtype=bf16, channels_last=True, compile=True)
            out["ours_bf16_channels_last_cudagraphs"] = sx.FastPath(dtype=bf16, channels_last=True,
                                                                    compile="reduce-overhead")
    return out


def spearman_per_image(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return [float(spearmanr(a[i].flatten().numpy(), b[i].flatten().numpy())[0]) for i in range(a.shape[0])]


def bench_case(name, model, x, sigma, n, batch_size, repeats, device, compile_here):
    model = model.to(device).eval()
    x = x.to(device)
    with torch.no_grad():
        target = model(x).argmax(1)
    kw = {"target": target, "n_samples": n, "output": "logit", "batch_size": batch_size}
    fns = {k: (lambda fp=fp: sx.smooth_grad(model, x, sigma, fast=fp, **kw))
           for k, fp in variants(device, compile_here).items()}
    fns["captum_fp32"] = lambda: captum_sg2(model, x, target, sigma, n, batch_size)
    maps, warm = {}, {}
    for k, fn in fns.items():  # warm-up (compilation happens here), and the maps for agreement
        sync(device)
        t0 = time.perf_counter()
        maps[k] = fn().float()
        sync(device)
        warm[k] = time.perf_counter() - t0
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    ref = maps["ours_fp32"]
    other_seed = sx.smooth_grad(model, x, sigma, seed=1, **kw).float()
    agreement = {k: spearman_per_image(ref, m) for k, m in maps.items() if k != "ours_fp32"}
    agreement["ours_fp32_seed1 (Monte Carlo reference)"] = spearman_per_image(ref, other_seed)
    result = {
        "case": name, "device": str(device), "batch": list(x.shape), "n_samples": n, "sigma": sigma,
        "rows_per_chunk": batch_size, "repeats": repeats, "first_call_s": warm, "times_s": times, "median_s": med,
        "speedup_vs_ours_fp32": {k: med["ours_fp32"] / v for k, v in med.items()},
        "captum_fp32_over": {k: med["captum_fp32"] / v for k, v in med.items()},
        "spearman_vs_ours_fp32": agreement,
        "spearman_min": {k: min(v) for k, v in agreement.items()},
    }
    print(f"\n{name}  (n = {n}, {batch_size} rows per chunk, median of {repeats})")
    print(f"  {'variant':40s} {'median s':>9s} {'captum/this':>11s} {'fp32/this':>9s} {'min Spearman':>12s}")
    for k in fns:
        sp = result["spearman_min"].get(k, 1.0)
        print(f"  {k:40s} {med[k]:9.3f} {result['captum_fp32_over'][k]:11.2f} "
              f"{result['speedup_vs_ours_fp32'][k]:9.2f} {sp:12.4f}")
    print(f"  {'(ours_fp32, seed 1: Monte Carlo)':40s} {'':9s} {'':11s} {'':9s} "
          f"{result['spearman_min']['ours_fp32_seed1 (Monte Carlo reference)']:12.4f}", flush=True)
    return result


def run(device: torch.device, quick: bool) -> dict:
    from spectral_xai.zoo import efficientnet_lite0, photos

    torch._dynamo.config.recompile_limit = 64
    gpu = device.type == "cuda"
    n = 8 if quick else (32 if gpu else 16)
    repeats = 1 if quick else 3
    cases = [("small cnn 32px, 4 photos", small_cnn(32), photos(32), 0.15, n, 4 * n, not quick)]
    if gpu:
        cases.append(("efficientnet-lite0 128px, 4 photos", efficientnet_lite0(), photos(128), 0.15, n, 64, True))
        cases.append(("resnet-50 224px random weights, 8 photos", resnet50(), photos(224).repeat(2, 1, 1, 1), 0.15,
                      n, 64, True))
    results = [bench_case(*c[:6], repeats=repeats, device=device, compile_here=c[6]) for c in cases]
    rows = []
    for r in results:
        for k, t in r["median_s"].items():
            rows.append([r["case"], k, f"{t:.3f}", f"{r['captum_fp32_over'][k]:.2f}",
                         f"{r['speedup_vs_ours_fp32'][k]:.2f}", f"{r['spearman_min'].get(k, 1.0):.4f}"])
        rows.append([r["case"], "(ours fp32, another seed)", "", "", "",
                     f"{r['spearman_min']['ours_fp32_seed1 (Monte Carlo reference)']:.4f}"])
    return {"title": "Fast path: SG² at equal n (time, ratios, agreement with fp32)", "results": results,
            "table": {"columns": ["case", "variant", "median (s)", "Captum fp32 / this", "ours fp32 / this",
                                  "min Spearman vs ours fp32"], "rows": rows},
            "note": "Spearman per image against ours fp32 with the same noise (only arithmetic differs); the "
                    "'another seed' row is what resampling the noise alone changes."}
