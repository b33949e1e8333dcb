"""ECCV24 Table 1 on our data: deletion / insertion AUC of OS, RISE, SG, XIG, IG, SG², XIG², IG², SG²_opt, SL².

(a) the ICCV25 small ReLU CNN trained on Fashion-MNIST (to 85 % on a check split), evaluated on
``--images`` held-out test images with their labels, erosion 1, 3 and 5 (28 x 28 is small);
(b) EfficientNet-Lite0 on the bundled photos with the model's own top-1 as label.
Writes table1.md and table1.json; the timing line compares the batched evaluation with a plain loop over q.

    python examples/eccv24_table1.py --out eccv24_out [--root /path/to/idx/dir]
"""
from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import torch

import spectral_xai as sx
from spectral_xai.comparison import comparison_table
from spectral_xai.atomic_io import write_json
from spectral_xai.environment import environment_info
from spectral_xai.zoo import efficientnet_lite0, fashion_mnist, photos
from spectral_xai.zoo.training import train_to_cap


def eval_speed(model, x, maps) -> dict:
    """Forward passes per second: deletion_insertion (batched over q) vs a plain loop over q."""
    t0 = time.perf_counter()
    out = sx.metrics.deletion_insertion(model, x, maps, baseline="blur")
    batched = time.perf_counter() - t0
    keep = sx.metrics.keep_masks(maps.double(), out["fractions"])
    base = sx.metrics.blur_baseline(x)
    t0 = time.perf_counter()
    with torch.no_grad():
        for j in range(keep.shape[1]):  # the usual loop: one forward per q (all images), twice
            m = keep[:, j].unsqueeze(1)
            model(x * m + base * (1 - m))
            model(x * (1 - m) + base * m)
    loop = time.perf_counter() - t0
    passes = 2 * keep.shape[0] * keep.shape[1]
    return {"forward_passes": passes, "batched_per_s": passes / batched, "loop_per_s": passes / loop}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="eccv24_out")
    p.add_argument("--root", default=None)
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--samples", type=int, default=16, help="samples per σ / per map for the sampling methods")
    args = p.parse_args()
    out = Path(args.out)
    warnings.simplefilter("ignore")
    report, md = {"environment": environment_info()}, []

    xtr, ytr = fashion_mnist("train", args.root)
    xte, yte = fashion_mnist("test", args.root)
    model, info = train_to_cap(None, xtr, ytr, xte[:2000], yte[:2000])
    x, y = xte[2000:2000 + args.images], yte[2000:2000 + args.images]
    n = args.samples
    fm_opts = {"sg": {"sigma": 0.15, "n_samples": n}, "sg2": {"sigma": 0.15, "n_samples": n},
               "sl2": {"n_samples": n, "noise_scale": 0.3}, "sg2opt": {"n_samples": n, "noise_scale": 0.3},
               "rise": {"n_masks": 1000}, "occlusion": {"window": 4, "stride": 2}}
    report["fashion_mnist"] = {"training": info, "tables": {}}
    for erosion in (1, 3, 5):
        t0 = time.perf_counter()
        df, table = comparison_table(model, x, y, method_options=fm_opts, erosion=erosion)
        report["fashion_mnist"]["tables"][f"erosion_{erosion}"] = df.to_dict(orient="records")
        md.append(f"## (a) Fashion-MNIST CNN, {len(x)} test images, blur baseline, erosion {erosion} "
                  f"({time.perf_counter() - t0:.0f} s)\n\n{table}\n")
        print(md[-1], flush=True)

    lite = efficientnet_lite0()
    xs = photos(128)
    with torch.no_grad():
        top1 = lite(xs).argmax(1)
    lite_opts = {"sg": {"sigma": 0.15, "n_samples": n}, "sg2": {"sigma": 0.15, "n_samples": n},
                 "sl2": {"n_samples": n // 2}, "sg2opt": {"n_samples": n // 2}, "rise": {"n_masks": 1000},
                 "ig": {"n_steps": 16}, "ig2": {"n_steps": 16}, "xig": {"n_steps": 16}, "xig2": {"n_steps": 16}}
    t0 = time.perf_counter()
    df, table = comparison_table(lite, xs, top1, method_options=lite_opts)
    report["efficientnet_lite0"] = df.to_dict(orient="records")
    md.append(f"## (b) EfficientNet-Lite0, 4 bundled photos at 128 px, label = top-1, blur baseline "
              f"({time.perf_counter() - t0:.0f} s)\n\n{table}\n")
    print(md[-1], flush=True)
    speed = eval_speed(lite, xs, sx.explain("sg2", lite, xs, top1, n_samples=4))
    report["evaluation_speed"] = speed
    md.append(f"Evaluation speed (EfficientNet-Lite0, 128 px): {speed['batched_per_s']:.0f} forward passes/s batched "
              f"over q vs {speed['loop_per_s']:.0f}/s for a loop over q.")
    print(md[-1])
    out.mkdir(parents=True, exist_ok=True)
    (out / "table1.md").write_text("\n".join(md))
    write_json(report, out / "table1.json")
    print(f"wrote {out}/table1.md and table1.json")


if __name__ == "__main__":
    main()
