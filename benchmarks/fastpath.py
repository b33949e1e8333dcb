"""Case ``fastpath``: SG² at equal n with the fast path (autocast, channels_last, torch.compile) vs ours fp32 vs
Captum fp32, and each variant's Spearman agreement with fp32 (``bench_fastpath.py`` holds the measurement).

CPU: the small CNN only (low-precision autocast has no fast CPU kernels here, and inductor on
EfficientNet-Lite0 takes minutes; ``python benchmarks/bench_fastpath.py`` runs more).  CUDA: the small CNN,
EfficientNet-Lite0 and ResNet-50 (random weights) at 224 px.
"""
from __future__ import annotations

import torch

from .bench_fastpath import bench_case
from .common import resnet50, small_cnn


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
