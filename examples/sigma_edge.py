"""Why σ* runs to the edge of the convex grid, and how much of SL² does not depend on the image.

For a model and a batch of images, on the convex grid σ ∈ {0, 0.1, …, 1} (docs/methods.md §1, §3):

- G_σ(x), the SG² map of each image, next to G_σ(blank) (an all-zero image) and G_σ(other) (the next image
  of the batch), explained for the same target class with the same noise keys (same image ids), so at
  convex σ = 1 — pure noise — the three maps are identical sample by sample;
- per σ: the mean over images of the cosine and Pearson correlation of G_σ(x) with G_σ(blank) and with
  G_σ(other), the mean ‖G_σ‖₁ and its log-slope d log‖G_σ‖₁ / d log σ (CS = (σ s)^e ‖G_σ‖₁ still
  rises where the slope is above −e);
- where σ* = argmax CS lands for exponents 2.5 and 1 and noise scales 0.3 and 1, with every σ of the grid
  (``admissible="all"``, the old rule), with the image-independent σ = 1 excluded (the default rule) and
  with the measured rule (also leave out σ whose map has a Pearson correlation >= 0.9 with the blank's,
  given as a mask), and the fraction of images whose σ* is at the end of the admissible grid (``at_edge``);
- SL² (uniform prior on the grid): the share of ‖SL²‖₁ that comes from the σ = 1 term, and the cosine /
  Pearson correlation of SL² with the σ = 1 term and without it.

Models: the ICCV25 Fashion-MNIST CNN (trained here, fixed seed, to 85 % on held-out test images) on
Fashion-MNIST test images, and EfficientNet-Lite0 on scikit-image's photos.  Every map is a Monte Carlo mean of
``--samples`` draws per σ (estimator: the plain mean of squared gradients, docs/methods.md §1); the
correlations come with their standard error over images.

    python examples/sigma_edge.py --out examples/reference     # writes sigma_edge.json and sigma_edge.md
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

import spectral_xai as sx
from spectral_xai.noise_level import map_correlation as pearson, sigma_star
from spectral_xai.zoo import efficientnet_lite0, fashion_mnist, photos
from spectral_xai.zoo.training import train_to_cap

GRID = [round(0.1 * i, 1) for i in range(11)]
EXPONENTS = (2.5, 1.0)
SCALES = (0.3, 1.0)
THRESHOLD = 0.9   # the measured rule: leave out σ whose map correlates with the blank's at >= THRESHOLD


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(..., H, W) x2 -> (...) cosine similarity of the flattened maps."""
    a, b = a.flatten(start_dim=-2).double(), b.flatten(start_dim=-2).double()
    return torch.nn.functional.cosine_similarity(a, b, dim=-1, eps=1e-300)


def mean_se(v: torch.Tensor) -> list[float]:
    """(N,) -> [mean, standard error over the N values]."""
    v = v.double()
    se = float(v.std() / math.sqrt(v.numel())) if v.numel() > 1 else float("nan")
    return [float(v.mean()), se]


def per_sigma_maps(model, x, target, scale, samples, batch_size):
    """G_σ (B, S, H, W) of x, of blanks and of the batch rolled by one, same ids and targets."""
    ids = torch.arange(x.shape[0])
    out = []
    for images in (x, torch.zeros_like(x), x.roll(1, dims=0)):
        res = sx.spectral_lens(model, images, GRID, target, n_samples=samples, noise_scale=scale, seed=0,
                               image_ids=ids, batch_size=batch_size, return_per_sigma=True)
        out.append(res.per_sigma.double())
    return out


def study(model, x, samples, batch_size) -> dict:
    """All the numbers of the module docstring for one model and batch."""
    with torch.no_grad():
        target = model.eval()(x).argmax(1)
    grid = torch.tensor(GRID, dtype=torch.float64)
    result = {"images": x.shape[0], "size": list(x.shape[1:]), "samples_per_sigma": samples, "scales": {}}
    for scale in SCALES:
        t0 = time.perf_counter()
        g, g_blank, g_other = per_sigma_maps(model, x, target, scale, samples, batch_size)
        l1 = g.sum(dim=(2, 3))                                                   # (B, S)
        log_l1 = l1.mean(0).log()
        slope = [None] + [float((log_l1[j] - log_l1[j - 1]) / math.log(GRID[j] / GRID[j - 1])) if j > 1 else None
                          for j in range(1, len(GRID))]
        row = {"sigma": GRID,
               "cos_blank": [mean_se(cosine(g[:, j], g_blank[:, j])) for j in range(len(GRID))],
               "pearson_blank": [mean_se(pearson(g[:, j], g_blank[:, j])) for j in range(len(GRID))],
               "cos_other": [mean_se(cosine(g[:, j], g_other[:, j])) for j in range(len(GRID))],
               "pearson_other": [mean_se(pearson(g[:, j], g_other[:, j])) for j in range(len(GRID))],
               "max_abs_diff_blank_at_1": float((g[:, -1] - g_blank[:, -1]).abs().max()),
               "l1": [mean_se(l1[:, j]) for j in range(len(GRID))],
               "log_slope_l1": slope, "sigma_star": {}}
        measured = pearson(g, g_blank) < THRESHOLD                                # (B, S) the measured rule
        for e in EXPONENTS:
            for rule in ("all", "image-dependent", f"Pearson(blank) < {THRESHOLD:g}"):
                st = sigma_star(g, grid, scale, e, admissible=measured if rule.startswith("P") else rule)
                counts = {f"{v:g}": int((st.sigma == v).sum()) for v in GRID if int((st.sigma == v).sum())}
                row["sigma_star"][f"e={e:g} {rule}"] = {
                    "counts": counts, "at_edge": float(st.at_edge.double().mean()),
                    "at_1": float((st.sigma == 1.0).double().mean())}
        # SL² with the uniform prior on the grid, with and without the σ = 1 term
        sl2 = g.mean(1)
        sl2_wo = g[:, :-1].mean(1)
        share = (g[:, -1].sum(dim=(1, 2)) / len(GRID)) / sl2.sum(dim=(1, 2))
        row["sl2"] = {"share_of_sigma_1": mean_se(share), "cos_with_without": mean_se(cosine(sl2, sl2_wo)),
                      "pearson_with_without": mean_se(pearson(sl2, sl2_wo)),
                      "pearson_sl2_blank": mean_se(pearson(sl2, g_blank.mean(1)))}
        row["seconds"] = round(time.perf_counter() - t0, 1)
        print(f"  s = {scale:g}: {row['seconds']} s", flush=True)
        result["scales"][f"{scale:g}"] = row
    return result


def fashion(args) -> tuple:
    xtr, ytr = fashion_mnist("train", limit=args.train_images)
    xte, yte = fashion_mnist("test", limit=args.check_images + args.images)
    t0 = time.perf_counter()
    n = args.check_images
    model, info = train_to_cap(None, xtr, ytr, xte[:n], yte[:n], cap=args.cap, check_every=25, seed=0)
    x = xte[n:n + args.images]
    info["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"trained: {info}", flush=True)
    return model, x, info


def fmt(ms) -> str:
    return f"{ms[0]:.3f} ± {ms[1]:.3f}"


def markdown(res: dict, argv: list[str]) -> str:
    lines = ["# σ* on the edge of the convex grid", "",
             f"`python examples/sigma_edge.py {' '.join(argv)}` (docs/methods.md §3). Maps: Monte Carlo means of "
             "squared gradients, the same noise keys for an image, an all-zero blank and the next image (other); "
             "correlations are means ± standard error over images.", ""]
    for name, r in res["models"].items():
        lines += [f"## {name}", "", f"{r['images']} images {r['size']}, {r['samples_per_sigma']} samples per σ. "
                  + r.get("note", ""), ""]
        for scale, row in r["scales"].items():
            lines += [f"### noise scale s = {scale} ({row['seconds']} s)", "",
                      "| σ | cos(G_σ(x), G_σ(blank)) | Pearson (blank) | Pearson (other image) | ‖G_σ‖₁ | "
                      "d log‖G‖₁/d log σ |", "|---|---|---|---|---|---|"]
            for j, sg in enumerate(row["sigma"]):
                sl = row["log_slope_l1"][j]
                lines.append(f"| {sg:g} | {fmt(row['cos_blank'][j])} | {fmt(row['pearson_blank'][j])} | "
                             f"{fmt(row['pearson_other'][j])} | {row['l1'][j][0]:.4g} | "
                             f"{'' if sl is None else f'{sl:.2f}'} |")
            lines += ["", f"max |G_1(x) − G_1(blank)| = {row['max_abs_diff_blank_at_1']:g}.", "",
                      "| exponent, rule | σ* counts | fraction at σ = 1 | fraction at the edge |",
                      "|---|---|---|---|"]
            for k, v in row["sigma_star"].items():
                counts = ", ".join(f"{s}: {c}" for s, c in v["counts"].items())
                lines.append(f"| {k} | {counts} | {v['at_1']:.2f} | {v['at_edge']:.2f} |")
            sl2 = row["sl2"]
            lines += ["", f"SL² (uniform prior): share of ‖SL²‖₁ from σ = 1 {fmt(sl2['share_of_sigma_1'])}; "
                      f"SL² with vs without σ = 1: cosine {fmt(sl2['cos_with_without'])}, Pearson "
                      f"{fmt(sl2['pearson_with_without'])}; Pearson of SL²(x) with SL²(blank) "
                      f"{fmt(sl2['pearson_sl2_blank'])}.", ""]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("sigma_edge_out"))
    p.add_argument("--images", type=int, default=16, help="Fashion-MNIST test images")
    p.add_argument("--train-images", type=int, default=12000)
    p.add_argument("--cap", type=float, default=0.8, help="training stops at the first check above this accuracy")
    p.add_argument("--check-images", type=int, default=500, help="test images of the accuracy checks")
    p.add_argument("--samples", type=int, default=16, help="samples per σ (Fashion CNN)")
    p.add_argument("--photo-size", type=int, default=64)
    p.add_argument("--photo-samples", type=int, default=8)
    p.add_argument("--skip-photos", action="store_true")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    res = {"grid": GRID, "exponents": list(EXPONENTS), "noise_scales": list(SCALES), "models": {}}
    model, x, info = fashion(args)
    r = study(model, x, args.samples, 4096)
    r["training"] = info
    r["note"] = (f"ICCV25 CNN (ReLU, Adam 3e-4, {args.train_images} training images), trained to "
                 f"{info['check_accuracy']:.3f} test accuracy in {info['steps']} steps.")
    res["models"]["Fashion-MNIST CNN"] = r
    if not args.skip_photos:
        x = photos(args.photo_size)
        r = study(efficientnet_lite0(), x, args.photo_samples, 64)
        r["note"] = "EfficientNet-Lite0 (ImageNet weights), scikit-image photos " + ", ".join(sx.zoo.PHOTO_NAMES) + "."
        res["models"]["EfficientNet-Lite0"] = r
    res["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sigma_edge.json").write_text(json.dumps(res, indent=1))
    rel = lambda a: Path(a).name if os.path.relpath(a).startswith("..") else os.path.relpath(a)  # noqa: E731
    shown = [rel(a) if i and argv[i - 1] == "--out" else a for i, a in enumerate(argv)]  # no path of this machine
    (args.out / "sigma_edge.md").write_text(markdown(res, shown))
    print(f"{res['seconds']} s -> {args.out / 'sigma_edge.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
