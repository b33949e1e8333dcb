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

    python benchmarks/studies/fastpath.py [--quick] [--device cpu|cuda] [--repeats 5] [--out PATH]

Sizes: --quick n = 8, EfficientNet-Lite0 at 64 px; otherwise n = 16 at 64 px on CPU (low-precision
autocast has no fast CPU kernels here: minutes per variant), n = 32 at 128 px and ResNet-50 on CUDA.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from spectral_xai.atomic_io import write_json
from spectral_xai.environment import environment_info

if not __package__:  # run as a file: make the benchmarks package importable
    sys.path.append(str(Path(__file__).resolve().parents[2]))
from benchmarks.common import resnet50, small_cnn  # noqa: E402
from benchmarks.fastpath import bench_case  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and n, 3 repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--compile-all", action="store_true", help="also time torch.compile on the big models on CPU")
    parser.add_argument("--out", default=str(Path(__file__).parents[1] / "results" / "bench_fastpath.json"))
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
