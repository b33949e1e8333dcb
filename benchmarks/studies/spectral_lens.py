"""SpectralLens: samples to equal error (grid vs stratified σ) and one batched call vs S SmoothGrad calls.

Samples to accuracy: on EfficientNet-Lite0 (real photos, 96 px, convex mixing, noise scale 0.3,
σ grid {0, …, 1}, uniform prior), the relative L2 error ||SL² − ref|| / ||ref|| against a long grid
run (``--ref-samples`` per σ, another seed) as a function of the passes per image, for the grid
estimator (n per σ: 1 + (S−1)·n passes, σ = 0 being noiseless) and the stratified-σ estimator
(the same number of passes in all, σ drawn per sample).  Errors are
averaged over images and ``--seeds`` seeds.  The reference's own error adds in quadrature.

Timing: one spectral_lens call (all σ in the same chunks) vs S separate smooth_grad calls with the
same samples per σ and the same rows per chunk, median of repeats, in one process.

    python benchmarks/studies/spectral_lens.py [--out benchmarks/results/bench_spectral_lens.json]
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch

import spectral_xai as sx
from spectral_xai.atomic_io import write_json
from spectral_xai.environment import environment_info


def rel_err(est: torch.Tensor, ref: torch.Tensor) -> float:
    return float(((est - ref).flatten(1).norm(dim=1) / ref.flatten(1).norm(dim=1)).mean())


def passes_for(errors: dict[int, float], target: float) -> float | None:
    """Passes at which the error curve crosses ``target`` (log-log interpolation), None if never."""
    pts = sorted(errors.items())
    for (p0, e0), (p1, e1) in zip(pts, pts[1:]):
        if e0 >= target >= e1:
            t = (math.log(e0) - math.log(target)) / (math.log(e0) - math.log(e1))
            return math.exp(math.log(p0) + t * (math.log(p1) - math.log(p0)))
    return None


def samples_to_accuracy(model, x, target, args):
    kw = dict(target=target, noise_scale=0.3, batch_size=args.batch_size)
    S = 11
    t0 = time.perf_counter()
    ref = sx.spectral_lens(model, x, n_samples=args.ref_samples, seed=10_000, **kw).sl2.double()
    ref_time = time.perf_counter() - t0
    grid, strat = {}, {}
    for n in args.per_sigma:
        passes = 1 + (S - 1) * n  # σ = 0 is noiseless: the engine samples it once
        grid[passes] = statistics.mean(
            rel_err(sx.spectral_lens(model, x, n_samples=n, seed=s, **kw).sl2.double(), ref) for s in range(args.seeds))
        strat[passes] = statistics.mean(
            rel_err(sx.spectral_lens(model, x, n_samples=passes, seed=s, estimator="stratified", **kw).sl2.double(),
                    ref) for s in range(args.seeds))
        print(f"passes/image {passes:5d}: grid {grid[passes]:.3f}  stratified {strat[passes]:.3f}", flush=True)
    targets = {}
    for e in (0.5, 0.4, 0.3, 0.25):
        pg, ps = passes_for(grid, e), passes_for(strat, e)
        targets[str(e)] = {"grid_passes": pg, "stratified_passes": ps,
                           "grid_over_stratified": (pg / ps) if pg and ps else None}
    return {"reference_passes_per_image": 1 + (S - 1) * args.ref_samples, "reference_seconds": ref_time,
            "grid_error_by_passes": grid, "stratified_error_by_passes": strat, "passes_to_error": targets}


def batched_vs_separate(model, x, target, args):
    sigmas = [i / 10 for i in range(11)]
    n = args.timing_samples

    def one_call():
        return sx.spectral_lens(model, x, sigmas, target=target, n_samples=n, noise_scale=0.3,
                                batch_size=args.timing_batch)

    def separate():
        return [sx.smooth_grad(model, x, s, target=target, n_samples=n, mixing="convex", noise_scale=0.3,
                               batch_size=args.timing_batch) for s in sigmas]

    one_call(), separate()
    times = {"spectral_lens": [], "separate_smooth_grad": []}
    for _ in range(args.repeats):
        for k, fn in (("spectral_lens", one_call), ("separate_smooth_grad", separate)):
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"one SpectralLens call {med['spectral_lens']:.2f}s vs 11 SmoothGrad calls "
          f"{med['separate_smooth_grad']:.2f}s", flush=True)
    return {"samples_per_sigma": n, "rows_per_chunk": args.timing_batch, "times_s": times, "median_s": med,
            "separate_over_batched": med["separate_smooth_grad"] / med["spectral_lens"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--ref-samples", type=int, default=128)
    parser.add_argument("--per-sigma", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--timing-samples", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timing-batch", type=int, default=16, help="rows per chunk in the timing case")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", default=str(Path(__file__).parents[1] / "results" / "bench_spectral_lens.json"))
    args = parser.parse_args()
    from spectral_xai.zoo import efficientnet_lite0, photos

    model = efficientnet_lite0()
    x = photos(args.size)[: args.images]
    with torch.no_grad():
        target = model(x).argmax(1)
    report = {
        "benchmark": "spectral_lens", "environment": environment_info(),
        "setting": {"model": "efficientnet-lite0", "size": args.size, "images": args.images, "mixing": "convex",
                    "noise_scale": 0.3, "sigmas": "linspace(0, 1, 11)", "prior": "uniform"},
        "samples_to_accuracy": samples_to_accuracy(model, x, target, args),
        "batched_vs_separate": batched_vs_separate(model, photos(128), None, args),
    }
    print(json.dumps(report["samples_to_accuracy"]["passes_to_error"], indent=1))
    print(f"wrote {write_json(report, args.out)}")


if __name__ == "__main__":
    main()
