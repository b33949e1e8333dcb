"""Case ``equal_accuracy``: the wall time per image to get each image's Expected Frequency within 5 % of a
long-run truth, (a) the way a Captum user does it today against (b) this library.

For each model, size and map (SmoothGrad ``sg``, SmoothGrad-Squared ``sg2``; additive noise σ, the target
logit) and each EF (unranked, and the paper's ranked recipe; docs/methods.md §7):

1. **Truth.**  Per image, ``draws`` gradient samples of our own (x + σ ε, ε ~ N(0, I) from a seeded torch
   generator, plain autograd), kept as sums over blocks of 8 samples, one set for both maps.  EF of the
   interleaved halves (even / odd blocks): the cross-spectrum EF (unranked) and the bias-reduced rank EF
   (ranked), docs/methods.md §11; its Monte Carlo error is the spread of the EF of ``TRUTH_RUNS`` contiguous
   sub-runs / sqrt(runs).
2. **(a) Captum.**  ``NoiseTunnel(Saliency)`` with nt_type "smoothgrad" (signed gradient) / "smoothgrad_sq",
   ``stdevs`` = σ, at a fixed ``nt_samples``, then the ICCV25 authors' numpy EF (``spectrum.ef_numpy``, with or
   without its rank step).  The fixed n is the smallest n of the grid 8, 16, 32, … at which >= 90 % of
   (image, repeat) estimates are within 5 % of the truth.  That plug-in estimator (the mean of n samples, its
   EF) is measured on the draws themselves: disjoint blocks of n samples, each graded against the truth of the
   *other* draws (leave-block-out, so the truth is independent of what it grades).  Where no n of the grid
   (up to draws / 2) reaches it, Captum is timed at the largest n and its ratio is a lower bound (≥).
3. **(b) This library.**  :func:`ours_per_image`: one ``smooth_grad(..., return_stats=True,
   target_ef_error=0.05)`` call stopping each image on its own EF error, then that EF from the call's sample
   groups (group cross spectrum / bias-reduced rank EF), channels_last where the model has 4-D weights (exact:
   the same fp32 arithmetic in another memory layout).  Its fraction within 5 %
   of the truth is reported over the timed runs and further seeds.
4. **Timing.**  (a) and (b) side by side in one process, interleaved (the order reversed every other
   repeat), each repeat with new noise; per image = wall time / images of the call; ratio = median over
   repeats of the paired ratios (a per image) / (b per image).
"""
from __future__ import annotations

import copy
import math
import statistics
import time
from dataclasses import dataclass, replace

import torch

import spectral_xai as sx

from .common import captum_smoothgrad
from .mc_error import Setting, clean_targets, fashion_setting, frozen, random_cnn_setting
from .spectrum import ef_numpy

TOLERANCE = 0.05        # relative EF error asked for
COVERAGE = 0.90         # share of images that must reach it
BLOCK = 8               # samples per stored block of the draws (and the smallest grid n)
TRUTH_RUNS = 8          # contiguous sub-runs of the draws for the truth's own Monte Carlo error
SIGMA = 0.15            # additive noise std (images in [0, 1])
METHODS = {"sg": False, "sg2": True}                    # name -> squared
EF_KINDS = {"unranked": False, "ranked": True}          # name -> rank_normalize
PHOTOS = ("coffee", "chelsea", "astronaut", "rocket", "immunohistochemistry", "camera", "hubble_deep_field",
          "coins")                                      # scikit-image's bundled photos (grey ones as RGB)


@dataclass
class Plan:
    """How one setting is measured: draws per image (truth and Captum's curve), timing repeats, seeds of
    (b) for its accuracy (the timed ones first), rows per chunk, Captum's timed images (the first ones)."""

    make: object
    draws: int
    repeats: int
    ours_seeds: int
    batch_size: int
    captum_images: int | None = None
    max_samples: int = 1024


def efficientnet_setting(size: int, images: int, sigma: float = SIGMA) -> Setting:
    """EfficientNet-Lite0 (ImageNet weights) on the first ``images`` of :data:`PHOTOS` at ``size`` px."""
    from spectral_xai.zoo import efficientnet_lite0, photos

    model = frozen(efficientnet_lite0())
    x = photos(size, PHOTOS[:images])
    return Setting(f"efficientnet-lite0 {size}px", model, x, clean_targets(model, x), sigma,
                   f"EfficientNet-Lite0 (ImageNet weights), scikit-image photos {', '.join(PHOTOS[:images])} at "
                   f"{size} px, target = clean arg-max", output="logit")


def fashion(images: int, sigma: float = SIGMA) -> Setting:
    """The ICCV25 Fashion-MNIST CNN as trained by the ``mc_error`` case, explaining the target logit."""
    s = fashion_setting(images, sigma)
    return replace(s, name="fashion-cnn 28px", output="logit",
                   description=s.description.replace(f", log_softmax, additive σ {sigma}", ""))


def quick_setting() -> Setting:
    return replace(random_cnn_setting(2, SIGMA), output="logit")


def plans(quick: bool) -> list[Plan]:
    """The settings of a run: a random CNN in quick mode (seconds); else Fashion-MNIST and EfficientNet-Lite0 at
    64, 128 and 224 px, fewer images and draws as the passes get dearer (minutes on 2 idle cores)."""
    if quick:
        return [Plan(quick_setting, draws=128, repeats=1, ours_seeds=2, batch_size=64, max_samples=64)]
    return [Plan(lambda: fashion(8), draws=2048, repeats=3, ours_seeds=4, batch_size=512),
            Plan(lambda: efficientnet_setting(64, 4), draws=1024, repeats=2, ours_seeds=3, batch_size=128,
                 captum_images=2, max_samples=512),
            Plan(lambda: efficientnet_setting(128, 2), draws=512, repeats=1, ours_seeds=2, batch_size=64,
                 captum_images=1, max_samples=256),
            Plan(lambda: efficientnet_setting(224, 1), draws=256, repeats=1, ours_seeds=2, batch_size=32,
                 max_samples=128)]


# ------------------------------------------------------------------ the draws: truth and Captum's estimator


def layout_model(model: torch.nn.Module) -> tuple[torch.nn.Module, bool]:
    """A channels_last copy of a model with 4-D weights (same fp32 arithmetic, faster convolutions on the
    CPU), else the model itself; and whether it is channels_last."""
    if not any(p.dim() == 4 for p in model.parameters()):
        return model, False
    return copy.deepcopy(model).to(memory_format=torch.channels_last), True


def gradient_blocks(s: Setting, n: int, seed: int, batch_size: int) -> torch.Tensor:
    """n gradient samples per image of x + σ ε: sums over blocks of :data:`BLOCK` consecutive samples of
    Σ_c g_c (SG) and Σ_c g_c² (SG²).  -> (B, n / BLOCK, 2, H, W) float64."""
    if n % (2 * BLOCK):
        raise ValueError(f"argument 'draws': {n} must be a multiple of {2 * BLOCK}")
    B, C, H, W = s.x.shape
    model, cl = layout_model(s.model)
    fmt = torch.channels_last if cl else torch.contiguous_format
    out = torch.zeros(B, n // BLOCK, 2, H, W, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    rows = max(BLOCK, batch_size // BLOCK * BLOCK)
    for b in range(B):
        for lo in range(0, n, rows):
            k = min(rows, n - lo)
            noise = torch.randn(k, C, H, W, generator=gen)
            xt = (s.x[b:b + 1] + s.sigma * noise).contiguous(memory_format=fmt).requires_grad_(True)
            (g,) = torch.autograd.grad(model(xt)[:, int(s.target[b])].sum(), xt)
            g = g.double()
            h = torch.stack([g.sum(1), g.square().sum(1)], 1)
            out[b, lo // BLOCK:(lo + k) // BLOCK] = h.view(k // BLOCK, BLOCK, 2, H, W).sum(1)
    return out


def halves_ef(a: torch.Tensor, b: torch.Tensor, ranked: bool) -> torch.Tensor:
    """EF from two independent halves (..., H, W): cross spectrum (unranked) / bias-reduced rank EF (ranked)."""
    shape = a.shape[:-2]
    return sx.expected_frequency(a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:]),
                                 rank_normalize=ranked).double().view(shape)


def block_halves(blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Means of the even / odd blocks: (B, K, 2, H, W) -> two (B, 2, H, W)."""
    return blocks[:, 0::2].sum(1) / (BLOCK * blocks[:, 0::2].shape[1]), \
        blocks[:, 1::2].sum(1) / (BLOCK * blocks[:, 1::2].shape[1])


def truth(blocks: torch.Tensor, runs: int = TRUTH_RUNS) -> dict:
    """{method: {kind: {"ef": (B,), "se": (B,)}}}: the EF of all draws (halves = even / odd blocks) and its
    Monte Carlo error, sd over ``runs`` contiguous sub-runs / sqrt(runs) (at most one per two blocks)."""
    runs = min(runs, blocks.shape[1] // 2)
    a, b = block_halves(blocks)
    parts = [block_halves(p) for p in blocks.chunk(runs, dim=1)]
    out = {}
    for mi, method in enumerate(METHODS):
        out[method] = {}
        for kind, ranked in EF_KINDS.items():
            sub = torch.stack([halves_ef(pa[:, mi], pb[:, mi], ranked) for pa, pb in parts])
            out[method][kind] = {"ef": halves_ef(a[:, mi], b[:, mi], ranked),
                                 "se": sub.std(0) / math.sqrt(runs)}
    return out


def grid(draws: int) -> list[int]:
    """8, 16, 32, … up to draws / 2 (two disjoint blocks at least, each graded by the other draws)."""
    out, n = [], BLOCK
    while 2 * n <= draws:
        out.append(n)
        n *= 2
    return out


def plugin_errors(blocks: torch.Tensor, n: int) -> dict:
    """Relative errors of the plug-in EF (Captum's estimator: the EF of the mean of n samples) of the J = draws
    / n disjoint blocks of n samples, each against the truth of the other draws (leave-block-out halves).
    -> {method: {kind: (B, J)}}."""
    B, K, _, H, W = blocks.shape
    per = n // BLOCK
    J = K // per
    test = blocks[:, :J * per].reshape(B, J, per, 2, H, W)
    even = (torch.arange(J * per) % 2 == 0).view(J, per).to(blocks.dtype)
    t_even = (test * even.view(1, J, per, 1, 1, 1)).sum(2)
    t_odd = test.sum(2) - t_even
    n_even = even.sum(1).view(1, J, 1, 1, 1)
    a = (blocks[:, 0::2].sum(1, keepdim=True) - t_even) / (BLOCK * (blocks[:, 0::2].shape[1] - n_even))
    b = (blocks[:, 1::2].sum(1, keepdim=True) - t_odd) / (BLOCK * (blocks[:, 1::2].shape[1] - (per - n_even)))
    means = test.sum(2) / n
    out = {}
    for mi, method in enumerate(METHODS):
        out[method] = {}
        for kind, ranked in EF_KINDS.items():
            est = sx.expected_frequency(means[:, :, mi].reshape(-1, H, W), rank_normalize=ranked).double()
            ref = halves_ef(a[:, :, mi], b[:, :, mi], ranked).reshape(-1)
            out[method][kind] = ((est - ref) / ref.abs()).view(B, J)
    return out


def captum_curve(blocks: torch.Tensor) -> dict:
    """{method: {kind: {n: {"within": share of |rel err| <= 5 %, "mean_abs": mean |rel err|, "count"}}}}."""
    out = {m: {k: {} for k in EF_KINDS} for m in METHODS}
    for n in grid(blocks.shape[1] * BLOCK):
        for method, kinds in plugin_errors(blocks, n).items():
            for kind, rel in kinds.items():
                out[method][kind][n] = {"within": float((rel.abs() <= TOLERANCE).double().mean()),
                                        "mean_abs": float(rel.abs().mean()), "count": rel.numel()}
    return out


def fixed_n(curve: dict) -> tuple[int, bool]:
    """The smallest n whose share within 5 % is >= 90 %, True; else the largest n of the grid, False."""
    for n in sorted(curve):
        if curve[n]["within"] >= COVERAGE:
            return n, True
    return max(curve), False


# ------------------------------------------------------------------ the two sides


def captum_per_image(model, x, method: str, target, *, sigma: float, ranked: bool, n: int,
                     batch_size: int) -> torch.Tensor:
    """(a) Captum's NoiseTunnel(Saliency) at ``n`` samples, then the authors' numpy EF: (B,) float64."""
    m = captum_smoothgrad(model, x, target, sigma, n, batch_size, squared=METHODS[method])
    return torch.from_numpy(ef_numpy(m.detach().double().numpy(), rank=ranked))


def ours_per_image(model, x, method: str, target, *, sigma: float, ranked: bool, seed: int, batch_size: int,
                   max_samples: int, target_ef_error: float = TOLERANCE) -> tuple[torch.Tensor, torch.Tensor]:
    """(b) This library: one ``smooth_grad(return_stats=True, target_ef_error=...)`` call, each image stopping
    once the Student-t interval of the EF asked for (unranked or ranked) is within ``target_ef_error`` of it, then
    that EF from the call's sample groups (:func:`spectral_xai.ef_with_error`: the all-pairs group cross
    spectrum / the bias-reduced rank EF; docs/methods.md §11).  channels_last for a model with 4-D weights.
    -> EF (B,) float64, passes (B,) int64."""
    fast = sx.FastPath(channels_last=True) if any(p.dim() == 4 for p in model.parameters()) else None
    st = sx.smooth_grad(model, x, sigma, target=target, n_samples=max_samples, squared=METHODS[method],
                        output="logit", seed=seed, batch_size=batch_size, fast=fast, return_stats=True,
                        target_ef_error=target_ef_error, ef_rank_normalize=ranked)
    return sx.ef_with_error(st.groups, st.group_counts, rank_normalize=ranked).ef.double(), st.n_samples


# ------------------------------------------------------------------ one setting


def rel_error(ef: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return (ef.double() - ref) / ref.abs()


def passes_summary(passes: torch.Tensor) -> dict:
    """Mean, quartiles and the histogram {passes: images} of (b)'s per-image passes."""
    p = passes.flatten().double()
    vals, counts = torch.unique(passes.flatten(), return_counts=True)
    return {"mean": float(p.mean()), "min": int(p.min()), "median": float(p.median()), "max": int(p.max()),
            "histogram": {int(v): int(c) for v, c in zip(vals, counts)}}


def time_pair(s: Setting, plan: Plan, method: str, kind: str, n: int, ref: torch.Tensor) -> dict:
    """(a) at n vs (b), interleaved over ``plan.repeats`` (new noise each repeat), then (b) alone on its further
    seeds: per-image times, paired ratios, shares within 5 % and (b)'s passes."""
    ranked = EF_KINDS[kind]
    ca = plan.captum_images or s.x.shape[0]
    xa, ta = s.x[:ca], s.target[:ca]
    common = dict(sigma=s.sigma, ranked=ranked, batch_size=plan.batch_size)

    def side_a(r):
        torch.manual_seed(10_000 + r)
        return captum_per_image(s.model, xa, method, ta, n=n, **common), None

    def side_b(r):
        return ours_per_image(s.model, s.x, method, s.target, seed=r, max_samples=plan.max_samples, **common)

    sides = {"captum": (side_a, ca), "ours": (side_b, s.x.shape[0])}
    per_image = {k: [] for k in sides}
    efs = {k: [] for k in sides}
    passes = []

    def keep_b(ef, p):
        efs["ours"].append(ef)
        passes.append(p)

    captum_per_image(s.model, xa[:1], method, ta[:1], n=BLOCK, **common)      # warm-up: Captum's first call
    keep_b(*side_b(plan.repeats))              # warm-up (channels_last buffers, allocator), kept for accuracy
    for r in range(plan.repeats):
        for k in (("captum", "ours") if r % 2 == 0 else ("ours", "captum")):
            fn, images = sides[k]
            t0 = time.perf_counter()
            ef, p = fn(r)
            per_image[k].append((time.perf_counter() - t0) / images)
            if k == "ours":
                keep_b(ef, p)
            else:
                efs[k].append(ef)
    for r in range(plan.repeats + 1, plan.ours_seeds):     # (b)'s accuracy on further seeds (untimed)
        keep_b(*side_b(r))
    ratios = [a / b for a, b in zip(per_image["captum"], per_image["ours"])]
    within = {k: float((rel_error(torch.stack(v), ref[:v[0].numel()]).abs() <= TOLERANCE).double().mean())
              for k, v in efs.items()}
    mean_abs = {k: float(rel_error(torch.stack(v), ref[:v[0].numel()]).abs().mean()) for k, v in efs.items()}
    return {"method": method, "ef": kind, "captum_n": n, "captum_images": ca, "repeats": plan.repeats,
            "seconds_per_image": per_image, "median_seconds_per_image": {k: statistics.median(v)
                                                                         for k, v in per_image.items()},
            "ratio": statistics.median(ratios), "ratio_range": [min(ratios), max(ratios)],
            "within": within, "mean_abs_rel_error": mean_abs,
            "estimates": {"captum": len(efs["captum"]) * ca, "ours": len(efs["ours"]) * s.x.shape[0]},
            "passes": passes_summary(torch.stack(passes))}


def measure(plan: Plan) -> dict:
    s = plan.make()
    t0 = time.perf_counter()
    blocks = gradient_blocks(s, plan.draws, seed=2026, batch_size=plan.batch_size)
    t_draws = time.perf_counter() - t0
    tr = truth(blocks)
    curve = captum_curve(blocks)
    del blocks
    print(f"  {s.name}: {plan.draws} draws per image in {t_draws:.0f} s", flush=True)
    pairs = []
    for method in METHODS:
        for kind in EF_KINDS:
            n, reached = fixed_n(curve[method][kind])
            res = time_pair(s, plan, method, kind, n, tr[method][kind]["ef"])
            res["captum_n_reached"] = reached
            pairs.append(res)
            print(f"    {method} {kind}: Captum n={n}{'' if reached else ' (not reached)'} "
                  f"{res['median_seconds_per_image']['captum']:.3f} s/image, ours "
                  f"{res['passes']['mean']:.1f} passes {res['median_seconds_per_image']['ours']:.3f} s/image, "
                  f"ratio {res['ratio']:.2f}, within 5 %: Captum {res['within']['captum']:.2f} / ours "
                  f"{res['within']['ours']:.2f}", flush=True)
    return {"setting": s.name, "description": s.description, "images": s.x.shape[0],
            "size": list(s.x.shape[-2:]), "sigma": s.sigma, "draws": plan.draws, "draws_s": t_draws,
            "truth": {m: {k: {"ef": v["ef"].tolist(), "se": v["se"].tolist(),
                              "rel_se": float((v["se"] / v["ef"].abs()).mean())} for k, v in kinds.items()}
                      for m, kinds in tr.items()},
            "captum_curve": curve, "pairs": pairs, "wall_s": time.perf_counter() - t0}


# ------------------------------------------------------------------ tables


def _pct(v: float) -> str:
    return f"{100 * v:.0f} %"


def main_rows(settings: list[dict]) -> list[list]:
    rows = []
    for s in settings:
        for p in s["pairs"]:
            n = f"{p['captum_n']}" if p["captum_n_reached"] else f"> {p['captum_n']} (timed at {p['captum_n']})"
            ratio = f"{p['ratio']:.1f}× ({p['ratio_range'][0]:.1f}–{p['ratio_range'][1]:.1f})"
            ps = p["passes"]
            rows.append([s["setting"], p["method"], p["ef"], n,
                         f"{p['median_seconds_per_image']['captum']:.3f}",
                         f"{ps['mean']:.1f} ({ps['min']}–{ps['max']})",
                         f"{p['median_seconds_per_image']['ours']:.4f}",
                         ratio if p["captum_n_reached"] else "≥ " + ratio,
                         f"{_pct(p['within']['captum'])} / {_pct(p['within']['ours'])}"])
    return rows


def curve_rows(settings: list[dict]) -> list[list]:
    rows = []
    for s in settings:
        for method, kinds in s["captum_curve"].items():
            for kind, c in kinds.items():
                rows.append([s["setting"], method, kind, " · ".join(
                    f"{n}: {_pct(v['within'])} ({100 * v['mean_abs']:.1f})" for n, v in sorted(c.items()))])
    return rows


def growth_rows(settings: list[dict]) -> list[list]:
    """EfficientNet-Lite0: time per image at each size relative to the smallest."""
    eff = sorted((s for s in settings if s["setting"].startswith("efficientnet")), key=lambda s: s["size"][0])
    rows = []
    if len(eff) < 2:
        return rows
    for i, p0 in enumerate(eff[0]["pairs"]):
        cells = []
        for s in eff:
            p = s["pairs"][i]
            t = p["median_seconds_per_image"]
            t0 = p0["median_seconds_per_image"]
            cells.append(f"{t['captum']:.2f} s ({t['captum'] / t0['captum']:.1f}×, n={p['captum_n']}) / "
                         f"{t['ours']:.3f} s ({t['ours'] / t0['ours']:.1f}×, {p['passes']['mean']:.0f} passes)")
        rows.append([p0["method"], p0["ef"], *cells])
    return rows


def passes_rows(settings: list[dict]) -> list[list]:
    return [[s["setting"], p["method"], p["ef"], p["estimates"]["ours"], f"{p['passes']['median']:.0f}",
             ", ".join(f"{n}: {c}" for n, c in p["passes"]["histogram"].items())]
            for s in settings for p in s["pairs"]]


def truth_rows(settings: list[dict]) -> list[list]:
    return [[s["setting"], m, k, s["draws"], f"{100 * v['rel_se']:.2f} %", " ".join(f"{e:.4g}" for e in v["ef"])]
            for s in settings for m, kinds in s["truth"].items() for k, v in kinds.items()]


NOTE = ("(a) = Captum NoiseTunnel(Saliency) (nt_type smoothgrad with abs=False / smoothgrad_sq, stdevs = σ) at the "
        "fixed n, then the ICCV25 authors' numpy EF per map (ranked: scipy rankdata first); the fixed n is the "
        "smallest of 8, 16, 32, … at which >= 90 % of (image, block) plug-in estimates of the draws are within 5 % "
        "of the leave-block-out truth (\"> n\": none up to n = draws / 2; Captum is then timed at that n and the "
        "ratio is a lower bound).  (b) = smooth_grad(return_stats=True, target_ef_error=0.05) stopping each image on "
        "the EF graded, then ef_with_error of its sample groups (group cross spectrum unranked, bias-reduced rank EF "
        "ranked; docs/methods.md §11), channels_last for EfficientNet-Lite0.  Times are per image (wall time of the call / its images), medians over repeats; ratio "
        "= median over repeats of the paired (a)/(b) ratios (min–max).  Within 5 %: share of (a)'s timed estimates "
        "and of (b)'s estimates (timed runs and further seeds) within 5 % of the full truth.")


def case_result(settings: list[dict], stop: str) -> dict:
    note = NOTE + f"\n\nStop of (b): {stop}." + "".join(f"\n\n{s['setting']}: {s['description']}; σ {s['sigma']}."
                                                        for s in settings)
    tables = [
        {"title": "Captum's estimator (plug-in EF of n samples): share within 5 % (mean |rel err| %) at each n",
         "columns": ["model", "map", "EF", "n: within 5 % (mean |rel err| %)"], "rows": curve_rows(settings)},
        {"title": "(b)'s passes per image (the distribution from the stop)",
         "columns": ["model", "map", "EF", "estimates", "median passes", "passes: images"],
         "rows": passes_rows(settings)},
        {"title": "The truth: draws per image, relative Monte Carlo error of its EF (mean over images), EF per image",
         "columns": ["model", "map", "EF", "draws", "rel. MC error", "EF per image"], "rows": truth_rows(settings)}]
    growth = growth_rows(settings)
    if growth:
        sizes = [s["setting"].split()[-1] for s in settings if s["setting"].startswith("efficientnet")]
        tables.insert(0, {"title": "EfficientNet-Lite0: seconds per image by size, (a) / (b) (× the smallest size)",
                          "columns": ["map", "EF", *sorted(sizes, key=lambda z: int(z[:-2]))], "rows": growth})
    return {"title": "Equal accuracy: wall time per image to EF within 5 % of the truth, Captum vs ours",
            "tolerance": TOLERANCE, "coverage": COVERAGE, "stop": stop, "settings": settings,
            "table": {"columns": ["model", "map", "EF", "(a) Captum n", "(a) s/image", "(b) passes mean (min–max)",
                                  "(b) s/image", "(a)/(b) time", "within 5 %: (a) / (b)"],
                      "rows": main_rows(settings)},
            "tables": tables, "note": note}


STOP = (f"target_ef_error={TOLERANCE} with ef_rank_normalize = the EF graded (smooth_grad's EF stop on the Student-t "
        "interval of the group EF; minimum 8 samples, checks every 8)")


def run(device: torch.device, quick: bool, save=None) -> dict:
    """The suite's case; ``save(result)`` after each setting (a long run keeps what it has measured)."""
    if device.type != "cpu":
        raise ValueError("argument --device: the equal_accuracy case runs on the CPU only")
    settings = []
    for p in plans(quick):
        settings.append(measure(p))
        if save is not None:
            save(case_result(settings, STOP))
    return case_result(settings, STOP)


def main(argv=None) -> int:
    """This case alone, its report (JSON + markdown) rewritten after each setting; from the repository root:
    ``python -I -c "import sys; sys.path.append('.'); from benchmarks.equal_accuracy import main; main()" [--quick]
    [--out DIR]`` (``-I``: the installed build, not the source tree)."""
    import argparse
    import os
    import sys

    from .suite import DEFAULT_OUT, machine_name, new_report, recorded_command, write_report

    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m benchmarks.equal_accuracy", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=str(DEFAULT_OUT))
    args = p.parse_args(argv)
    device = torch.device("cpu")
    report = new_report(recorded_command(argv, "python -m benchmarks.equal_accuracy"),
                        "quick" if args.quick else "default", device, machine_name(device))
    t0, load = time.perf_counter(), os.getloadavg()[0]

    def save(res):
        report["cases"]["equal_accuracy"] = {**res, "wall_s": time.perf_counter() - t0,
                                             "load_avg_1min": [load, os.getloadavg()[0]]}
        report["wall_s"] = time.perf_counter() - t0
        write_report(report, args.out)

    run(device, args.quick, save)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
