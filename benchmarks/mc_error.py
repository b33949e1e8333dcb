"""Case ``mc_error``: the Monte Carlo error of sampled maps (docs/methods.md §11), in three parts.

1. **Passes to 5 %.**  For SmoothGrad (``squared=False``) and SG² (additive noise), per image and budget n,
   four estimators of the Expected Frequency (docs/methods.md §7, §11) from one ``smooth_grad(...,
   return_stats=True)`` call: ``plug-in`` EF(map) and ``cross`` EF(A, B) (the cross spectrum of the halves),
   unranked; ``rank plug-in`` EF(rank(map)) and ``rank bias-reduced`` (the halves' jackknife), the paper's
   rank recipe.  ΔEF = |EF − EF(VanillaGrad)| against VanillaGrad of the same power (VG for SG, VG² for SG²),
   which is exact.  Truth: a long run of ``ref_runs`` independent sub-runs (other seeds) pooled, EF from the
   unbiased cross spectrum (unranked) or the bias-reduced rank EF (ranked); its own Monte Carlo error is the
   spread of the sub-runs' EF / sqrt(ref_runs).  Reported: mean |relative error| over images and seeds (± its
   standard error over those), the signed mean (the bias), the smallest budget within 5 % and passes
   interpolated log-log between budgets.
2. **Calibration of ``stderr``.**  Over the seeds at each n: mean reported variance (stderr², averaged over
   pixels) / the variance of the maps across seeds (unbiased, averaged over pixels), per image, then the mean
   over images (± se over images); and the coverage of ±2 se around the long-run map (se² of the estimate plus
   the long run's own se², per pixel, over every pixel, image and seed).
3. **Cost of the statistics on the CPU.**  ``smooth_grad`` with ``return_stats=True`` vs without vs the floor
   (the passes alone on prebuilt noisy inputs, ``benchmarks/sg2.py``), timed side by side (median of paired
   ratios), and the fused ops' profiled self time with and without the statistics, as shares of the floor.

Models: EfficientNet-Lite0 (ImageNet weights, ``spectral_xai.zoo``) on scikit-image's photos, and the ICCV25
Fashion-MNIST CNN (``zoo.fashion_cnn()``, ReLU) trained here with ``zoo.training.train_to_cap`` on the
Fashion-MNIST IDX files (Debian's ``dataset-fashion-mnist``, or ``--fashion-root`` /
``SPECTRAL_XAI_FASHION_MNIST``); without those files that model is reported as skipped.

    python -m benchmarks.studies.mc_error [--quick] [--models efficientnet fashion] [--seeds 4] [--ref-samples 2048] ...
"""
from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

import spectral_xai as sx

from .common import passes_for

ESTIMATORS = ("plug-in", "cross", "rank plug-in", "rank bias-reduced")
BASELINE = {"cross": "plug-in", "rank bias-reduced": "rank plug-in"}    # each estimator's plug-in
RANKED = {"plug-in": False, "cross": False, "rank plug-in": True, "rank bias-reduced": True}
TRUTH_ESTIMATOR = {False: "cross", True: "rank bias-reduced"}          # the long run's EF, unranked / ranked
METHODS = {"sg": False, "sg2": True}                                   # name -> squared
TOLERANCE = 0.05


@dataclass
class Setting:
    """A model and its images: x (B, C, H, W), target (B,), additive noise std ``sigma``."""

    name: str
    model: nn.Module
    x: torch.Tensor
    target: torch.Tensor
    sigma: float
    description: str
    output: str = "log_softmax"
    batch_size: int = 128
    info: dict = field(default_factory=dict)


def frozen(model: nn.Module) -> nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def clean_targets(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(1)


def efficientnet_setting(size: int, images: int, sigma: float) -> Setting:
    from spectral_xai.zoo import PHOTO_NAMES, efficientnet_lite0, photos

    model = frozen(efficientnet_lite0())
    x = photos(size)[:images]
    return Setting("efficientnet-lite0", model, x, clean_targets(model, x), sigma,
                   f"EfficientNet-Lite0 (ImageNet weights), scikit-image photos {', '.join(PHOTO_NAMES[:images])} "
                   f"at {size} px, target = clean arg-max, log_softmax, additive σ {sigma}")


def fashion_setting(images: int, sigma: float, root=None) -> Setting:
    """The ICCV25 CNN trained to 85 % check accuracy (Adam, lr 1e-3, seed 0; checks every 50 steps on test
    images 0..999); explained: the next ``images`` test images."""
    from spectral_xai.zoo import fashion_mnist
    from spectral_xai.zoo.training import accuracy, train_to_cap

    xtr, ytr = fashion_mnist("train", root)
    xte, yte = fashion_mnist("test", root)
    t0 = time.perf_counter()
    model, info = train_to_cap(None, xtr, ytr, xte[:1000], yte[:1000], cap=0.85, check_every=50, lr=1e-3, seed=0)
    info = {**info, "train_s": time.perf_counter() - t0, "test_accuracy": accuracy(model, xte, yte)}
    model = frozen(model)
    x = xte[1000:1000 + images]
    return Setting("fashion-cnn", model, x, clean_targets(model, x), sigma,
                   f"ICCV25 Fashion-MNIST CNN (zoo.fashion_cnn(), ReLU) trained with train_to_cap(cap=0.85, "
                   f"lr=1e-3, seed=0): {info['steps']} steps, test accuracy {info['test_accuracy']:.3f}; "
                   f"test images 1000..{999 + images}, target = clean arg-max, log_softmax, additive σ {sigma}",
                   batch_size=1024, info=info)


def random_cnn_setting(images: int, sigma: float) -> Setting:
    """``--quick``: ``zoo.fashion_cnn()`` with random weights (seed 0) on uniform random 28x28 images."""
    from spectral_xai.zoo import fashion_cnn

    torch.manual_seed(0)
    model = frozen(fashion_cnn())
    x = torch.rand(images, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    return Setting("random-cnn", model, x, clean_targets(model, x), sigma,
                   f"zoo.fashion_cnn() with random weights on {images} random 28x28 images (smoke test)",
                   batch_size=256)


# ------------------------------------------------------------------ estimates


def sampled(s: Setting, squared: bool, n: int, seed: int) -> sx.mc_stats.MapStats:
    """One ``smooth_grad(return_stats=True)`` run of n samples per image (image ids 0..B−1)."""
    return sx.smooth_grad(s.model, s.x, s.sigma, target=s.target, n_samples=n, squared=squared, seed=seed,
                          image_ids=list(range(s.x.shape[0])), batch_size=s.batch_size, output=s.output,
                          return_stats=True)


def ef_estimates(m: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
    """The four EF estimators of map m (B, H, W) with halves a, b: {name: (B,) float64}."""
    return {"plug-in": sx.expected_frequency(m, rank_normalize=False).double(),
            "cross": sx.expected_frequency(a, b, rank_normalize=False).double(),
            "rank plug-in": sx.expected_frequency(m, rank_normalize=True).double(),
            "rank bias-reduced": sx.expected_frequency(a, b, rank_normalize=True).double()}


def long_run(s: Setting, squared: bool, n_ref: int, runs: int, seed: int) -> dict:
    """The truth: ``runs`` independent runs of n_ref / runs samples (seeds seed, seed + 1, …) pooled.

    map, se2, halves (B, H, W) float64 (the pooled halves are the means of the runs' halves, still
    independent); ef {estimator: (B,)} of the pooled map; ef_se {estimator: (B,)} = sd of the runs' EF /
    sqrt(runs) (the Monte Carlo error of the pooled EF, to first order)."""
    if runs < 2 or n_ref % (2 * runs):
        raise ValueError(f"argument 'ref_samples': {n_ref} must split into {runs} runs of an even sample count")
    parts = [sampled(s, squared, n_ref // runs, seed + r) for r in range(runs)]
    m = torch.stack([p.map.double() for p in parts]).mean(0)
    se2 = torch.stack([p.stderr.double() ** 2 for p in parts]).sum(0) / runs ** 2
    a = torch.stack([p.halves[0].double() for p in parts]).mean(0)
    b = torch.stack([p.halves[1].double() for p in parts]).mean(0)
    per_run = [ef_estimates(p.map, *p.halves) for p in parts]
    ef_se = {k: torch.stack([e[k] for e in per_run]).std(0) / math.sqrt(runs) for k in ESTIMATORS}
    return {"map": m, "se2": se2, "halves": (a, b), "ef": ef_estimates(m, a, b), "ef_se": ef_se,
            "n_samples": n_ref, "runs": runs}


def replicas(s: Setting, squared: bool, ns, seeds) -> dict:
    """For every budget n: maps and se² (R, B, H, W) float64 of R = len(seeds) runs, ef {estimator: (R, B)}."""
    out = {}
    for n in ns:
        t0 = time.perf_counter()
        runs = [sampled(s, squared, n, seed) for seed in seeds]
        efs = [ef_estimates(r.map, *r.halves) for r in runs]
        out[n] = {"maps": torch.stack([r.map.double() for r in runs]),
                  "se2": torch.stack([r.stderr.double() ** 2 for r in runs]),
                  "ef": {k: torch.stack([e[k] for e in efs]) for k in ESTIMATORS}}
        print(f"    n={n}: {time.perf_counter() - t0:.0f} s", flush=True)
    return out


# ------------------------------------------------------------------ summaries


def mean_and_se(v: torch.Tensor) -> tuple[float, float]:
    """Mean of all values and its standard error (sd / sqrt(count))."""
    v = v.flatten().double()
    return float(v.mean()), float(v.std() / math.sqrt(v.numel())) if v.numel() > 1 else float("nan")


def relative_errors(est: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """(est − truth) / |truth|, est (R, B), truth (B,)."""
    return (est - truth) / truth.abs()


def smallest_within(curve: dict[int, float], tol: float = TOLERANCE) -> int | None:
    """The smallest budget whose mean |relative error| is <= tol (None: none of them)."""
    return next((n for n, e in sorted(curve.items()) if e <= tol), None)


def accuracy_summary(reps: dict, truth: dict, vg_ef: dict[bool, torch.Tensor]) -> dict:
    """Per estimator and quantity ("ef", "gap"): curves {n: mean |rel err|}, their se, the signed mean, the
    smallest n within 5 %, the interpolated passes and the baseline's passes / these."""
    out = {}
    for est in ESTIMATORS:
        ranked = RANKED[est]
        t_ef = truth["ef"][TRUTH_ESTIMATOR[ranked]]
        t_gap = (t_ef - vg_ef[ranked]).abs()
        res = {}
        for q in ("ef", "gap"):
            curve, se, signed = {}, {}, {}
            for n, r in reps.items():
                e = r["ef"][est]
                rel = relative_errors(e, t_ef) if q == "ef" else relative_errors((e - vg_ef[ranked]).abs(), t_gap)
                curve[n], se[n] = mean_and_se(rel.abs())
                signed[n] = mean_and_se(rel)[0]
            res[q] = {"mean_abs_rel_error": curve, "se": se, "mean_signed_rel_error": signed,
                      "smallest_n_within": smallest_within(curve), "passes_interpolated": passes_for(curve, TOLERANCE)}
        out[est] = res
    for est, base in BASELINE.items():
        for q in ("ef", "gap"):
            p, pb = out[est][q]["passes_interpolated"], out[base][q]["passes_interpolated"]
            out[est][q]["baseline_passes_over_these"] = pb / p if p and pb else None
    return out


def calibration(maps: torch.Tensor, se2: torch.Tensor, truth: torch.Tensor, truth_se2: torch.Tensor) -> dict:
    """maps, se2 (R, B, H, W) of R independent runs; truth, truth_se2 (B, H, W).

    variance_ratio: per image mean_pixels(mean_R se²) / mean_pixels(var_R(maps)), then mean ± se over images;
    coverage_2se: share of (run, image, pixel) with |map − truth| <= 2 sqrt(se² + truth_se²)."""
    observed = maps.var(0, unbiased=True).flatten(1).mean(1)
    reported = se2.mean(0).flatten(1).mean(1)
    ratio = reported / observed
    covered = (maps - truth).abs() <= 2 * (se2 + truth_se2).sqrt()
    mean, se = mean_and_se(ratio)
    return {"variance_ratio": mean, "variance_ratio_se": se, "variance_ratio_per_image": ratio.tolist(),
            "coverage_2se": float(covered.double().mean())}


def measure_setting(s: Setting, ns, seeds, ref_samples: int, ref_runs: int, ref_seed: int = 10_000) -> dict:
    """Parts 1 and 2 for one setting, both methods."""
    out = {"setting": s.name, "description": s.description, "images": s.x.shape[0], "sigma": s.sigma,
           "budgets": list(ns), "seeds": list(seeds), "info": s.info, "methods": {}}
    for method, squared in METHODS.items():
        t0 = time.perf_counter()
        vg = sx.vanilla_grad(s.model, s.x, s.target, squared=squared, output=s.output)
        vg_ef = {r: sx.expected_frequency(vg, rank_normalize=r).double() for r in (False, True)}
        truth = long_run(s, squared, ref_samples, ref_runs, ref_seed)
        print(f"    long run: {time.perf_counter() - t0:.0f} s", flush=True)
        reps = replicas(s, squared, ns, seeds)
        out["methods"][method] = {
            "truth": {"n_samples": ref_samples, "runs": ref_runs,
                      "ef": {k: v.tolist() for k, v in truth["ef"].items()},
                      "ef_se": {k: v.tolist() for k, v in truth["ef_se"].items()},
                      "ef_rel_se": {k: float((truth["ef_se"][k] / truth["ef"][k].abs()).mean()) for k in ESTIMATORS},
                      "gap": {r: (truth["ef"][TRUTH_ESTIMATOR[r]] - vg_ef[r]).abs().tolist() for r in (False, True)},
                      "vg_ef": {r: vg_ef[r].tolist() for r in (False, True)}},
            "accuracy": accuracy_summary(reps, truth, vg_ef),
            "calibration": {n: calibration(r["maps"], r["se2"], truth["map"], truth["se2"]) for n, r in reps.items()},
            "wall_s": time.perf_counter() - t0}
        print(f"  {s.name} {method}: {time.perf_counter() - t0:.0f} s", flush=True)
    return out


# ------------------------------------------------------------------ part 3: cost


def cost(device: torch.device, quick: bool, repeats: int) -> list[dict]:
    """smooth_grad with / without statistics vs the floor, timed side by side and profiled (the sg2 case's
    settings without 224 px)."""
    from .common import compare
    from .overhead import op_times
    from .sg2 import floor_passes, prepare, settings

    sets = settings(device, quick)[:1] if quick else [s for s in settings(device, quick) if "224" not in s["name"]]
    out = []
    for st in sets:
        model, x, target, chunks = prepare(st, device)
        sigma, n, bs = st["sigma"], st["n"], st["batch_size"]

        def ours(stats):
            return lambda: sx.smooth_grad(model, x, sigma, target=target, n_samples=n, output="logit",
                                          batch_size=bs, return_stats=stats)

        fns = {"floor": lambda: floor_passes(model, chunks), "plain": ours(False), "stats": ours(True)}
        timing = compare(fns, "floor", repeats, device)
        lib = {"plain": 0.0, "stats": 0.0}
        floor_prof = 0.0
        for r in range(repeats):
            floor_prof += sum(op_times(fns["floor"], device).values()) / repeats
            for k in (("plain", "stats") if r % 2 == 0 else ("stats", "plain")):
                lib[k] += sum(t for op, t in op_times(fns[k], device).items()
                              if op.startswith("spectral_xai::")) / repeats
        paired = [(a - b) / f for a, b, f in zip(timing["times_s"]["stats"], timing["times_s"]["plain"],
                                                  timing["times_s"]["floor"])]
        out.append({"setting": st["name"], "batch": list(x.shape), "n_samples": n, "rows_per_chunk": bs, **timing,
                    "stats_minus_plain_over_floor": sorted(paired)[len(paired) // 2],
                    "stats_minus_plain_over_floor_range": [min(paired), max(paired)],
                    "profiled_floor_s": floor_prof, "library_ops_s": lib,
                    "library_ops_over_floor": {k: v / floor_prof for k, v in lib.items()},
                    "stats_ops_over_floor": (lib["stats"] - lib["plain"]) / floor_prof})
        r = out[-1]
        print(f"  cost {st['name']}: plain/floor {r['ratio']['plain']:.3f} stats/floor {r['ratio']['stats']:.3f} "
              f"(stats−plain)/floor {100 * r['stats_minus_plain_over_floor']:+.2f} %, profiled fused ops "
              f"{100 * r['library_ops_over_floor']['plain']:.2f} % → "
              f"{100 * r['library_ops_over_floor']['stats']:.2f} %",
              flush=True)
    return out


# ------------------------------------------------------------------ the study and its tables


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.studies.mc_error", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke mode: a random CNN, tiny budgets (seconds)")
    p.add_argument("--models", nargs="+", default=["efficientnet", "fashion"], choices=["efficientnet", "fashion"])
    p.add_argument("--size", type=int, default=64, help="EfficientNet input size (px)")
    p.add_argument("--images", type=int, default=2, help="EfficientNet images (scikit-image photos, at most 4)")
    p.add_argument("--fashion-images", type=int, default=16)
    p.add_argument("--fashion-root", default=None, help="Fashion-MNIST IDX folder (default: zoo.fashion_mnist's)")
    p.add_argument("--sigma", type=float, default=0.15, help="additive noise std")
    p.add_argument("--ns", type=int, nargs="+", default=[8, 16, 32, 64, 128, 256], help="budgets (even)")
    p.add_argument("--seeds", type=int, default=4, help="independent runs per budget (seeds 0..seeds−1)")
    p.add_argument("--fashion-seeds", type=int, default=8)
    p.add_argument("--ref-samples", type=int, default=1024, help="samples of the long run (the truth)")
    p.add_argument("--fashion-ref-samples", type=int, default=4096)
    p.add_argument("--ref-runs", type=int, default=4, help="independent sub-runs of the long run")
    p.add_argument("--repeats", type=int, default=7, help="timing repeats of the cost part")
    p.add_argument("--no-cost", action="store_true", help="skip part 3")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device of the cost part")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    p.add_argument("--machine", default=None)
    args = p.parse_args(argv)
    if any(n < 2 or n % 2 for n in args.ns):
        p.error(f"argument --ns: budgets must be even and >= 2, got {args.ns}")
    if args.quick:
        args.ns, args.seeds, args.ref_samples, args.ref_runs, args.repeats = [4, 8], 2, 64, 2, 1
    return args


def study(args: argparse.Namespace, save=None) -> dict:
    """Parts 1–3 of ``args``: {"settings": [...], "skipped": {...}, "cost": [...]}; ``save(partial)`` is
    called after each model (a long run keeps what it has measured)."""
    torch.manual_seed(0)
    results, skipped = [], {}
    if args.quick:
        plans = [(lambda: random_cnn_setting(2, args.sigma), args.seeds, args.ref_samples)]
    else:
        plans = []
        if "fashion" in args.models:
            plans.append((lambda: fashion_setting(args.fashion_images, args.sigma, args.fashion_root),
                          args.fashion_seeds, args.fashion_ref_samples))
        if "efficientnet" in args.models:
            plans.append((lambda: efficientnet_setting(args.size, args.images, args.sigma), args.seeds,
                          args.ref_samples))
    for make, seeds, ref in plans:
        try:
            s = make()
        except FileNotFoundError as err:        # the Fashion-MNIST files are not installed
            skipped["fashion-cnn"] = str(err)
            print(f"  skipped: {err}", flush=True)
            continue
        results.append(measure_setting(s, args.ns, range(seeds), ref, args.ref_runs))
        if save is not None:
            save({"settings": results, "skipped": skipped, "partial": True})
    out = {"settings": results, "skipped": skipped, "tolerance": TOLERANCE}
    if not args.no_cost:
        out["cost"] = cost(torch.device(args.device), args.quick, args.repeats)
    return out


def _pct(v) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{100 * v:.1f}"


def _passes(q: dict, nmin: int, nmax: int) -> str:
    n, p = q["smallest_n_within"], q["passes_interpolated"]
    if n is None:
        return f"> {nmax}"
    if n == nmin:
        return f"≤ {n}"
    return f"{n} (≈ {p:.0f})" if p and p < n else f"{n}"


def accuracy_rows(res: dict, q: str) -> list[list]:
    rows = []
    nmin, nmax = min(res["budgets"]), max(res["budgets"])
    for method, m in res["methods"].items():
        for est in ESTIMATORS:
            a = m["accuracy"][est][q]
            cells = [f"{_pct(a['mean_abs_rel_error'][n])} ± {_pct(a['se'][n])}" for n in res["budgets"]]
            gain = a.get("baseline_passes_over_these")
            g = f"{gain:.1f}×" if gain else ("–" if est not in BASELINE else
                                             _lower_bound(m["accuracy"][BASELINE[est]][q], a, nmax))
            rows.append([res["setting"], method, est, *cells, _pct(a["mean_signed_rel_error"][res["budgets"][0]]),
                         _passes(a, nmin, nmax), g])
    return rows


def _lower_bound(base: dict, these: dict, nmax: int) -> str:
    """Gain when the baseline never gets within 5 %: at least nmax / these passes."""
    p = these["passes_interpolated"]
    return f"≥ {nmax / p:.1f}× (baseline > {nmax})" if p and base["passes_interpolated"] is None else "–"


PROTOTYPE = Path(__file__).parent / "results" / "mc_error_prototype.json"   # the prototype's figures


def prototype_cells() -> dict:
    """(map, estimator) -> {n: the prototype's relative EF error, %} from the committed record."""
    import json

    cells = json.loads(PROTOTYPE.read_text())["cells"]
    return {(c["map"], c["estimator"]): {int(n): f for n, f in c["figures"].items()} for c in cells}


def prototype_rows(settings: list[dict]) -> list[list]:
    """This run's EfficientNet-Lite0 figures beside the prototype's."""
    rows = []
    for s in settings:
        if s["setting"] != "efficientnet-lite0":
            continue
        for (method, est), cells in prototype_cells().items():
            a = s["methods"][method]["accuracy"][est]["ef"]
            for n, fig in cells.items():
                if n in a["mean_abs_rel_error"]:
                    rows.append([method, est, n, fig, f"{_pct(a['mean_abs_rel_error'][n])} ± {_pct(a['se'][n])}",
                                 _pct(a["mean_signed_rel_error"][n])])
    return rows


def tables(report: dict) -> tuple[dict, list[dict]]:
    """The main table (EF within 5 %) and the further ones (ΔEF, calibration, truth, cost)."""
    settings = report["settings"]
    budgets = settings[0]["budgets"] if settings else []
    cols = ["model", "map", "estimator", *[f"n={n}: |rel err| % ± se" for n in budgets],
            f"signed % at n={budgets[0] if budgets else ''}", "smallest n within 5 %", "plug-in passes / these"]
    main = {"columns": cols, "rows": [r for s in settings for r in accuracy_rows(s, "ef")]}
    extra = [{"title": "ΔEF = |EF − EF(VanillaGrad of the same power)|: relative error", "columns": cols,
              "rows": [r for s in settings for r in accuracy_rows(s, "gap")]}]
    cal_rows = []
    for s in settings:
        for method, m in s["methods"].items():
            for n, c in m["calibration"].items():
                cal_rows.append([s["setting"], method, n, len(s["seeds"]),
                                 f"{c['variance_ratio']:.3f} ± {c['variance_ratio_se']:.3f}",
                                 f"{100 * c['coverage_2se']:.1f} %"])
    extra.append({"title": "Calibration of stderr (target: variance ratio 0.85–1.15, ±2 se coverage 90–97 %)",
                  "columns": ["model", "map", "n", "seeds", "reported / observed variance (± se over images)",
                              "±2 se coverage of the long run"], "rows": cal_rows})
    proto = prototype_rows(settings)
    if proto:
        extra.append({"title": "EfficientNet-Lite0: the prototype's figures beside this run (EF, %)",
                      "columns": ["map", "estimator", "n", "prototype", "this run: |rel err| ± se",
                                  "this run: signed"], "rows": proto,
                      "note": "The prototype's truth, image count and seeds were not recorded; where it gave two "
                              "figures for a cell both are shown (benchmarks/results/mc_error_prototype.json)."})
    truth_rows = []
    for s in settings:
        for method, m in s["methods"].items():
            t = m["truth"]
            truth_rows.append([s["setting"], method, f"{t['n_samples']} ({t['runs']} runs)",
                               *[_pct(t["ef_rel_se"][k]) for k in ESTIMATORS],
                               " ".join(f"{v:.4g}" for v in t["ef"]["cross"])])
    extra.append({"title": "The long run (truth): relative Monte Carlo error of its EF, %",
                  "columns": ["model", "map", "samples", *ESTIMATORS, "EF (cross) per image"], "rows": truth_rows})
    if report.get("cost"):
        extra.append({"title": "Cost of the statistics on the CPU (ratios to the floor)",
                      "columns": ["model", "images × n", "floor (s)", "plain / floor", "stats / floor",
                                  "(stats − plain) / floor, paired", "fused ops / floor, profiled: plain → stats",
                                  "statistics' fused-op share of the floor"],
                      "rows": [[c["setting"], f"{c['batch'][0]} × {c['n_samples']}", f"{c['median_s']['floor']:.3f}",
                                f"{c['ratio']['plain']:.3f}", f"{c['ratio']['stats']:.3f}",
                                f"{100 * c['stats_minus_plain_over_floor']:+.2f} % ("
                                f"{100 * c['stats_minus_plain_over_floor_range'][0]:+.1f} … "
                                f"{100 * c['stats_minus_plain_over_floor_range'][1]:+.1f})",
                                f"{100 * c['library_ops_over_floor']['plain']:.2f} % → "
                                f"{100 * c['library_ops_over_floor']['stats']:.2f} %",
                                f"{100 * c['stats_ops_over_floor']:+.2f} %"] for c in report["cost"]]})
    return main, extra


NOTE = ("EF estimators (docs/methods.md §11): plug-in = expected_frequency(map, rank_normalize=False); cross = "
        "expected_frequency(A, B, rank_normalize=False) on the halves of smooth_grad(return_stats=True); rank "
        "plug-in = expected_frequency(map) (rank-normalised, the paper's recipe); rank bias-reduced = "
        "expected_frequency(A, B) (2·EF(map) − (EF(A) + EF(B))/2, bias-reduced, not unbiased). Truth: the long "
        "run's cross EF (unranked rows) or bias-reduced rank EF (ranked rows); its own error is in the truth table. "
        "|rel err| = mean over images and seeds of |EF − truth| / truth (± its se over those); signed = the mean "
        "signed relative error (the bias) at the smallest budget; smallest n within 5 % among the budgets "
        "(≈ log-log interpolation between budgets); plug-in passes / these = the ratio of the interpolated passes "
        "(cross vs plug-in, rank bias-reduced vs rank plug-in).")


def case_result(report: dict) -> dict:
    """The study as a suite case: main table, further tables and notes."""
    main, extra = tables(report)
    note = NOTE + "".join(f"\n\n{s['setting']}: {s['description']}." for s in report["settings"])
    note += "".join(f"\n\nskipped {k}: {v}" for k, v in report["skipped"].items())
    return {"title": "Monte Carlo error: passes to EF within 5 %, calibration of stderr, cost of the statistics",
            **report, "table": main, "tables": extra, "note": note}


def run(device: torch.device, quick: bool) -> dict:
    """The suite's case: the defaults of :func:`parse` (``--quick`` in quick mode)."""
    args = parse(["--quick"] if quick else [])
    args.device = device.type
    return case_result(study(args))
