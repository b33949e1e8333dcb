"""ICCV25 Fig. 3 and Table 2 on Fashion-MNIST, on a CPU in minutes.

Trains the ICCV25 small CNN (Conv3x3 without bias - act - MaxPool blocks, FC - act - FC; Adam 3e-4)
for each β and with the unsmoothed activation, each stopped at the first accuracy check (every
``--check-every`` steps, on ``--check-images`` test images) above ``--cap``; then the Expected
Frequency of VanillaGrad maps over ``--eval-images`` other test images, and the gap tables (ICCV25
Table 2) for the unsmoothed network and β = ``--table-beta``.

``--activation relu`` (the paper): ReLU, smoothed as SoftPlus_β (docs/methods.md §8).
``--activation gelu`` / ``silu``: GELU / SiLU, smoothed as a_β(x) = E[a(x + Z/√β)]
(``sx.smooth_activations(model, β, kind="gaussian")``, §12).  β is applied at training time: one
network is trained per β, as in the paper.

Writes ef_vs_beta{_ACT}.json / .png / .md (the .md: β, accuracy, EF ± standard error, monotonicity and
Spearman's ρ of EF against β with scipy's p-value), and unless ``--table-images 0`` gap_tables{_ACT}.md
and spectra{_ACT}.png (``_ACT`` is empty for relu, ``_gelu`` / ``_silu`` otherwise).

    python examples/iccv25_fig3.py --out iccv25_out [--root /path/to/idx/dir] [--activation gelu]
"""
from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy import stats

import spectral_xai as sx
from spectral_xai import viz
from spectral_xai.gap_table import gap_table
from spectral_xai.zoo import fashion_mnist
from spectral_xai.zoo.training import accuracy, train_to_cap

# activation -> (unsmoothed name, name of the smoothed family, x axis label)
NAMES = {"relu": ("ReLU", "SoftPlus", "SoftPlus β"),
         "gelu": ("GELU", "GaussGELU", "Gaussian smoothing β of GELU"),
         "silu": ("SiLU", "GaussSiLU", "Gaussian smoothing β of SiLU")}


def model_name(activation: str, beta: float | None) -> str:
    plain, smooth, _ = NAMES[activation]
    return plain if beta is None else f"{smooth}({beta:g})"


def trend(results: list[dict], key: str = "ef") -> dict:
    """Does EF (``key``: "ef" or "ef_no_rank") increase with β (None = ∞, the unsmoothed network)?
    Spearman's ρ of the per-model means ``{key}_mean`` against β with scipy's p-value (t approximation,
    n = number of models) and the exact two-sided permutation p-value (all n! orderings), strict
    monotonicity of the means, and the per-image Spearman ρ of ``{key}_per_image`` across the models
    (mean ± standard error over the images)."""
    rows = sorted(results, key=lambda r: math.inf if r["beta"] is None else r["beta"])
    betas = [math.inf if r["beta"] is None else r["beta"] for r in rows]
    means = [r[f"{key}_mean"] for r in rows]
    rho, p = stats.spearmanr(betas, means)
    exact = stats.permutation_test((means,), lambda m: stats.spearmanr(betas, m)[0], permutation_type="pairings",
                                   n_resamples=math.factorial(len(rows)))
    per_image = np.array([r[f"{key}_per_image"] for r in rows])            # (models, images)
    rho_i = np.array([stats.spearmanr(betas, per_image[:, j])[0] for j in range(per_image.shape[1])])
    steps = np.diff(means)
    return {"spearman_rho": float(rho), "spearman_p": float(p), "spearman_p_exact": float(exact.pvalue),
            "n_models": len(rows),
            "monotone": "increasing" if (steps > 0).all() else "decreasing" if (steps < 0).all() else "no",
            "per_image_rho_mean": float(rho_i.mean()),
            "per_image_rho_se": float(rho_i.std(ddof=1) / math.sqrt(len(rho_i)))}


def results_markdown(results: list[dict], n: int, unit: str = "image", units: str = "images") -> list[str]:
    """The table of the models (β, steps, accuracies, EF ± standard error, rank-normalised and raw) and the two
    trend verdicts, as markdown lines; ``n`` ``units`` (images, series) behind each mean."""
    lines = ["| β | model | steps | check acc. | test acc. | EF (mean ± s.e.) | EF without rank normalisation |",
             "|---|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: math.inf if r["beta"] is None else r["beta"]):
        beta = "∞" if r["beta"] is None else f"{r['beta']:g}"
        cap = " (cap not reached)" if r.get("cap_not_reached") else ""
        lines.append(f"| {beta} | {r['activation']} | {r['steps']} | {r['check_accuracy']:.3f}{cap} | "
                     f"{r['test_accuracy']:.3f} | {r['ef_mean']:.6f} ± {r['ef_se']:.6f} | "
                     f"{r['ef_no_rank_mean']:.4f} ± {r['ef_no_rank_se']:.4f} |")
    t, t_raw = trend(results), trend(results, "ef_no_rank")
    lines += ["", *(f"{name}: EF means in β order (β = ∞ last) monotone: {t['monotone']}; Spearman ρ = "
                    f"{t['spearman_rho']:.3f}, p = {t['spearman_p']:.3g} (scipy.stats.spearmanr, t approximation, "
                    f"n = {t['n_models']} models; exact permutation p = {t['spearman_p_exact']:.3g}). Per {unit}, "
                    f"Spearman ρ of EF against β across the models: {t['per_image_rho_mean']:.3f} ± "
                    f"{t['per_image_rho_se']:.3f} (mean ± s.e. over {n} {units})."
                    for name, t in (("Rank-normalised EF", t), ("EF without rank normalisation", t_raw))), ""]
    return lines


def summary_markdown(args, results: list[dict], command: str) -> str:
    """The table of the run (β, accuracy, EF ± standard error) and the trend verdict."""
    plain = NAMES[args.activation][0]
    n = args.eval_images
    lines = [f"# EF of VanillaGrad against β, {plain} CNN on Fashion-MNIST (ICCV25 Fig. 3 protocol)", "",
             f"Command: `{command}` ({sum(r['seconds'] for r in results) / 60:.1f} min wall time for the "
             f"models in the table, {torch.get_num_threads()} torch CPU threads).", "",
             f"One network per β (β applied at training time: the activation a_β of every layer during "
             f"training and explanation), trained with Adam 3e-4 from the same initialisation to the first "
             f"check (every {args.check_every} steps on {args.check_images} test images) above {args.cap}, "
             f"at most {args.max_epochs} epochs of {args.train_images or 60000} training images. EF: the "
             f"rank-normalised Expected Frequency (docs/methods.md §7) of each VanillaGrad map of {n} other "
             f"test images; mean ± standard error over the images (std/√{n}; VanillaGrad is deterministic, so "
             f"the error is across images only). 'test acc.' is on those {n} images.", "",
             *results_markdown(results, n)]
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="iccv25_out")
    p.add_argument("--root", default=None, help="IDX directory (default: Debian's dataset-fashion-mnist)")
    p.add_argument("--activation", choices=tuple(NAMES), default="relu",
                   help="relu: SoftPlus_β (the paper); gelu / silu: Gaussian smoothing a_β (docs/methods.md §12)")
    p.add_argument("--betas", type=float, nargs="+", default=[0.5, 1, 2, 5, 10])
    p.add_argument("--cap", type=float, default=0.85)
    p.add_argument("--check-every", type=int, default=100)
    p.add_argument("--check-images", type=int, default=2000)
    p.add_argument("--eval-images", type=int, default=500)
    p.add_argument("--table-images", type=int, default=100, help="0: no gap tables and spectra")
    p.add_argument("--table-beta", type=float, default=0.9, help="the smoothed network of the gap tables")
    p.add_argument("--train-images", type=int, default=None, help="a prefix of the training set (default: all)")
    p.add_argument("--max-epochs", type=int, default=5)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.activation == "relu" else f"_{args.activation}"
    command = shlex.join(["python", "examples/iccv25_fig3.py", *sys.argv[1:]])
    xtr, ytr = fashion_mnist("train", args.root, limit=args.train_images)
    xte, yte = fashion_mnist("test", args.root)
    held_out = xte[args.check_images:args.check_images + args.eval_images]  # not used for stopping
    y_held_out = yte[args.check_images:args.check_images + args.eval_images]
    tables = args.table_images > 0
    results, models = [], {}
    for beta in [*args.betas, *([args.table_beta] if tables else []), None]:
        if beta in models:
            continue
        t0 = time.perf_counter()
        model, info = train_to_cap(beta, xtr, ytr, xte[:args.check_images], yte[:args.check_images], cap=args.cap,
                                   check_every=args.check_every, max_epochs=args.max_epochs, batch=args.batch,
                                   seed=args.seed, activation=args.activation)
        models[beta] = model
        if beta is not None and beta not in args.betas:
            continue
        vg = sx.vanilla_grad(model, held_out)
        ef = sx.expected_frequency(vg)
        ef_raw = sx.expected_frequency(vg, rank_normalize=False)
        root_n = math.sqrt(len(ef))
        row = {"beta": beta, "activation": model_name(args.activation, beta), **info,
               "test_accuracy": accuracy(model, held_out, y_held_out),
               "ef_mean": float(ef.mean()), "ef_std": float(ef.std()), "ef_se": float(ef.std()) / root_n,
               "ef_no_rank_mean": float(ef_raw.mean()), "ef_no_rank_std": float(ef_raw.std()),
               "ef_no_rank_se": float(ef_raw.std()) / root_n, "ef_per_image": ef.tolist(),
               "ef_no_rank_per_image": ef_raw.tolist(),
               "seconds": time.perf_counter() - t0}
        results.append(row)
        print(f"{row['activation']:14s} steps {info['steps']:5d} acc {row['test_accuracy']:.3f}  "
              f"EF {row['ef_mean']:.5f} ± {row['ef_se']:.5f} (s.e.)  EF(no rank) {row['ef_no_rank_mean']:.4f}  "
              f"({row['seconds']:.0f} s)", flush=True)
    summary = {"trend": trend(results), "trend_no_rank": trend(results, "ef_no_rank")}
    (out / f"ef_vs_beta{suffix}.json").write_text(json.dumps({"config": vars(args), "command": command, **summary,
                                                             "results": results}, indent=2))
    (out / f"ef_vs_beta{suffix}.md").write_text(summary_markdown(args, results, command))
    plain, _, xlabel = NAMES[args.activation]
    viz.ef_vs_beta_figure([r["beta"] for r in results], [r["ef_mean"] for r in results],
                          [r["ef_std"] for r in results], path=out / f"ef_vs_beta{suffix}.png",
                          unsmoothed=plain, xlabel=xlabel)
    print(summary_markdown(args, results, command))
    if not tables:
        print(f"wrote {out}/ef_vs_beta{suffix}.json, .png, .md")
        return
    x = held_out[:args.table_images]
    parts = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for beta in (None, args.table_beta):
            name = model_name(args.activation, beta)
            _, md = gap_table(models[beta], x)
            _, md_raw = gap_table(models[beta], x, rank_normalize=False)
            parts.append(f"## {name} (rank-normalised EF, the paper's recipe)\n\n{md}\n\n"
                         f"## {name} (EF without rank normalisation)\n\n{md_raw}\n")
    (out / f"gap_tables{suffix}.md").write_text("\n".join(parts))
    print("\n".join(parts))
    unsmoothed = models[None]
    viz.spectra_figure({"VanillaGrad": sx.vanilla_grad(unsmoothed, x),
                        "SmoothGrad": sx.smooth_grad(unsmoothed, x, 0.1, squared=False, n_samples=64),
                        "IntegratedGradients": sx.integrated_grad(unsmoothed, x)},
                       rank_normalize=False, path=out / f"spectra{suffix}.png")
    print(f"wrote {out}/ef_vs_beta{suffix}.json, .png, .md, gap_tables{suffix}.md, spectra{suffix}.png")


if __name__ == "__main__":
    main()
