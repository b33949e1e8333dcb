"""Case ``overhead``: where SG²'s time goes beyond the floor (issue: "zero overhead").

For the SG² settings of case ``sg2`` (CPU, equal n and rows per chunk), both ``smooth_grad`` and the
floor (the passes alone on prebuilt noisy inputs) run under ``torch.profiler`` (interleaved,
``repeats`` times each, times summed): the self CPU time of every op, the extra of ours over the floor
per op (what the library adds: its fused ops, index/allocation ops, anything else), and the library
ops' share of the floor.  ``cProfile`` of one ``smooth_grad`` call gives the time spent in the
interpreter inside spectral_xai's own Python code (tottime of functions in spectral_xai files).
"""
from __future__ import annotations

import cProfile
import os
import pstats
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from .sg2 import floor_passes, ours_sg2, prepare, settings


def op_times(fn, device: torch.device) -> dict[str, float]:
    """Self time (s) per op name of one call under torch.profiler (CPU, plus CUDA kernels on a GPU)."""
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    out = {}
    for e in prof.key_averages():
        t = e.self_cpu_time_total + (getattr(e, "self_device_time_total", 0) if device.type == "cuda" else 0)
        out[e.key] = t / 1e6
    return out


def python_time_in_library(fn) -> float:
    """Seconds of interpreter time (cProfile tottime) in functions defined in spectral_xai's files."""
    import spectral_xai

    root = os.path.dirname(spectral_xai.__file__)
    pr = cProfile.Profile()
    pr.enable()
    fn()
    pr.disable()
    stats = pstats.Stats(pr).stats
    return sum(tt for (filename, _, _), (_, _, tt, _, _) in stats.items() if filename.startswith(root))


def run(device: torch.device, quick: bool) -> dict:
    repeats = 1 if quick else 3
    sets = settings(device, quick)[:1] if quick else [s for s in settings(device, quick) if "224" not in s["name"]]
    results, rows = [], []
    for s in sets:
        model, x, target, chunks = prepare(s, device)
        sigma, n, bs = s["sigma"], s["n"], s["batch_size"]
        fns = {"floor": lambda: floor_passes(model, chunks), "ours": lambda: ours_sg2(model, x, target, sigma, n, bs)}
        for fn in fns.values():
            fn()
        per_op = {k: defaultdict(float) for k in fns}
        for r in range(repeats):
            for k in (("floor", "ours") if r % 2 == 0 else ("ours", "floor")):
                for op, t in op_times(fns[k], device).items():
                    per_op[k][op] += t / repeats
        total = {k: sum(v.values()) for k, v in per_op.items()}
        extra = {op: per_op["ours"].get(op, 0.0) - per_op["floor"].get(op, 0.0)
                 for op in set(per_op["ours"]) | set(per_op["floor"])}
        top = sorted(extra.items(), key=lambda kv: -kv[1])[:8]
        library_ops = sum(t for op, t in per_op["ours"].items() if op.startswith("spectral_xai::"))
        py = python_time_in_library(fns["ours"])
        r = {"setting": s["name"], "batch": list(x.shape), "n_samples": n, "rows_per_chunk": bs, "repeats": repeats,
             "profiled_s": total, "profiled_ours_over_floor": total["ours"] / total["floor"],
             "library_ops_s": library_ops, "library_ops_over_floor": library_ops / total["floor"],
             "python_in_library_s": py, "python_in_library_over_floor": py / total["floor"],
             "top_extra_ops_s": dict(top)}
        results.append(r)
        print(f"  {s['name']:34s} profiled ours/floor {r['profiled_ours_over_floor']:.3f}  fused ops "
              f"{100 * r['library_ops_over_floor']:.2f}%  library Python {100 * r['python_in_library_over_floor']:.2f}%"
              f"  top extra: {', '.join(f'{k} {1e3 * v:.1f}ms' for k, v in top[:3])}", flush=True)
        rows.append([s["name"], f"{total['floor']:.3f}", f"{r['profiled_ours_over_floor']:.3f}",
                     f"{100 * r['library_ops_over_floor']:.2f} %", f"{100 * r['python_in_library_over_floor']:.2f} %",
                     ", ".join(f"{k} {1e3 * v:.1f} ms" for k, v in top[:4])])
    return {
        "title": "Overhead of smooth_grad over the floor, profiled (CPU ops' self time)", "results": results,
        "note": "profiled totals are sums of the ops' self times (mean of the repeats); the extra ops are "
                "ours − floor per op name.",
        "table": {"columns": ["model", "floor, profiled (s)", "ours / floor, profiled", "fused ops / floor",
                              "library Python / floor", "largest extra ops (ours − floor)"], "rows": rows},
    }
