"""SG² at equal n: spectral_xai vs the floor vs Captum, side by side in one process (CPU or GPU).

floor  = n forward+backward passes of the same model on the same chunks of noisy inputs, the
         noise drawn beforehand (nothing else is timed);
ours   = spectral_xai.smooth_grad(..., squared=True) (noise generation, passes, accumulation);
ops_only = the fused perturb + accumulate_ ops alone on the same rows (what ours adds; no model);
captum = captum NoiseTunnel(Saliency).attribute(nt_type="smoothgrad_sq").
All three explain the target logit with additive noise of the same std and the same rows per
chunk.  Runs are interleaved and repeated; the JSON holds every time and the median ratios.

    python benchmarks/bench_engine.py [--repeats 5] [--out benchmarks/results/bench_engine.json]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from torch import nn

import spectral_xai as sx
from spectral_xai.environment import environment_info, write_json


def small_cnn_28() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10)).eval()


def floor_sg2(model, x, target, sigma, n, batch_size, noise):
    """n forward+backward passes on pre-drawn noisy rows; returns E[g²] summed over channels."""
    B = x.shape[0]
    acc = torch.zeros_like(x)
    rows_img = torch.arange(B).repeat_interleave(n)
    for lo in range(0, B * n, batch_size):
        idx = rows_img[lo:lo + batch_size]
        xt = (x[idx] + sigma * noise[lo:lo + batch_size]).requires_grad_(True)
        out = model(xt).gather(1, target[idx].view(-1, 1)).sum()
        (g,) = torch.autograd.grad(out, xt)
        acc.index_add_(0, idx, g * g)
    return (acc / n).sum(1)


def ours_sg2(model, x, target, sigma, n, batch_size):
    return sx.smooth_grad(model, x, sigma, target=target, n_samples=n, output="logit", batch_size=batch_size)


def captum_sg2(model, x, target, sigma, n, batch_size):
    from captum.attr import NoiseTunnel, Saliency

    nt = NoiseTunnel(Saliency(model))
    a = nt.attribute(x, nt_type="smoothgrad_sq", nt_samples=n, nt_samples_batch_size=max(1, batch_size // x.shape[0]),
                     stdevs=sigma, target=target)
    return a.sum(1)


def ops_only(x, sigma, n, batch_size):
    """What the library adds to the passes: perturb + accumulate_ over the same rows, no model."""
    from spectral_xai.ops import accumulate_, perturb

    B, C, H, W = x.shape
    dev = x.device
    f64 = dict(dtype=torch.float64, device=dev)
    rows = torch.stack([torch.arange(B).repeat_interleave(n), torch.zeros(B * n, dtype=torch.int64),
                        torch.arange(n).repeat(B)], 1).to(dev)
    sig, scales, ids = torch.tensor([sigma], **f64), torch.ones(B, **f64), torch.arange(B, device=dev)
    mean2, counts, empty = torch.zeros(B, 1, H, W, **f64), torch.zeros(B, dtype=torch.int64, device=dev), \
        torch.empty(0, **f64)
    for lo in range(0, B * n, batch_size):
        chunk = rows[lo:lo + batch_size]
        xt = perturb(x, chunk, sig, scales, ids, None, 0, "additive")
        accumulate_(xt, chunk[:, 0], empty, mean2, counts, empty, empty, empty, 8)
    return mean2


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_case(name, model, x, sigma, n, batch_size, repeats, device):
    model = model.to(device)
    x = x.to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        target = model(x).argmax(1)
    noise = torch.randn(x.shape[0] * n, *x.shape[1:], device=device)
    fns = {
        "floor": lambda: floor_sg2(model, x, target, sigma, n, batch_size, noise),
        "ours": lambda: ours_sg2(model, x, target, sigma, n, batch_size),
        "captum": lambda: captum_sg2(model, x, target, sigma, n, batch_size),
        "ops_only": lambda: ops_only(x, sigma, n, batch_size),
    }
    for fn in fns.values():  # warm-up
        fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    # agreement of the three estimates (different noise draws, so only roughly equal)
    maps = {k: fn() for k, fn in fns.items() if k != "ops_only"}
    corr = {k: float(torch.corrcoef(torch.stack([maps["floor"].flatten(), maps[k].flatten()]))[0, 1])
            for k in ("ours", "captum")}
    result = {
        "case": name, "device": str(device), "batch": list(x.shape), "n_samples": n, "sigma": sigma,
        "rows_per_chunk": batch_size, "repeats": repeats, "times_s": times, "median_s": med,
        "ours_over_floor": med["ours"] / med["floor"], "captum_over_floor": med["captum"] / med["floor"],
        "captum_over_ours": med["captum"] / med["ours"], "ops_only_over_floor": med["ops_only"] / med["floor"],
        "pearson_vs_floor_map": corr,
    }
    print(f"{name:28s} floor {med['floor']:.3f}s  ours/floor {result['ours_over_floor']:.3f}  "
          f"captum/floor {result['captum_over_floor']:.3f}  ops-only/floor {result['ops_only_over_floor']:.4f}",
          flush=True)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_engine.json"))
    args = parser.parse_args()
    device = torch.device(args.device)
    from spectral_xai.zoo import efficientnet_lite0, photos

    cases = [
        ("efficientnet-lite0 128px", efficientnet_lite0(), photos(128), 0.15, 32, 64),
        ("cnn 28x28 (fashion-mnist)", small_cnn_28(),
         torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0)),
         0.15, 32, 256),
    ]
    results = [bench_case(*c, repeats=args.repeats, device=device) for c in cases]
    import captum

    report = {"benchmark": "sg2_equal_n", "captum": captum.__version__, "environment": environment_info(device),
              "results": results}
    print(f"wrote {write_json(report, args.out)}")


if __name__ == "__main__":
    main()
