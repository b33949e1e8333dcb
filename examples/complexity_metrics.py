"""Does Expected Frequency rank explanation methods like Quantus's entropy and Gini complexity metrics?

Captum's explainers (Saliency, SmoothGrad by NoiseTunnel, IntegratedGradients, GuidedBackprop, DeepLift,
LRP where the model allows) on two models: the ICCV25 Fashion-MNIST CNN (ReLU, trained here to the
accuracy cap, as examples/iccv25_fig3.py) and EfficientNet-Lite0 on scikit-image's photos.  Every map is
Captum's attribution of the target logit summed over channels (signed), and the same maps go to
Quantus's Complexity (entropy) and Sparseness (Gini), both with Quantus's defaults (abs, normalise), and
to this library's EF through its Quantus metric (docs/integrations.md §2): rank-normalised (the paper's
recipe), rank-normalised without the DC ring, without rank normalisation, and of |map| without rank
normalisation.  EF means come with their standard errors over images from the torchmetrics metric
(``compute_stats``).

Across methods, Spearman's ρ between the mean EF and the mean entropy, and between the mean EF and the
mean −Gini (so that for all three, higher = more complex), with the exact permutation p-value over all
orderings of the methods and a bootstrap over images (95 % interval of ρ: how far the sampling error of
the means, EF's included, moves the ranking).

    python examples/complexity_metrics.py --out complexity_out [--fmnist-images 64 --photo-size 96]

Writes complexity_metrics.json / .md / .png.
"""
from __future__ import annotations

import argparse
import copy
import itertools
import json
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from spectral_xai.captum_adapters import captum_attribution
from spectral_xai.integrations.quantus import ExpectedFrequency as QuantusEF
from spectral_xai.integrations.torchmetrics import ExpectedFrequency as StreamEF
from spectral_xai.zoo import efficientnet_lite0, fashion_mnist, photos
from spectral_xai.zoo.training import accuracy, train_to_cap

METHODS = ("Saliency", "SmoothGrad", "IntegratedGradients", "GuidedBackprop", "DeepLift", "LRP")
# name -> (EF options, take |map| first); higher = more complex for every EF
EF_VARIANTS = {"EF (rank)": ({}, False), "EF (rank, no DC)": ({"exclude_dc": True}, False),
               "EF (no rank)": ({"rank_normalize": False}, False), "EF of |map| (no rank)": ({"rank_normalize": False},
                                                                                          True)}
PHOTOS = ("coffee", "chelsea", "astronaut", "rocket", "hubble_deep_field", "immunohistochemistry", "camera",
          "coins")


class _FunctionalFlatten(torch.nn.Module):
    """A Sequential with its nn.Flatten done in forward() instead (Captum's LRP has no rule for a reshape)."""

    def __init__(self, model: torch.nn.Sequential):
        super().__init__()
        cut = next(i for i, m in enumerate(model) if isinstance(m, torch.nn.Flatten))
        self.features, self.head = model[:cut], model[cut + 1:]

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


def lrp_ready(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of the model that Captum's LRP can walk: a Sequential's nn.Flatten becomes a functional flatten."""
    model = copy.deepcopy(model)
    if isinstance(model, torch.nn.Sequential) and any(isinstance(m, torch.nn.Flatten) for m in model):
        return _FunctionalFlatten(model).eval()
    return model


def mark_duplicates(maps: dict, rtol: float = 1e-4) -> dict:
    """Maps equal to an earlier method's (to rtol of the largest value) become a note: the same map must
    not count twice in a ranking (e.g. Captum's GuidedBackprop without nn.ReLU is the plain gradient)."""
    out = {}
    for name, m in maps.items():
        same = next((k for k, v in out.items() if isinstance(m, torch.Tensor) and isinstance(v, torch.Tensor)
                     and torch.allclose(m, v, rtol=0, atol=rtol * float(v.abs().max()))), None)
        out[name] = f"the same map as {same} (to {rtol:g} of its maximum)" if same else m
    return out


def captum_maps(model, x, target, *, sg_stdev: float, sg_samples: int, ig_steps: int, seed: int) -> dict:
    """{method: (B, H, W) channel-summed attribution of the target logit, or the reason it failed}."""
    from captum import attr

    model.eval()
    out = {}
    for name in METHODS:
        inputs = x.detach().clone().requires_grad_(True)
        try:
            if name == "Saliency":
                a = attr.Saliency(model).attribute(inputs, target=target, abs=False)
            elif name == "SmoothGrad":
                torch.manual_seed(seed)
                a = attr.NoiseTunnel(attr.Saliency(model)).attribute(
                    inputs, nt_type="smoothgrad", nt_samples=sg_samples, nt_samples_batch_size=sg_samples,
                    stdevs=sg_stdev, target=target, abs=False)
            elif name == "IntegratedGradients":
                a = attr.IntegratedGradients(model).attribute(inputs, target=target, n_steps=ig_steps,
                                                              baselines=torch.zeros_like(inputs))
            else:
                a = captum_attribution(name, lrp_ready(model) if name == "LRP" else model, x, target)
            out[name] = a.detach().sum(1).float()
        except Exception as err:  # a method the model does not support is a row with the reason
            out[name] = f"{type(err).__name__}: {str(err).splitlines()[0][:140]}"
    return out


def scores(model, x, y, maps: dict) -> dict:
    """{method: {metric: per-image scores (list)} and EF standard errors from the streaming metric}."""
    import quantus

    xs, ys = x.numpy(), y.numpy()
    res = {}
    for name, m in maps.items():
        if isinstance(m, str):
            res[name] = {"note": m if m.startswith("the same map") else f"not supported: {m}"}
            continue
        a = m.numpy()[:, None]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            row = {"Complexity (entropy)": quantus.Complexity(disable_warnings=True)(
                       model=model, x_batch=xs, y_batch=ys, a_batch=a.copy()),
                   "Sparseness (Gini)": quantus.Sparseness(disable_warnings=True)(
                       model=model, x_batch=xs, y_batch=ys, a_batch=a.copy())}
        for label, (opts, absolute) in EF_VARIANTS.items():
            row[label] = QuantusEF(disable_warnings=True, **opts)(model=model, x_batch=xs, y_batch=ys,
                                                                  a_batch=np.abs(a) if absolute else a)
            stream = StreamEF(**opts)
            stream.update(m.abs() if absolute else m)
            st = stream.compute_stats()
            row[label + " se"] = float(st.stderr)
        res[name] = {k: (np.asarray(v, dtype=np.float64).tolist() if not k.endswith(" se") else v)
                     for k, v in row.items()}
    return res


def spearman(a, b) -> float:
    from scipy import stats
    return float(stats.spearmanr(a, b).statistic)


def exact_p(a, b) -> float:
    """Two-sided permutation p-value of Spearman's ρ over all orderings of b."""
    rho = abs(spearman(a, b))
    perms = list(itertools.permutations(b))
    return sum(abs(spearman(a, p)) >= rho - 1e-12 for p in perms) / len(perms)


def ranking(res: dict, *, n_boot: int, seed: int) -> dict:
    """Spearman's ρ across methods between each EF and entropy / −Gini, with exact p and a bootstrap CI."""
    names = [n for n, r in res.items() if "note" not in r]
    n_img = len(res[names[0]]["Complexity (entropy)"])
    per = {k: np.array([res[n][k] for n in names]) for k in (*EF_VARIANTS, "Complexity (entropy)",
                                                              "Sparseness (Gini)")}
    per["−Gini"] = -per.pop("Sparseness (Gini)")
    rng = np.random.default_rng(seed)
    boots = [rng.integers(0, n_img, n_img) for _ in range(n_boot)]
    out = {"methods": names, "n_images": n_img}
    for ef in EF_VARIANTS:
        for other in ("Complexity (entropy)", "−Gini"):
            a, b = per[ef].mean(1), per[other].mean(1)
            boot = [spearman(per[ef][:, i].mean(1), per[other][:, i].mean(1)) for i in boots]
            per_image = [spearman(per[ef][:, i], per[other][:, i]) for i in range(n_img)]
            out[f"{ef} vs {other}"] = {
                "rho": spearman(a, b), "p_exact": exact_p(a, b),
                "bootstrap_95": [float(np.nanpercentile(boot, 2.5)), float(np.nanpercentile(boot, 97.5))],
                "per_image_rho_mean": float(np.nanmean(per_image)),
                "per_image_rho_se": float(np.nanstd(per_image, ddof=1) / np.sqrt(n_img))}
    return out


def table(res: dict) -> str:
    cols = [*EF_VARIANTS, "Complexity (entropy)", "Sparseness (Gini)"]
    lines = ["| method | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, r in res.items():
        if "note" in r:
            lines.append(f"| {name} | " + " | ".join([""] * len(cols)) + f" |\n|  | {r['note']} |")
            continue
        cells = []
        for c in cols:
            v = np.asarray(r[c])
            se = r.get(c + " se", float(v.std(ddof=1) / np.sqrt(len(v))))
            cells.append(f"{v.mean():.4g} ± {se:.2g}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rho_table(rk: dict) -> str:
    lines = ["| EF variant | vs | ρ (methods) | exact p | bootstrap 95 % | per-image ρ (mean ± s.e.) |",
             "|---|---|---|---|---|---|"]
    for key, v in rk.items():
        if not isinstance(v, dict):
            continue
        ef, other = key.split(" vs ")
        lines.append(f"| {ef} | {other} | {v['rho']:.2f} | {v['p_exact']:.3f} | [{v['bootstrap_95'][0]:.2f}, "
                     f"{v['bootstrap_95'][1]:.2f}] | {v['per_image_rho_mean']:.2f} ± {v['per_image_rho_se']:.2f} |")
    return "\n".join(lines)


def figure(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ef = "EF (rank, no DC)"
    fig, axes = plt.subplots(len(results), 2, figsize=(10, 4.2 * len(results)), squeeze=False)
    for row, (model_name, res) in zip(axes, results.items()):
        for ax, other in zip(row, ("Complexity (entropy)", "Sparseness (Gini)")):
            for name, r in res["scores"].items():
                if "note" in r:
                    continue
                x, y = np.asarray(r[other]), np.asarray(r[ef])
                ax.errorbar(x.mean(), y.mean(), xerr=x.std(ddof=1) / np.sqrt(len(x)), yerr=r[ef + " se"], fmt="o",
                            capsize=3)
                ax.annotate(name, (x.mean(), y.mean()), textcoords="offset points", xytext=(4, 4), fontsize=8)
            key = f"{ef} vs {'−Gini' if other.startswith('Sparseness') else other}"
            rho = res["ranking"][key]["rho"]
            ax.set(xlabel=f"Quantus {other}", ylabel=f"{ef} (mean ± s.e.)",
                   title=f"{model_name}: ρ(EF, {'−Gini' if other.startswith('Sparseness') else 'entropy'}) "
                         f"= {rho:.2f}")
            ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="complexity_out")
    p.add_argument("--root", default=None, help="Fashion-MNIST IDX directory (default: Debian's)")
    p.add_argument("--fmnist-images", type=int, default=64)
    p.add_argument("--train-images", type=int, default=20000)
    p.add_argument("--cap", type=float, default=0.85)
    p.add_argument("--photo-size", type=int, default=96)
    p.add_argument("--sg-samples", type=int, default=16)
    p.add_argument("--ig-steps", type=int, default=16)
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = shlex.join(["python", "examples/complexity_metrics.py", *sys.argv[1:]])
    t0 = time.perf_counter()
    xtr, ytr = fashion_mnist("train", args.root, limit=args.train_images)
    xte, yte = fashion_mnist("test", args.root)
    cnn, info = train_to_cap(None, xtr, ytr, xte[:2000], yte[:2000], cap=args.cap, seed=args.seed)
    x_f = xte[2000:2000 + args.fmnist_images]
    lite = efficientnet_lite0().eval()
    x_p = photos(args.photo_size, names=PHOTOS)
    setups = {"Fashion-MNIST CNN": (cnn, x_f, 0.15, {"train": info, "test_accuracy": accuracy(cnn, xte[2000:4000],
                                                                                          yte[2000:4000])}),
              "EfficientNet-Lite0": (lite, x_p, 0.15 * 128 / 255, {"photos": list(PHOTOS)})}
    results = {}
    for name, (model, x, stdev, meta) in setups.items():
        t1 = time.perf_counter()
        with torch.no_grad():
            y = model(x).argmax(1)
        maps = mark_duplicates(captum_maps(model, x, y, sg_stdev=stdev, sg_samples=args.sg_samples,
                                           ig_steps=args.ig_steps, seed=args.seed))
        res = scores(model, x, y, maps)
        results[name] = {"meta": {**meta, "images": len(x), "size": list(x.shape[1:]), "sg_stdev": stdev},
                         "scores": res, "ranking": ranking(res, n_boot=args.bootstrap, seed=args.seed),
                         "seconds": time.perf_counter() - t1}
        print(f"{name}: {results[name]['seconds']:.0f} s", flush=True)
    (out / "complexity_metrics.json").write_text(json.dumps({"config": vars(args), "command": command,
                                                             "seconds": time.perf_counter() - t0,
                                                             "results": results}, indent=1))
    parts = [f"# EF next to Quantus's Complexity and Sparseness on Captum's explainers\n\n`{command}` "
             f"({time.perf_counter() - t0:.0f} s on this machine)\n"]
    for name, r in results.items():
        parts.append(f"## {name} ({r['meta']['images']} images, {tuple(r['meta']['size'])})\n\n"
                     f"Per method, mean ± standard error over images (EF: `compute_stats()` of the torchmetrics "
                     f"metric):\n\n{table(r['scores'])}\n\nRanking of the methods (higher = more complex for "
                     f"EF, entropy and −Gini):\n\n{rho_table(r['ranking'])}\n")
    (out / "complexity_metrics.md").write_text("\n".join(parts))
    figure(results, out / "complexity_metrics.png")
    print("\n".join(parts))


if __name__ == "__main__":
    main()
