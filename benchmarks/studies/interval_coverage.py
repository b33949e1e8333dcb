"""Coverage of Monte Carlo intervals for SmoothGrad (g) and SmoothGrad-Squared (g²) maps (docs/methods.md §11).

For each model, image and budget n, R independent runs of n samples each (disjoint blocks of one pool of
per-sample maps, computed with autograd: h = g summed over channels for SG, Σ_c g_c² for SG²) give per pixel the
mean, the unbiased k2 and k3, and four 95 % intervals for the true mean map:

- ``normal``: mean ± z·se (se² = k2/n);
- ``t``: mean ± t_{n−1}·se;
- ``hall-t (prototype)``: Hall's transformation with the skewness m3/s³ (biased m3, unbiased s) and no cap;
- ``hall (library)``: ``spectral_xai.mc_interval.skewness_corrected_interval(mean, k2/n, k3/n², n − 1)``.

Truth: closed forms for the analytic models of the tests (``tests/helpers.py``: the quadratic model, whose
gradient is linear in x so that g² is a scaled non-central χ²₁, and the sinusoid model, whose gradients are
bounded); for the real nets (the cached Fashion-MNIST CNN ``zoo.trained_fashion_cnn()`` and EfficientNet-Lite0
on scikit-image photos) the mean of a separate long run (``--truth-samples``). Coverage is the share of
(pixel, run) pairs whose interval holds the truth, over every image; its Monte Carlo error is the sd of the
runs' coverage / sqrt(R). Pixels whose gradient is exactly 0 in every sample (dead ReLU paths: the interval
[0, 0] covers trivially) are counted and left out.

    python benchmarks/studies/interval_coverage.py [--quick] [--models quadratic sinusoid fashion efficientnet]
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
if not __package__:  # run as a file: make the benchmarks package importable
    sys.path.append(str(ROOT))
sys.path.append(str(ROOT / "tests"))      # the analytic models and their closed forms
from helpers import Quadratic, sg2_exact, sg_exact, sinusoid  # noqa: E402

from benchmarks.suite import machine_name  # noqa: E402
from spectral_xai.atomic_io import atomic_write, write_json  # noqa: E402
from spectral_xai.mc_interval import hall_inverse, skewness_corrected_interval, t_quantile  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
METHODS = ("normal", "t", "hall-t (prototype)", "hall (library)")
LEVEL = 0.95


def per_sample_maps(model, x, target, sigma: float, n: int, seed: int, output: str, batch: int):
    """(g, g²) per-sample channel-reduced maps, each (n, B, H, W) float64, noise x + σ·ε from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    B = x.shape[0]
    g_all, g2_all = [], []
    per = max(1, batch // B)
    for start in range(0, n, per):
        k = min(per, n - start)
        eps = torch.randn((k, *x.shape), generator=gen, dtype=x.dtype)
        xt = (x.unsqueeze(0) + sigma * eps).reshape(k * B, *x.shape[1:]).requires_grad_(True)
        out = model(xt)
        if output == "log_softmax":
            out = out.log_softmax(1)
        out.gather(1, target.repeat(k).unsqueeze(1)).sum().backward()
        g = xt.grad.detach().double().reshape(k, B, *x.shape[1:])
        g_all.append(g.sum(2))
        g2_all.append((g * g).sum(2))
    return torch.cat(g_all), torch.cat(g2_all)


def intervals(h: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """h (R, n, ...) per-sample values of R runs -> {method: (lo, hi)}, each (R, ...)."""
    n = h.shape[1]
    m = h.mean(1)
    d = h - m.unsqueeze(1)
    k2 = (d**2).sum(1) / (n - 1)
    k3 = n * (d**3).sum(1) / ((n - 1) * (n - 2))
    se = (k2 / n).sqrt()
    z = -float(torch.special.ndtri(torch.tensor((1 - LEVEL) / 2, dtype=torch.float64)))
    t = float(t_quantile(torch.tensor(0.5 + LEVEL / 2), torch.tensor(n - 1.0)))
    g = (d**3).mean(1) / k2.clamp(min=1e-300) ** 1.5            # the prototype's skewness m3/s³
    a = torch.where(se > 0, g / math.sqrt(n), 0.0)
    proto = (m - se * hall_inverse(torch.tensor(t), a), m - se * hall_inverse(torch.tensor(-t), a))
    return {"normal": (m - z * se, m + z * se), "t": (m - t * se, m + t * se), "hall-t (prototype)": proto,
            "hall (library)": skewness_corrected_interval(m, k2 / n, k3 / n**2, n - 1.0, LEVEL)}


def coverage(h: torch.Tensor, truth: torch.Tensor, live: torch.Tensor, n: int) -> dict:
    """h (N, B, H, W) a pool of per-sample maps, truth (B, H, W), live (B, H, W) bool: per method the coverage
    over (live pixel, run), its se over runs, the 10th percentile of per-pixel coverage and the mean width
    relative to the t interval's, with R = N // n runs of disjoint blocks."""
    R = h.shape[0] // n
    iv = intervals(h[: R * n].reshape(R, n, *h.shape[1:]))
    t_width = iv["t"][1] - iv["t"][0]
    out = {"runs": R}
    for name in METHODS:
        lo, hi = iv[name]
        hit = ((lo <= truth) & (truth <= hi)).double()[:, live]        # (R, live pixels)
        per_run = hit.mean(1)
        ratio = ((hi - lo) / t_width)[:, live]
        out[name] = {"coverage": float(hit.mean()), "se": float(per_run.std() / math.sqrt(R)) if R > 1 else None,
                     "pixel_p10": float(hit.mean(0).quantile(0.1)),
                     "width_vs_t": float(ratio[torch.isfinite(ratio)].mean())}
    return out


# ------------------------------------------------------------------ models


def analytic(name: str, sigma: float, size: int):
    """(model, x, target, truth {sg, sg2} (B, H, W) float64, output, description) of a closed-form model."""
    if name == "quadratic":
        model = Quadratic((1, size, size))
        x = torch.randn(2, 1, size, size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        q, l = model.q.detach(), model.l.detach()
        mean_g = 2 * q * x + l
        truth = {"sg": mean_g[:, 0], "sg2": (mean_g**2 + 4 * q**2 * sigma**2)[:, 0]}
        desc = (f"tests' Quadratic((1, {size}, {size})) F = Σ q x² + l x, 2 images x ~ N(0, 1), additive σ {sigma}: "
                f"g ~ N(2qx + l, (2qσ)²), g² a scaled non-central χ²₁; truth in closed form")
        return model.requires_grad_(False), x, torch.zeros(2, dtype=torch.long), truth, "raw", desc
    model, a, w, x = sinusoid(seed=0, batch=2, size=size)
    x = x.double()
    model = model.double().requires_grad_(False)
    truth = {"sg": sg_exact(a, w, x, sigma), "sg2": sg2_exact(a, w, x, sigma)}
    desc = (f"tests' sinusoid(seed=0, batch=2, size={size}) F = Σ a sin(w x), additive σ {sigma}: bounded "
            f"gradients a w cos(w x̃); truth in closed form")
    return model, x, torch.zeros(2, dtype=torch.long), truth, "raw", desc


def real_net(name: str, images: int, size: int):
    """(model, x, target, description) of a real net."""
    from spectral_xai import zoo

    if name == "fashion":
        from spectral_xai.zoo.pretrained import trained_fashion_cnn

        model = trained_fashion_cnn()
        x = zoo.fashion_mnist("test", limit=1000 + images)[0][1000:1000 + images]
        desc = f"zoo.trained_fashion_cnn() (ReLU), Fashion-MNIST test images 1000..{999 + images}"
    else:
        model = zoo.efficientnet_lite0()
        x = zoo.photos(size)[:images]
        desc = f"EfficientNet-Lite0 (ImageNet weights), scikit-image photos {', '.join(zoo.PHOTO_NAMES[:images])} at {size} px"
    model = model.eval().requires_grad_(False)
    with torch.no_grad():
        target = model(x).argmax(1)
    return model, x, target, desc + ", target = clean arg-max, log_softmax"


def study(args) -> dict:
    report = {"study": "interval_coverage", "level": LEVEL, "methods": list(METHODS), "ns": args.ns,
              "command": " ".join(["python benchmarks/studies/interval_coverage.py", *args.argv]),
              "machine": machine_name(torch.device("cpu")), "models": {}}
    pool = args.pool
    for name in args.models:
        t0 = time.perf_counter()
        if name in ("quadratic", "sinusoid"):
            model, x, target, truth, output, desc = analytic(name, args.analytic_sigma, args.analytic_size)
            g, g2 = per_sample_maps(model, x, target, args.analytic_sigma, pool, 1, output, 4096)
            truth_n, sigma = None, args.analytic_sigma
        else:
            model, x, target, desc = real_net(name, args.images if name == "efficientnet" else args.fashion_images,
                                              args.size)
            sigma = args.sigma
            tg, tg2 = per_sample_maps(model, x, target, sigma, args.truth_samples, 10_000, "log_softmax", args.batch)
            g, g2 = per_sample_maps(model, x, target, sigma, pool, 1, "log_softmax", args.batch)
            truth, truth_n = {"sg": tg.mean(0), "sg2": tg2.mean(0)}, args.truth_samples
            dead = (tg == 0).all(0) & (g == 0).all(0)
            del tg, tg2
        if truth_n is None:
            dead = (g == 0).all(0)
        live = ~dead
        entry = {"description": desc if truth_n is None else desc + f", additive σ {sigma}", "pixels": int(dead.numel()),
                 "dead_pixels": int(dead.sum()), "truth_samples": truth_n, "pool": pool, "sg": {}, "sg2": {}}
        for method, h in (("sg", g), ("sg2", g2)):
            for n in args.ns:
                entry[method][str(n)] = coverage(h, truth[method], live, n)
        entry["wall_s"] = time.perf_counter() - t0
        report["models"][name] = entry
        print(f"{name}: {entry['wall_s']:.0f} s, dead {entry['dead_pixels']}/{entry['pixels']}", flush=True)
    return report


def markdown(report: dict) -> str:
    lines = ["# Coverage of 95 % Monte Carlo intervals for SG and SG² maps", "",
             f"`{report['command']}` ({report['machine']}). Coverage = share of (pixel, run) pairs whose interval "
             "holds the truth, over all images (± its Monte Carlo error: sd of the runs' coverage / sqrt(runs)); "
             "p10 = 10th percentile over pixels of the per-pixel coverage; width = mean width / the t interval's. "
             "Pixels with an identically zero gradient are left out (counted per model).", ""]
    for name, e in report["models"].items():
        lines += [f"## {name}", "", e["description"] + ".", "",
                  f"Pixels: {e['pixels']}, identically zero (left out): {e['dead_pixels']}. Runs: disjoint blocks of "
                  f"a pool of {e['pool']} samples"
                  + (f"; truth: a separate run of {e['truth_samples']} samples" if e["truth_samples"] else "")
                  + f". {e['wall_s']:.0f} s.", "",
                  "| map | n | runs | " + " | ".join(METHODS) + " |", "|---|---|---|" + "---|" * len(METHODS)]
        for method in ("sg", "sg2"):
            for n, c in e[method].items():
                cells = [f"{100 * c[k]['coverage']:.1f} ± {100 * c[k]['se']:.1f} (p10 {100 * c[k]['pixel_p10']:.0f}, "
                         f"width {c[k]['width_vs_t']:.2f})" for k in METHODS]
                lines.append(f"| {'SG' if method == 'sg' else 'SG²'} | {n} | {c['runs']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke mode: analytic models, small pool (seconds)")
    p.add_argument("--models", nargs="+", default=["quadratic", "sinusoid", "fashion", "efficientnet"],
                   choices=["quadratic", "sinusoid", "fashion", "efficientnet"])
    p.add_argument("--ns", type=int, nargs="+", default=[8, 16, 64], help="budgets (≥ 3)")
    p.add_argument("--pool", type=int, default=None,
                   help="samples split into runs of n (runs = pool // n; default 2048, --quick 256)")
    p.add_argument("--truth-samples", type=int, default=2048, help="the real nets' long run (the truth)")
    p.add_argument("--analytic-sigma", type=float, default=1.0)
    p.add_argument("--analytic-size", type=int, default=8)
    p.add_argument("--sigma", type=float, default=0.15, help="the real nets' additive noise std")
    p.add_argument("--size", type=int, default=64, help="EfficientNet input size (px)")
    p.add_argument("--images", type=int, default=2, help="EfficientNet photos")
    p.add_argument("--fashion-images", type=int, default=8)
    p.add_argument("--batch", type=int, default=256, help="noisy inputs per forward pass")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.quick:
        args.models = [m for m in args.models if m in ("quadratic", "sinusoid")]
    args.pool = args.pool or (256 if args.quick else 2048)
    if min(args.ns) < 3:
        p.error("argument --ns: budgets must be at least 3 (k3 needs n ≥ 3)")
    return args


def main(argv=None) -> int:
    args = parse(argv)
    report = study(args)
    stem = Path(args.out) / f"interval_coverage-{report['machine']}{'-quick' if args.quick else ''}"
    write_json(report, stem.with_suffix(".json"))
    atomic_write(stem.with_suffix(".md"), lambda p: Path(p).write_text(markdown(report)))
    print(f"wrote {stem}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
