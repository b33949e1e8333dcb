"""The EF's own Monte Carlo error from G sample groups (docs/methods.md §11, "EF from groups"): accuracy of the
EF estimate and calibration of its delete-a-group jackknife error, for halves (G = 2), G = 4, 8 and one sample
per group (G = n, the full U-statistic), at n = 8, 16, 32.

Per model (the ICCV25 Fashion-MNIST CNN and EfficientNet-Lite0 on scikit-image photos, ``benchmarks/mc_error.py``'s
settings), method (SG, SG²) and seed, the per-sample maps h_1..h_32 are drawn in one batched call (32 copies of the
noise level, one sample each: i.i.d. samples whose noise keys differ from ``smooth_grad``'s), and every n is a
prefix of them.  Sample i belongs to group i mod G.  Estimators (``spectral_xai.ef_with_error``): unranked, the EF
of the all-pairs group cross spectrum; ranked, the bias-reduced rank EF G·EF(m̂) − (G − 1)·mean_g EF(m̂_(−g)).
Truth: a long run (``smooth_grad``, other seeds) with the cross-spectrum / bias-reduced rank EF of its halves.

Reported per (model, method, estimator, n, G): mean |relative error| of the EF over images and seeds (± se), its
signed mean (bias), the coverage of the 90 % Student-t interval (the EF stop's criterion), the calibration of the jackknife error (per image: mean over seeds of se² / variance over
seeds of the estimate, both relative to truth², pooled over images: mean of the first / mean of the second;
also the median over images of the per-image ratio), and the share of |EF − truth| <= 2·se.

    python -m benchmarks.studies.ef_groups [--quick] [--seeds 12] [--out benchmarks/results]
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

if not __package__:  # run as a file: make the benchmarks package importable
    sys.path.append(str(Path(__file__).resolve().parents[2]))
from benchmarks.mc_error import efficientnet_setting, fashion_setting, random_cnn_setting  # noqa: E402
from benchmarks.suite import machine_name  # noqa: E402
import spectral_xai as sx  # noqa: E402
from spectral_xai.atomic_io import write_json  # noqa: E402
from spectral_xai.engine import estimate  # noqa: E402
from spectral_xai.environment import environment_info  # noqa: E402
from spectral_xai.mc_interval import t_quantile  # noqa: E402

METHODS = {"sg": False, "sg2": True}


def per_sample_maps(s, squared: bool, n: int, seed: int) -> torch.Tensor:
    """(n, B, H, W) float64 channel-reduced per-sample maps h_i: one call, n copies of σ, one sample each."""
    est = estimate(s.model, s.x, sigmas=[s.sigma] * n, mixing="additive", powers=(2 if squared else 1,),
                   target=s.target, output=s.output, n_samples=1, seed=seed, batch_size=s.batch_size)
    m = est.mean2 if squared else est.mean1
    return m[:, :, 0].transpose(0, 1).contiguous()


def grouped(h: torch.Tensor, G: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Group means (B, G, H, W) and counts (B, G) of samples h (n, B, H, W), sample i in group i mod G."""
    n, B = h.shape[:2]
    idx = torch.arange(n) % G
    counts = torch.bincount(idx, minlength=G)
    sums = torch.zeros(G, *h.shape[1:], dtype=h.dtype).index_add_(0, idx, h)
    means = sums / counts.clamp(min=1).to(h.dtype).view(G, 1, 1, 1)
    return means.transpose(0, 1).contiguous(), counts.view(1, G).expand(B, G).contiguous()


def truth_ef(s, squared: bool, n_ref: int, seed: int) -> dict[bool, torch.Tensor]:
    """{ranked: (B,) EF} of a long run (bias-reduced rank EF / cross-spectrum EF of its halves)."""
    st = sx.smooth_grad(s.model, s.x, s.sigma, target=s.target, n_samples=n_ref, squared=squared, seed=seed,
                        batch_size=s.batch_size, output=s.output, return_stats=True)
    a, b = (h.double() for h in st.halves)
    return {r: sx.expected_frequency(a, b, rank_normalize=r).double() for r in (True, False)}


def summarise(est: torch.Tensor, se: torch.Tensor, truth: torch.Tensor, G: int) -> dict:
    """est, se (R, B); truth (B,); G groups -> accuracy, bias, calibration, coverage of ±2 se and of the 90 %
    Student-t interval (G − 1 degrees of freedom, the EF stop's)."""
    rel = (est - truth) / truth.abs()
    a = rel.abs().flatten()
    t2 = truth.square()
    t90 = float(t_quantile(torch.tensor(0.95, dtype=torch.float64), torch.tensor(G - 1.0, dtype=torch.float64)))
    rep, act = se.square().mean(0) / t2, est.var(0, unbiased=True) / t2        # (B,) relative variances
    ratio = rep / act
    return {"rel_error": float(a.mean()), "rel_error_se": float(a.std() / math.sqrt(a.numel())),
            "bias": float(rel.mean()), "calibration": float(rep.mean() / act.mean()),
            "calibration_median": float(ratio.median()),
            "coverage_2se": float(((est - truth).abs() <= 2 * se).double().mean()),
            "coverage_t90": float(((est - truth).abs() <= t90 * se).double().mean()),
            "mean_rel_se": float((se / est.abs()).mean())}


def study(args) -> dict:
    settings = []
    if args.quick:
        settings.append((random_cnn_setting(4, args.sigma), 256))
    else:
        if "fashion" in args.models:
            settings.append((fashion_setting(args.fashion_images, args.sigma), args.fashion_ref_samples))
        if "efficientnet" in args.models:
            settings.append((efficientnet_setting(args.size, args.images, args.sigma), args.ref_samples))
    nmax = max(args.ns)
    out = []
    for s, n_ref in settings:
        for method, squared in METHODS.items():
            t0 = time.perf_counter()
            truth = truth_ef(s, squared, n_ref, seed=10_000)
            t_truth = time.perf_counter() - t0
            rows = {}      # (ranked, n, G) -> ([est], [se])
            for seed in range(args.seeds):
                h = per_sample_maps(s, squared, nmax, seed)
                for n in args.ns:
                    for G in sorted({*args.groups, n}):
                        if G > n:
                            continue
                        g, c = grouped(h[:n], G)
                        for ranked in (True, False):
                            e = sx.ef_with_error(g, c, rank_normalize=ranked)
                            r = rows.setdefault((ranked, n, G), ([], []))
                            r[0].append(e.ef)
                            r[1].append(e.stderr)
            for (ranked, n, G), (ests, ses) in sorted(rows.items()):
                summ = summarise(torch.stack(ests), torch.stack(ses), truth[ranked], G)
                out.append({"model": s.name, "method": method, "ranked": ranked, "n": n, "groups": G,
                            "u_statistic": G == n, **summ})
            print(f"{s.name} {method}: truth {t_truth:.0f} s, total {time.perf_counter() - t0:.0f} s", flush=True)
    return {"settings": [{"name": s.name, "description": s.description, "ref_samples": n_ref}
                         for s, n_ref in settings], "rows": out}


def stop_study(args) -> dict:
    """The EF stop against fixed n on the Fashion-MNIST CNN: per (method, EF), ``target_ef_error`` runs over the
    seeds (sample counts per image, share of images within the target of the long-run truth), and fixed-n runs
    with the same estimator and groups at n = 8, 16, …, ``max_samples``; the passes a fixed n needs for the stop's
    share, interpolated log-linearly between budgets, over the stop's mean passes."""
    s = random_cnn_setting(4, args.sigma) if args.quick else fashion_setting(args.fashion_images, args.sigma)
    n_ref = 256 if args.quick else args.fashion_ref_samples
    target, cap = args.target, args.max_samples
    budgets = [n for n in (8, 16, 32, 64, 128, 256, 512, 1024, 2048) if n <= cap]
    kw = dict(target=s.target, output=s.output, batch_size=s.batch_size, groups=args.stop_groups,
              return_stats=True)
    out = []
    for method, squared in METHODS.items():
        truth = truth_ef(s, squared, n_ref, seed=10_000)
        for ranked in [r for r in (True, False) if args.stop_ef in ("both", "ranked" if r else "unranked")]:
            t0 = time.perf_counter()

            def within(st):
                e = sx.ef_with_error(st.groups.double(), st.group_counts, rank_normalize=ranked).ef
                return ((e - truth[ranked]).abs() <= target * truth[ranked].abs()).double()

            hits, used = [], []
            for seed in range(args.stop_seeds):
                st = sx.smooth_grad(s.model, s.x, s.sigma, squared=squared, seed=seed, target_ef_error=target,
                                    ef_rank_normalize=ranked, max_samples=cap, **kw)
                hits.append(within(st))
                used.append(st.n_samples.double())
            share, mean_n = float(torch.cat(hits).mean()), float(torch.cat(used).mean())
            fixed = {n: float(torch.cat([within(sx.smooth_grad(s.model, s.x, s.sigma, squared=squared, seed=seed,
                                                               n_samples=n, **kw))
                                         for seed in range(args.stop_seeds)]).mean()) for n in budgets}
            needed = _interpolated_budget(fixed, share)
            out.append({"model": s.name, "method": method, "ranked": ranked, "target": target,
                        "groups": args.stop_groups, "stop_share_within": share, "stop_mean_n": mean_n,
                        "stop_max_n": float(torch.cat(used).max()), "stop_at_cap": float((torch.cat(used) >= cap)
                                                                                         .double().mean()),
                        "fixed_share_within": fixed, "fixed_n_for_same_share": needed,
                        "passes_saved": needed / mean_n if needed else None})
            print(f"stop {method} ranked={ranked}: share {share:.2f} at mean n {mean_n:.0f}; fixed n {needed} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return {"setting": s.description, "rows": out}


def _interpolated_budget(curve: dict[int, float], share: float) -> float | None:
    """The n where the fixed-n share within the target first reaches ``share``, linear in log n between the
    budgets of ``curve`` (None if no budget reaches it)."""
    pts = sorted(curve.items())
    if pts[0][1] >= share:
        return float(pts[0][0])
    for (n0, s0), (n1, s1) in zip(pts, pts[1:]):
        if s1 >= share:
            f = (share - s0) / (s1 - s0) if s1 > s0 else 1.0
            return float(math.exp(math.log(n0) + f * (math.log(n1) - math.log(n0))))
    return None


def markdown(res: dict) -> str:
    lines = [f"# EF from G sample groups: accuracy and jackknife calibration ({res['created_utc']})", "",
             f"Command: `{res['command']}`; machine {res['machine']}; wall {res['wall_s']:.0f} s.", ""]
    for s in res["settings"]:
        lines.append(f"- {s['name']}: {s['description']}; truth from {s['ref_samples']} samples.")
    lines += ["", "|rel err| = mean |EF − truth|/|truth| over images and seeds (± se); calibration = (mean reported "
              "se²/truth²) / (variance of the estimate over seeds / truth²), pooled over images, 1 is calibrated "
              "(median of the per-image ratios beside it); "
              "cover = share with |EF − truth| <= 2 se, and within the 90 % Student-t interval t_{G−1}(0.95)·se "
              "(the EF stop's criterion); G = n is the full U-statistic (one sample per group).", "",
              "| model | map | EF | n | G | rel err | bias | calibration | cover 2se | cover t90 | mean rel se |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        g = f"{r['groups']}" + (" (U)" if r["u_statistic"] else "")
        lines.append(f"| {r['model']} | {r['method'].upper()} | {'ranked br' if r['ranked'] else 'unranked'} | "
                     f"{r['n']} | {g} | {100 * r['rel_error']:.1f} ± {100 * r['rel_error_se']:.1f} % | "
                     f"{100 * r['bias']:+.1f} % | {r['calibration']:.2f} ({r['calibration_median']:.2f}) | "
                     f"{100 * r['coverage_2se']:.0f} % | {100 * r['coverage_t90']:.0f} % | {100 * r['mean_rel_se']:.1f} % |")
    if res.get("stop"):
        st = res["stop"]
        lines += ["", f"## The EF stop against fixed n ({st['setting']})", "",
                  "share = images × seeds whose EF is within the target of the long-run truth; fixed n = the budget "
                  "at which fixed-n runs (same estimator, same groups) reach the stop's share (log-linear between "
                  "budgets); saved = fixed n / the stop's mean n.", "",
                  "| map | EF | target | G | stop: share | stop: mean n (max, at cap) | fixed n, same share | "
                  "passes saved | fixed-n shares |", "|---|---|---|---|---|---|---|---|---|"]
        for r in st["rows"]:
            curve = ", ".join(f"{n}: {100 * v:.0f} %" for n, v in r["fixed_share_within"].items())
            need = f"{r['fixed_n_for_same_share']:.0f}" if r["fixed_n_for_same_share"] else "> cap"
            saved = f"{r['passes_saved']:.1f}×" if r["passes_saved"] else "—"
            lines.append(f"| {r['method'].upper()} | {'ranked br' if r['ranked'] else 'unranked'} | "
                         f"{100 * r['target']:.0f} % | {r['groups']} | {100 * r['stop_share_within']:.0f} % | "
                         f"{r['stop_mean_n']:.0f} ({r['stop_max_n']:.0f}, {100 * r['stop_at_cap']:.0f} %) | {need} | "
                         f"{saved} | {curve} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m benchmarks.studies.ef_groups", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a random CNN, 3 seeds (seconds)")
    p.add_argument("--models", nargs="+", default=["fashion", "efficientnet"], choices=["efficientnet", "fashion"])
    p.add_argument("--size", type=int, default=64, help="EfficientNet input size (px)")
    p.add_argument("--images", type=int, default=4, help="EfficientNet photos")
    p.add_argument("--fashion-images", type=int, default=16)
    p.add_argument("--sigma", type=float, default=0.15, help="additive noise std")
    p.add_argument("--ns", type=int, nargs="+", default=[8, 16, 32])
    p.add_argument("--groups", type=int, nargs="+", default=[2, 4, 8])
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--ref-samples", type=int, default=1024, help="EfficientNet long run")
    p.add_argument("--fashion-ref-samples", type=int, default=4096)
    p.add_argument("--parts", nargs="+", default=["groups", "stop"], choices=["groups", "stop"])
    p.add_argument("--target", type=float, default=0.05, help="target_ef_error of the stop part")
    p.add_argument("--max-samples", type=int, default=1024, help="cap of the stop part")
    p.add_argument("--stop-groups", type=int, default=8, help="sample groups of the stop part")
    p.add_argument("--stop-seeds", type=int, default=4)
    p.add_argument("--stop-ef", choices=("both", "ranked", "unranked"), default="both", help="EFs of the stop part")
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "results"))
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.ns = 3, [8, 16]
    device = torch.device("cpu")
    now = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    t0 = time.perf_counter()
    res = study(args) if "groups" in args.parts else {"settings": [], "rows": []}
    if "stop" in args.parts:
        res["stop"] = stop_study(args)
    res.update(created_utc=now, command="python -m benchmarks.studies.ef_groups " + " ".join(argv),
               machine=machine_name(device), environment=environment_info(device), wall_s=time.perf_counter() - t0)
    parts = "" if len(args.parts) == 2 else f"{args.parts[0]}-"
    stem = Path(args.out) / f"ef_groups-{parts}{'quick-' if args.quick else ''}{res['machine']}"
    write_json(res, stem.with_suffix(".json"))
    stem.with_suffix(".md").write_text(markdown(res))
    print(f"wrote {stem}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
