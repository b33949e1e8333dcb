"""ICCV25 Fig. 3 and Table 2 on Fashion-MNIST, on a CPU in minutes.

Trains the ICCV25 small CNN (Conv3x3 without bias - act - MaxPool blocks, FC - act - FC; Adam 3e-4)
with SoftPlus_β for each β and with ReLU, each stopped at the first accuracy check (every
``--check-every`` steps, on ``--check-images`` test images) above ``--cap``; then the Expected
Frequency of VanillaGrad maps over ``--eval-images`` test images, and the gap tables (ICCV25 Table 2)
for ReLU and SoftPlus(β=0.9).  Writes ef_vs_beta.json, ef_vs_beta.png, gap_tables.md and spectra.png.

    python examples/iccv25_fig3.py --out iccv25_out [--root /path/to/idx/dir]
"""
from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path


import spectral_xai as sx
from spectral_xai import viz
from spectral_xai.gap_table import gap_table
from spectral_xai.zoo import fashion_mnist
from spectral_xai.zoo.training import accuracy, train_to_cap


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="iccv25_out")
    p.add_argument("--root", default=None, help="IDX directory (default: Debian's dataset-fashion-mnist)")
    p.add_argument("--betas", type=float, nargs="+", default=[0.5, 1, 2, 5, 10])
    p.add_argument("--cap", type=float, default=0.85)
    p.add_argument("--check-every", type=int, default=100)
    p.add_argument("--check-images", type=int, default=2000)
    p.add_argument("--eval-images", type=int, default=500)
    p.add_argument("--table-images", type=int, default=100)
    p.add_argument("--max-epochs", type=int, default=5)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    xtr, ytr = fashion_mnist("train", args.root)
    xte, yte = fashion_mnist("test", args.root)
    held_out = xte[args.check_images:args.check_images + args.eval_images]  # not used for stopping
    results, models = [], {}
    for beta in [*args.betas, 0.9, None]:
        t0 = time.perf_counter()
        model, info = train_to_cap(beta, xtr, ytr, xte[:args.check_images], yte[:args.check_images], cap=args.cap,
                                   check_every=args.check_every, max_epochs=args.max_epochs, batch=args.batch,
                                   seed=args.seed)
        models[beta] = model
        if beta == 0.9 and 0.9 not in args.betas:
            continue
        vg = sx.vanilla_grad(model, held_out)
        ef = sx.expected_frequency(vg)
        ef_raw = sx.expected_frequency(vg, rank_normalize=False)
        row = {"beta": beta, "activation": "ReLU" if beta is None else f"SoftPlus({beta:g})", **info,
               "test_accuracy": accuracy(model, held_out, yte[args.check_images:args.check_images + args.eval_images]),
               "ef_mean": float(ef.mean()), "ef_std": float(ef.std()),
               "ef_no_rank_mean": float(ef_raw.mean()), "ef_no_rank_std": float(ef_raw.std()),
               "seconds": time.perf_counter() - t0}
        results.append(row)
        print(f"{row['activation']:14s} steps {info['steps']:5d} acc {row['test_accuracy']:.3f}  "
              f"EF {row['ef_mean']:.5f} ± {row['ef_std']:.5f}  EF(no rank) {row['ef_no_rank_mean']:.4f}  "
              f"({row['seconds']:.0f} s)", flush=True)
    (out / "ef_vs_beta.json").write_text(json.dumps({"config": vars(args), "results": results}, indent=2))
    viz.ef_vs_beta_figure([r["beta"] for r in results], [r["ef_mean"] for r in results],
                          [r["ef_std"] for r in results], path=out / "ef_vs_beta.png")
    x = held_out[:args.table_images]
    tables = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for beta in (None, 0.9):
            name = "ReLU" if beta is None else "SoftPlus(0.9)"
            _, md = gap_table(models[beta], x)
            _, md_raw = gap_table(models[beta], x, rank_normalize=False)
            tables.append(f"## {name} (rank-normalised EF, the paper's recipe)\n\n{md}\n\n"
                          f"## {name} (EF without rank normalisation)\n\n{md_raw}\n")
    (out / "gap_tables.md").write_text("\n".join(tables))
    print("\n".join(tables))
    relu = models[None]
    viz.spectra_figure({"VanillaGrad": sx.vanilla_grad(relu, x),
                        "SmoothGrad": sx.smooth_grad(relu, x, 0.1, squared=False, n_samples=64),
                        "IntegratedGradients": sx.integrated_grad(relu, x)},
                       rank_normalize=False, path=out / "spectra.png")
    print(f"wrote {out}/ef_vs_beta.json, ef_vs_beta.png, gap_tables.md, spectra.png")


if __name__ == "__main__":
    main()
