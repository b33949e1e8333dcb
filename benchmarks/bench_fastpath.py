"""The fast path (autocast bf16/fp16, channels_last, torch.compile) at equal n: speed and agreement.

For every case and variant, SG² (additive noise, explained output = target logit, as Captum's
Saliency) at the same n and rows per chunk, timed in interleaved repeats (median):

ours_fp32   = spectral_xai.smooth_grad, fp32, the model as given;
ours_<opt>  = the same call with ``fast=FastPath(...)`` (same seed: the same noise as ours_fp32);
captum_fp32 = captum NoiseTunnel(Saliency).attribute(nt_type="smoothgrad_sq") in fp32.

Agreement: Spearman rank correlation per image between each variant's map and ours_fp32's (same noise,
so only arithmetic differs), next to the Monte Carlo reference: ours_fp32 with another seed (what
resampling the noise alone changes) and captum_fp32 (its own noise).  Cases: a small CNN and
EfficientNet-Lite0 on the bundled photos (any device), ResNet-50 with random weights at 224 px
(``benchmarks/common.py``; CUDA only).  On CPU, torch.compile is timed on the small CNN only (inductor
on EfficientNet-Lite0 takes minutes on a small machine; ``--compile-all`` to include it).

    python benchmarks/bench_fastpath.py [--quick] [--device cpu|cuda] [--repeats 5] [--out PATH]

Sizes: --quick n = 8, EfficientNet-Lite0 at 64 px; otherwise n = 16 at 64 px on CPU (low-precision
autocast has no fast CPU kernels here: minutes per variant), n = 32 at 128 px and ResNet-50 on CUDA.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from scipy.stats import spearmanr

import spectral_xai as sx
from spectral_xai.atomic_io import write_json
from spectral_xai.environment import environment_info

if not __package__:  # run as a file: make the benchmarks package importable
    sys.path.append(str(Path(__file__).resolve().parent.parent))
from benchmarks.common import captum_sg2, resnet50, small_cnn, sync  # noqa: E402



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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and n, 3 repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--compile-all", action="store_true", help="also time torch.compile on the big models on CPU")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_fastpath.json"))
    args = parser.parse_args()
    device = torch.device(args.device)
    repeats = args.repeats or (3 if args.quick else 5)
    torch._dynamo.config.recompile_limit = 64  # many (model, variant, shape) graphs in one process
    from spectral_xai.zoo import efficientnet_lite0, photos

    gpu = device.type == "cuda"
    small_px, eff_px, n = (32, 64, 8) if args.quick else (32, 128, 32) if gpu else (32, 64, 16)
    cases = [
        (f"small cnn {small_px}px, 4 photos", small_cnn(small_px), photos(small_px), 0.15, n, 4 * n, True),
        (f"efficientnet-lite0 {eff_px}px, 4 photos", efficientnet_lite0(), photos(eff_px), 0.15, n, 64,
         gpu or args.compile_all),
    ]
    if gpu:
        big = photos(224).repeat(4 if args.quick else 8, 1, 1, 1)
        cases.append(("resnet-50 224px random weights, photos", resnet50(), big, 0.15, n, 64, True))
    results = [bench_case(*c[:6], repeats=repeats, device=device, compile_here=c[6]) for c in cases]
    import captum

    report = {"benchmark": "fastpath_sg2_equal_n", "captum": captum.__version__, "quick": args.quick,
              "environment": environment_info(device), "results": results}
    print(f"wrote {write_json(report, args.out)}")


if __name__ == "__main__":
    main()
