"""Case ``accuracy``: samples to accuracy of the unbiased estimators, a reduced run of the study
``benchmarks/studies/samples_to_accuracy.py`` (EfficientNet-Lite0, 2 photos), whose machinery lives here.

SG² (additive std 0.3): iid (the engine's default and Captum's), antithetic pairs, the library's Latin
hypercube (``sampling="lhs"``).  SL² (convex, s = 0.3, 11 σ): the grid, stratified σ and the library's
Neyman allocation (``estimator="neyman"``).  Errors against a long iid reference; the figure is the
passes per image to reach relative L2 error 0.5 and iid's passes / these (> 1: fewer passes).

The study's setting.  Model: EfficientNet-Lite0, ``--images`` bundled photos at ``--size`` px, target = clean arg-max, explained
output log_softmax.  SG²: additive noise, std ``--std``.  SL²: convex mixing, noise scale 0.3, σ grid
{0, 0.1, …, 1}, uniform prior.  Every estimator draws exactly N(0, I) noise per sample (so each is unbiased);
they differ in how the samples of one image are coupled:

- ``iid``        independent samples (the engine's default);
- ``antithetic`` pairs (ε, −ε);
- ``lhs``        Latin hypercube per element: element e of sample i is Φ⁻¹((π_e(i) + U)/n) with π_e a random
                 permutation of the n samples, independent per element (removes the variance of the additive
                 "main effects" of every coordinate, Owen 1992; never worse than n/(n−1) × iid);
- ``sobol``      scrambled Sobol points (LMS + digital shift) mapped by Φ⁻¹, one coordinate per element;
- ``ms8``        multi-scale LHS: LHS per element of the component orthogonal to 8×8 block-constant fields,
                 plus LHS on the 8×8 block coefficients (stratifies the coarse noise too);
- ``radial``     ε = r·u, u uniform on the sphere, r² ~ χ²_d stratified over the n samples;
- ``sx:<sampling>`` (SG²) and ``sx:<estimator>[-<sampling>]`` (SL², e.g. ``sx:neyman-lhs``): the library's
  ``smooth_grad`` / ``spectral_lens`` with those options (what ships; the others are prototypes here);
- SL² only: ``crn`` (the same ε for every σ of a sample), ``stratified`` (σ drawn per sample from the
  prior by stratified sampling, as ``spectral_lens(estimator="stratified")``), ``neyman`` (first prototype:
  n_σ ∝ w_σ·sd_σ with sd_σ ≈ ||g²||₂ of a discarded pilot of 1 sample per σ; the library's ``sx:neyman``
  uses a more robust guess), ``neyman-oracle`` (n_σ ∝ w_σ·sd_σ with sd_σ from the reference run: the best
  any allocation can do).

Errors against a long iid reference with another seed (its own error is reported and adds in quadrature):
relative L2 per image, relative L2 after 2×2 and 4×4 average pooling, Spearman rank correlation per image.
For each estimator and error target the passes per image needed (log-log interpolation between budgets,
mean error over images and seeds) and the ratio to iid.
"""
from __future__ import annotations

import argparse
import hashlib
import math
import time
from pathlib import Path

import numpy as np
import scipy.stats
import torch
import torch.nn.functional as F

import spectral_xai as sx
from spectral_xai.atomic_io import write_json
from spectral_xai.environment import environment_info

from .common import passes_for

RESULTS = Path(__file__).parent / "results"
SIGMAS = [round(0.1 * i, 10) for i in range(11)]
SL_SCALE = 0.3
TARGETS = {"rel_l2": (0.5, 0.3), "rel_l2_pool4": (0.3, 0.15), "spearman": (0.9, 0.95)}


def generator(*key) -> torch.Generator:
    h = hashlib.sha256(repr(key).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(h[:8], "little") & ((1 << 63) - 1))


def noise(kind: str, n: int, shape, gen: torch.Generator) -> torch.Tensor:
    """(n, *shape) float32 standard normal samples (each one exactly N(0, I)), coupled by ``kind``."""
    d = math.prod(shape)
    if kind == "iid":
        e = torch.randn(n, d, generator=gen, dtype=torch.float64)
    elif kind == "antithetic":
        h = torch.randn((n + 1) // 2, d, generator=gen, dtype=torch.float64)
        e = torch.stack([h, -h], dim=1).reshape(-1, d)[:n]
    elif kind == "lhs":
        perm = torch.argsort(torch.rand(n, d, generator=gen), dim=0).to(torch.float64)
        u = (perm + torch.rand(n, d, generator=gen, dtype=torch.float64)) / n
        e = torch.special.ndtri(u.clamp(2.0**-60, 1 - 2.0**-53))
    elif kind.startswith("ms"):             # "ms8": multi-scale LHS, 8x8 block means stratified too
        blk = int(kind[2:])
        C, H, W = shape
        z = noise("lhs", n, shape, gen).double()
        c = noise("lhs", n, (C, H // blk, W // blk), gen).double()
        zm = F.avg_pool2d(z, blk)
        up = (c / blk - zm).repeat_interleave(blk, 2).repeat_interleave(blk, 3)
        e = (z + up).view(n, d)        # z − blockmean(z) + c·1_block/blk: exactly N(0, I) per sample
    elif kind == "sobol":
        parts, left = [], d
        while left > 0:
            k = min(left, 21201)
            eng = torch.quasirandom.SobolEngine(k, scramble=True,
                                                seed=int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
            parts.append(eng.draw(n, dtype=torch.float64))
            left -= k
        u = torch.cat(parts, dim=1)
        e = torch.special.ndtri(u.clamp(2.0**-60, 1 - 2.0**-53))
    elif kind == "radial":
        u = torch.randn(n, d, generator=gen, dtype=torch.float64)
        u = u / u.norm(dim=1, keepdim=True)
        q = (torch.randperm(n, generator=gen).to(torch.float64) + torch.rand(n, generator=gen, dtype=torch.float64)) / n
        r = torch.from_numpy(np.sqrt(scipy.stats.chi2.ppf(q.numpy(), d)))
        e = u * r.view(-1, 1)
    else:
        raise ValueError(f"unknown noise kind {kind!r}")
    return e.to(torch.float32).view(n, *shape)


def sq_grad_maps(model, x1, target: int, eps, a: torch.Tensor, c: torch.Tensor, batch: int) -> torch.Tensor:
    """Channel-summed g² of F = log_softmax_target at x̃_i = a_i x1 + c_i ε_i.  eps (n, C, H, W) -> (n, H, W) f64."""
    out = []
    for lo in range(0, eps.shape[0], batch):
        e = eps[lo:lo + batch]
        xt = (a[lo:lo + batch].view(-1, 1, 1, 1).float() * x1 + c[lo:lo + batch].view(-1, 1, 1, 1).float() * e)
        xt.requires_grad_(True)
        with torch.enable_grad():
            f = torch.log_softmax(model(xt), dim=1)[:, target].sum()
            (g,) = torch.autograd.grad(f, xt)
        out.append((g.double() ** 2).sum(1))
    return torch.cat(out)


def metrics(est: torch.Tensor, ref: torch.Tensor) -> dict:
    """Errors of one (H, W) map against the reference."""
    def rel(a, b):
        return float((a - b).norm() / b.norm())

    p2 = [F.avg_pool2d(t[None, None], k)[0, 0] for t in (est, ref) for k in (2,)]
    p4 = [F.avg_pool2d(t[None, None], k)[0, 0] for t in (est, ref) for k in (4,)]
    rho = scipy.stats.spearmanr(est.flatten().numpy(), ref.flatten().numpy())[0]
    return {"rel_l2": rel(est, ref), "rel_l2_pool2": rel(*p2), "rel_l2_pool4": rel(*p4), "spearman": float(rho)}


def summarise(runs: dict, key_passes: str = "passes") -> dict:
    """runs[estimator] = list of {passes, seed, image, metrics} -> mean curves and passes to targets."""
    out = {}
    for name, rows in runs.items():
        curves = {}
        for m in ("rel_l2", "rel_l2_pool2", "rel_l2_pool4", "spearman"):
            by_p: dict[int, list] = {}
            for r in rows:
                by_p.setdefault(r[key_passes], []).append(r["metrics"][m])
            curves[m] = {p: float(np.mean(v)) for p, v in sorted(by_p.items())}
        seeds = sorted({r["seed"] for r in rows})
        per_seed = {}
        for m, targets in TARGETS.items():
            for t in targets:
                vals = []
                for s in seeds:
                    by_p = {}
                    for r in rows:
                        if r["seed"] == s:
                            by_p.setdefault(r[key_passes], []).append(r["metrics"][m])
                    vals.append(passes_for({p: float(np.mean(v)) for p, v in by_p.items()}, t, m == "spearman"))
                per_seed[f"{m}@{t}"] = vals
        to_target = {f"{m}@{t}": passes_for(curves[m], t, m == "spearman") for m, ts in TARGETS.items() for t in ts}
        out[name] = {"curves": curves, "passes_to_target": to_target, "passes_to_target_per_seed": per_seed}
    base = out.get("iid") or out.get("grid-iid") or out.get("sx:iid") or out.get("sx:grid")
    for name, r in out.items():
        ref = base["passes_to_target"] if base else dict.fromkeys(r["passes_to_target"])
        r["iid_passes_over_these"] = {k: (ref[k] / v if v and ref[k] else None)
                                      for k, v in r["passes_to_target"].items()}
    return out


def print_table(title: str, summary: dict) -> None:
    keys = [f"{m}@{t}" for m, ts in TARGETS.items() for t in ts]
    print(f"\n{title}: passes per image to reach the target (gain = iid passes / these)")
    print(f"{'estimator':16s} " + " ".join(f"{k:>22s}" for k in keys))
    for name, r in summary.items():
        cells = []
        for k in keys:
            p, g = r["passes_to_target"][k], r["iid_passes_over_these"][k]
            cells.append(f"{p:9.1f} ({g:4.2f}x)" if p and g else f"{'>max':>9s} {'':8s}" if not p else f"{p:9.1f}")
        print(f"{name:16s} " + " ".join(f"{c:>22s}" for c in cells))
    print(f"{'rel_l2 curve':16s}")
    for name, r in summary.items():
        print(f"  {name:14s} " + "  ".join(f"{p}:{v:.3f}" for p, v in r["curves"]["rel_l2"].items()))


def cached(path: Path, fn):
    if path.exists():
        return torch.load(path)
    t0 = time.perf_counter()
    val = fn()
    torch.save(val, path)
    print(f"computed {path.name} in {time.perf_counter() - t0:.0f}s", flush=True)
    return val


# ---------------------------------------------------------------- SG²

def run_sg2(model, x, targets, args, save=lambda part: None) -> dict:
    B, C, H, W = x.shape
    shape = (C, H, W)
    std = args.std

    def ref_fn():
        maps = []
        for b in range(B):
            eps = noise("iid", args.ref_samples, shape, generator("ref-sg2", b))
            m = sq_grad_maps(model, x[b], int(targets[b]), eps, torch.ones(args.ref_samples),
                             torch.full((args.ref_samples,), std), args.batch)
            maps.append(m)
        return torch.stack(maps)          # (B, n_ref, H, W)

    RESULTS.mkdir(parents=True, exist_ok=True)
    ref_all = cached(RESULTS / f"ref_sg2_{args.size}px_{B}img_{std}_{args.ref_samples}.pt", ref_fn)
    ref = ref_all.mean(1)
    half = ref_all.shape[1] // 2
    ref_self = float(np.mean([((ref_all[b, :half].mean(0) - ref_all[b, half:].mean(0)).norm() / ref[b].norm()).item()
                              for b in range(B)])) / 2
    runs = {k: [] for k in args.sg2_estimators}
    nmax = max(args.ns)
    for name in args.sg2_estimators:
        t0 = time.perf_counter()
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for b in range(B):
                a = torch.ones(nmax)
                c = torch.full((nmax,), std)
                if name.startswith("sx:"):                  # the library: smooth_grad(sampling=...)
                    for n in args.ns:
                        m = sx.smooth_grad(model, x[b:b + 1], std, target=int(targets[b]), n_samples=n, seed=seed,
                                           image_ids=[b], batch_size=args.batch, sampling=name[3:])[0].double()
                        runs[name].append({"passes": n, "seed": seed, "image": b, "metrics": metrics(m, ref[b])})
                elif name in ("iid", "antithetic"):          # prefixes of one run are valid runs of every n
                    eps = noise(name, nmax, shape, generator("sg2", name, seed, b))
                    maps = sq_grad_maps(model, x[b], int(targets[b]), eps, a, c, args.batch)
                    for n in args.ns:
                        runs[name].append({"passes": n, "seed": seed, "image": b,
                                           "metrics": metrics(maps[:n].mean(0), ref[b])})
                else:
                    for n in args.ns:
                        eps = noise(name, n, shape, generator("sg2", name, seed, b, n))
                        maps = sq_grad_maps(model, x[b], int(targets[b]), eps, a[:n], c[:n], args.batch)
                        runs[name].append({"passes": n, "seed": seed, "image": b,
                                           "metrics": metrics(maps.mean(0), ref[b])})
        print(f"sg2 {name}: {time.perf_counter() - t0:.0f}s", flush=True)
        save({"partial": True, "runs": {k: v for k, v in runs.items() if v}})
    summary = summarise(runs)
    print_table(f"SG² additive std {std}, {args.size}px "
                f"(reference {args.ref_samples} iid, own rel L2 ≈ {ref_self:.3f})", summary)
    return {"reference_samples": args.ref_samples, "reference_rel_l2_self": ref_self, "budgets": args.ns,
            "summary": summary, "runs": runs}


# ---------------------------------------------------------------- SL²

def sl2_maps_for_counts(model, x1, target, counts, kind, key, shape, batch, crn_eps=None):
    """Per-σ sums of g² maps with counts[j] samples at σ_j (σ = 0 once, exactly).  -> (S, H, W) means."""
    S = len(SIGMAS)
    means = []
    for j, s in enumerate(SIGMAS):
        n = int(counts[j])
        if s == 0.0:
            eps = torch.zeros(1, *shape)
            n = 1
        elif crn_eps is not None:
            eps = crn_eps[:n]
        else:
            eps = noise(kind, n, shape, generator(*key, j, n))
        m = sq_grad_maps(model, x1, target, eps, torch.full((n,), 1 - s), torch.full((n,), s * SL_SCALE), batch)
        means.append(m.mean(0))
    assert len(means) == S
    return torch.stack(means)


def _sl2_reference(model, x, targets, args, w):
    """The long iid reference: per-sample maps [B][S] (n_j, H, W), SL² (B, H, W), per-σ total variance V (B, S),
    the reference's own relative L2 error and each image's per-σ share of Σ sd."""
    B, C, H, W = x.shape
    shape, nref = (C, H, W), args.ref_per_sigma

    def ref_fn():
        out = []
        for b in range(B):
            per = []
            for j, s in enumerate(SIGMAS):
                n = 1 if s == 0 else nref
                eps = noise("iid", n, shape, generator("ref-sl2", b, j)) if s else torch.zeros(1, *shape)
                per.append(sq_grad_maps(model, x[b], int(targets[b]), eps, torch.full((n,), 1 - s),
                                        torch.full((n,), s * SL_SCALE), args.batch))
            out.append(per)
        return out                        # [B][S] (n_j, H, W)

    RESULTS.mkdir(parents=True, exist_ok=True)
    ref_all = cached(RESULTS / f"ref_sl2_{args.size}px_{B}img_{nref}.pt", ref_fn)
    ref_per_sigma = torch.stack([torch.stack([m.mean(0) for m in per]) for per in ref_all])   # (B, S, H, W)
    ref = torch.einsum("bshw,s->bhw", ref_per_sigma, w)
    # per-σ total variance (sum over pixels of the per-sample variance) and its square root, per image
    V = torch.tensor([[float(m.var(0).sum()) if m.shape[0] > 1 else 0.0 for m in per] for per in ref_all])
    sd_profile = (V.sqrt() / V.sqrt().sum(1, keepdim=True)).tolist()
    ref_self = float(np.mean([float(torch.sqrt((w**2 * V[b] / nref).sum()) / ref[b].norm()) for b in range(B)]))
    return ref_all, ref, V, ref_self, sd_profile


def _sl2_library(model, xb, tb, b, seed, name, args, S):
    """``sx:<estimator>[-<sampling>]``: the library's spectral_lens -> [(passes, SL² (H, W))]."""
    estimator, _, sampling = name[3:].partition("-")
    out = []
    for n in args.per_sigma:
        if estimator == "neyman" and n < 2:
            continue
        res = sx.spectral_lens(model, xb[None], target=tb, n_samples=n, noise_scale=SL_SCALE, seed=seed,
                               image_ids=[b], batch_size=args.batch, estimator=estimator, sampling=sampling or "iid")
        out.append((1 + (S - 1) * n, res.sl2[0].double()))
    return out


def _sl2_grid(model, xb, tb, key, name, g0, w, args):
    """``grid-iid`` / ``grid-crn``: one run of the largest budget whose prefixes are the runs of every n."""
    shape, nmax, S = tuple(xb.shape), max(args.per_sigma), len(SIGMAS)
    crn = noise("iid", nmax, shape, generator(*key)) if name == "grid-crn" else None
    per = []
    for j, s in enumerate(SIGMAS):
        if s == 0:
            per.append(g0[None])
            continue
        eps = crn if crn is not None else noise("iid", nmax, shape, generator(*key, j))
        per.append(sq_grad_maps(model, xb, tb, eps, torch.full((nmax,), 1 - s), torch.full((nmax,), s * SL_SCALE),
                                args.batch))
    return [(1 + (S - 1) * n, sum(w[j] * per[j][:n].mean(0) for j in range(S))) for n in args.per_sigma]


def _sl2_stratified(model, xb, tb, key, P, g0, w, args):
    """σ drawn per pass from the prior by stratified sampling (P passes, the noiseless ones exact)."""
    S = len(SIGMAS)
    gen = generator(*key)
    u = torch.rand(P, generator=gen, dtype=torch.float64)
    u = (torch.arange(P, dtype=torch.float64) + u) / P
    cdf = torch.cumsum(w, 0)
    cdf[-1] = 1.0
    idx = torch.searchsorted(cdf, u, right=True).clamp(max=S - 1)
    sig = torch.tensor(SIGMAS, dtype=torch.float64)[idx]
    noisy = sig > 0
    eps = noise("iid", int(noisy.sum()), tuple(xb.shape), gen)
    m = sq_grad_maps(model, xb, tb, eps, 1 - sig[noisy], sig[noisy] * SL_SCALE, args.batch)
    return (m.sum(0) + (~noisy).sum() * g0) / P


def _sl2_neyman(model, xb, tb, key, P, name, w, Vb, args):
    """``neyman`` (sd_σ from a one-sample pilot per σ) or ``neyman-oracle`` (sd_σ from the reference):
    n_σ ∝ w_σ·sd_σ by largest remainders -> SL² (H, W), or None if the budget cannot hold a pilot."""
    S, shape = len(SIGMAS), tuple(xb.shape)
    if name == "neyman":
        pilot = 1
        if P - 1 < 2 * (S - 1) * pilot:     # budget too small for a pilot + allocation
            return None
        pm = []
        for j, s in enumerate(SIGMAS[1:], start=1):
            eps = noise("iid", pilot, shape, generator(*key, "pilot", j))
            pm.append(sq_grad_maps(model, xb, tb, eps, torch.full((pilot,), 1 - s),
                                   torch.full((pilot,), s * SL_SCALE), args.batch))
        # one pilot sample per σ: sd_σ ≈ sqrt(Σ_p E[g⁴]) (the second moment dominates)
        sd = torch.tensor([float(m.pow(2).sum(0).mean().sqrt()) for m in pm])
        budget = P - 1 - (S - 1) * pilot
    else:
        sd = Vb[1:].sqrt()
        budget = P - 1
    alloc = w[1:] * sd
    alloc = alloc / alloc.sum() * budget
    counts = torch.clamp(torch.floor(alloc), min=1).long()
    while int(counts.sum()) < budget:           # largest remainders first
        counts[int(torch.argmax(alloc - counts))] += 1
    while int(counts.sum()) > budget:
        counts[int(torch.argmax(torch.where(counts > 1, counts - alloc, -1e9)))] -= 1
    means = sl2_maps_for_counts(model, xb, tb, [1] + counts.tolist(), "iid", key, shape, args.batch)
    return torch.einsum("shw,s->hw", means, w)


def _sl2_estimates(model, xb, tb, b, seed, name, g0, w, Vb, args):
    """Every budget's SL² estimate (H, W) of one image, seed and estimator -> [(passes, estimate)]."""
    S = len(SIGMAS)
    if name.startswith("sx:"):           # the library: spectral_lens(estimator=..., sampling=...)
        return _sl2_library(model, xb, tb, b, seed, name, args, S)
    if name in ("grid-iid", "grid-crn"):   # prefixes are valid runs of every n
        return _sl2_grid(model, xb, tb, ("sl2", name, seed, b), name, g0, w, args)
    out = []
    for n in args.per_sigma:
        P = 1 + (S - 1) * n
        key = ("sl2", name, seed, b, n)
        if name == "grid-lhs":
            means = sl2_maps_for_counts(model, xb, tb, [n] * S, "lhs", key, tuple(xb.shape), args.batch)
            est = torch.einsum("shw,s->hw", means, w)
        elif name == "stratified":
            est = _sl2_stratified(model, xb, tb, key, P, g0, w, args)
        elif name in ("neyman", "neyman-oracle"):
            est = _sl2_neyman(model, xb, tb, key, P, name, w, Vb, args)
            if est is None:
                continue
        else:
            raise ValueError(name)
        out.append((P, est))
    return out


def run_sl2(model, x, targets, args, save=lambda part: None) -> dict:
    B, S = x.shape[0], len(SIGMAS)
    w = torch.full((S,), 1.0 / S, dtype=torch.float64)
    ref_all, ref, V, ref_self, sd_profile = _sl2_reference(model, x, targets, args, w)
    runs = {k: [] for k in args.sl2_estimators}
    for name in args.sl2_estimators:
        t0 = time.perf_counter()
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for b in range(B):
                g0 = ref_all[b][0][0]            # σ = 0 is noiseless: its map is exact (one pass)
                for P, est in _sl2_estimates(model, x[b], int(targets[b]), b, seed, name, g0, w, V[b], args):
                    runs[name].append({"passes": P, "seed": seed, "image": b, "metrics": metrics(est, ref[b])})
        print(f"sl2 {name}: {time.perf_counter() - t0:.0f}s", flush=True)
        save({"partial": True, "runs": {k: v for k, v in runs.items() if v}})
    summary = summarise(runs)
    nref = args.ref_per_sigma
    print_table(f"SL² convex s=0.3, 11 σ, {args.size}px (reference {nref}/σ, own rel L2 ≈ {ref_self:.3f})", summary)
    print("per-σ share of Σ sd (reference), image 0:", " ".join(f"{v:.3f}" for v in sd_profile[0]))
    return {"reference_samples_per_sigma": nref, "reference_rel_l2_self": ref_self,
            "per_sigma_sd_share": sd_profile, "budgets_per_sigma": args.per_sigma, "summary": summary, "runs": runs}


def analyse(args) -> dict:
    """No model passes: from the cached references, (1) SL²: the per-σ spread of the maps, the best Neyman gain
    (S'·Σ V / (Σ sd)², passes of the grid / passes of the oracle allocation for the same variance) and the gain of
    the library's pilot-based allocation simulated by drawing its pilot among the reference samples; (2) SG²: the
    share of the per-pixel variance explained by the pixel's own noise (linear + quadratic, 3 channels): the
    part Latin hypercube sampling can remove."""
    from spectral_xai.lens import _pilot_spread, neyman_counts

    out = {}
    sl = RESULTS / f"ref_sl2_{args.size}px_{args.images}img_{args.ref_per_sigma}.pt"
    if sl.exists():
        gen = torch.Generator().manual_seed(0)
        rows = []
        for b, per in enumerate(torch.load(sl)):
            maps = torch.stack(per[1:])                               # (S', n, H, W)
            Sn, n_ref = maps.shape[:2]
            V = maps.flatten(2).var(1).sum(1)
            l1, l2 = maps.flatten(2).sum(2), maps.flatten(2).norm(dim=2)
            w = torch.full((Sn,), 1.0 / Sn, dtype=torch.float64)
            noisy = torch.ones(1, Sn, dtype=torch.bool)
            row = {"image": b, "sd_share": (V.sqrt() / V.sqrt().sum()).tolist(),
                   "oracle_gain": float(Sn * V.sum() / V.sqrt().sum() ** 2)}
            for n in (4, 8, 16):
                grid = float((V / n).sum())
                for name in ("raw_l2", "library"):
                    vs = []
                    for _ in range(300):
                        pick = torch.randint(0, n_ref, (Sn,), generator=gen)
                        if name == "raw_l2":
                            c = neyman_counts(w, l2[torch.arange(Sn), pick][None], noisy,
                                              torch.tensor([Sn * (n - 1)]), defensive=0.0)
                        else:
                            c = neyman_counts(w, _pilot_spread(l1[torch.arange(Sn), pick][None], noisy), noisy,
                                              torch.tensor([Sn * (n - 1)]))
                        vs.append(float((V / c[0]).sum()))
                    vs = torch.tensor(vs)
                    row[f"{name}_gain_n{n}"] = {"mean": grid / float(vs.mean()),
                                                "p90_worst": grid / float(vs.quantile(0.9))}
            rows.append(row)
            print(f"SL² image {b}: oracle Neyman gain {row['oracle_gain']:.2f}; simulated gains (mean / 90% worst) "
                  + "; ".join(f"{k} {v['mean']:.2f}/{v['p90_worst']:.2f}" for k, v in row.items() if "_gain_n" in k))
        out["sl2"] = rows
    sg = RESULTS / f"ref_sg2_{args.size}px_{args.images}img_{args.std}_{args.ref_samples}.pt"
    if sg.exists():
        ref = torch.load(sg)
        rows = []
        for b in range(ref.shape[0]):
            maps = ref[b]
            n = maps.shape[0]
            eps = noise("iid", n, (3, args.size, args.size), generator("ref-sg2", b)).double()
            Y = maps.flatten(1) - maps.flatten(1).mean(0)
            X = torch.cat([eps, eps**2 - 1], 1).view(n, 6, -1)
            X = X - X.mean(0)
            beta = torch.linalg.solve(torch.einsum("nkp,nlp->pkl", X, X), torch.einsum("nkp,np->pk", X, Y))
            r2 = float((torch.einsum("nkp,pk->np", X, beta) ** 2).sum() / (Y**2).sum())
            rows.append({"image": b, "own_noise_r2": r2, "r2_by_chance": 6 / n})
            print(f"SG² image {b}: variance share explained by the pixel's own noise {r2:.4f} (chance {6 / n:.4f})")
        out["sg2"] = rows
    return out


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1 seed, small budgets and references (a smoke test)")
    p.add_argument("--part", nargs="+", default=["sg2", "sl2"], choices=["sg2", "sl2"])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--images", type=int, default=2)
    p.add_argument("--std", type=float, default=0.3)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0, help="seeds first_seed .. first_seed + seeds - 1")
    p.add_argument("--ns", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    p.add_argument("--per-sigma", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    p.add_argument("--ref-samples", type=int, default=1024)
    p.add_argument("--ref-per-sigma", type=int, default=128)
    p.add_argument("--sg2-estimators", nargs="+", default=["iid", "antithetic", "lhs", "sobol", "radial"])
    p.add_argument("--sl2-estimators", nargs="+",
                   default=["grid-iid", "grid-crn", "grid-lhs", "stratified", "neyman", "neyman-oracle"])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--out", default=None)
    p.add_argument("--analyse", action="store_true", help="only the analyses of the cached references (no passes)")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.ns, args.per_sigma = 1, [8, 32], [1, 4]
        args.ref_samples, args.ref_per_sigma, args.size = 128, 16, min(args.size, 48)
    return args


def study(args: argparse.Namespace) -> dict:
    """The measurements of ``args`` (see :func:`parse`): {"sg2": ..., "sl2": ...} with summaries."""
    from spectral_xai.zoo import efficientnet_lite0, photos

    RESULTS.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = efficientnet_lite0().eval()
    for q in model.parameters():
        q.requires_grad_(False)
    x = photos(args.size)[: args.images]
    with torch.no_grad():
        targets = model(x).argmax(1)
    report = {"benchmark": "samples_to_accuracy", "environment": environment_info(), "spectral_xai": sx.__version__,
              "setting": {"model": "efficientnet-lite0", "size": args.size, "images": args.images,
                          "sg2_std": args.std, "sl2": {"mixing": "convex", "noise_scale": SL_SCALE,
                                                       "sigmas": SIGMAS, "prior": "uniform"},
                          "seeds": args.seeds, "quick": args.quick}}
    out = args.out or RESULTS / f"samples_to_accuracy{'_quick' if args.quick else ''}_{'_'.join(args.part)}.json"

    def saver(part):
        def save(partial):
            write_json({**report, part: partial}, out)
        return save

    if "sg2" in args.part:
        report["sg2"] = run_sg2(model, x, targets, args, saver("sg2"))
    if "sl2" in args.part:
        report["sl2"] = run_sl2(model, x, targets, args, saver("sl2"))
    write_json(report, out)
    return report


def _rows(part: str, summary: dict) -> list[list]:
    rows = []
    for name, r in summary.items():
        curve = r["curves"]["rel_l2"]
        p, gain = r["passes_to_target"]["rel_l2@0.5"], r["iid_passes_over_these"]["rel_l2@0.5"]
        rows.append([part, name, " ".join(f"{k}:{v:.2f}" for k, v in curve.items()),
                     f"{p:.1f}" if p else "> max", f"{gain:.2f}" if gain else "–",
                     f"{r['curves']['spearman'][max(r['curves']['spearman'])]:.2f}"])
    return rows


def run(device: torch.device, quick: bool) -> dict:
    if device.type != "cpu":
        print("  (the study runs on the CPU)", flush=True)
    argv = ["--quick"] if quick else [
        "--size", "48", "--seeds", "2", "--ns", "8", "16", "32", "64", "--ref-samples", "512",
        "--per-sigma", "2", "4", "8", "--ref-per-sigma", "48"]
    argv += ["--sg2-estimators", "iid", "antithetic", "sx:lhs", "--sl2-estimators", "grid-iid", "stratified",
             "sx:neyman", "--out", str(RESULTS / "accuracy_case.json")]
    report = study(parse(argv))
    rows = _rows("SG²", report["sg2"]["summary"]) + _rows("SL²", report["sl2"]["summary"])
    return {
        "title": "Samples to accuracy (unbiased estimators; relative L2 error against a long iid reference)",
        "setting": report["setting"], "sg2": report["sg2"]["summary"], "sl2": report["sl2"]["summary"],
        "table": {"columns": ["map", "estimator", "rel L2 at passes per image", "passes to rel L2 0.5",
                              "iid passes / these", "Spearman at the largest budget"], "rows": rows},
        "note": f"Reference: {report['sg2']['reference_samples']} iid samples (SG², own rel L2 "
                f"{report['sg2']['reference_rel_l2_self']:.2f}) and {report['sl2']['reference_samples_per_sigma']} "
                f"per σ (SL², own rel L2 {report['sl2']['reference_rel_l2_self']:.2f}). The full study with more "
                "seeds and budgets is benchmarks/results/samples_to_accuracy-cpu-2core.md.",
    }
