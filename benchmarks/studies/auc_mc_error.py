"""What ``--auc-mc-error`` costs: the same small audit (deletion and insertion of every map) with and without
the AUCs of the halves' maps, interleaved repeats, written as a suite report (JSON + markdown).

    python -m benchmarks.studies.auc_mc_error [--images 4] [--size 64] [--samples 8] [--repeats 2]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

if not __package__:  # run as a file: make the benchmarks package importable
    sys.path.append(str(Path(__file__).resolve().parents[2]))
from benchmarks.audit import photo_folder  # noqa: E402
from benchmarks.studies.one_case import write_one_case  # noqa: E402
from spectral_xai.audit import AuditConfig, run_audit  # noqa: E402

METHODS = ["vg", "sg2", "sl2", "sg2opt"]
FRACTIONS = 21


def study(args) -> dict:
    """Audit loop seconds with the switch off and on (interleaved), their ratio and the forward passes."""
    tmp = Path(tempfile.mkdtemp(prefix="auc_mc_error_"))
    try:
        folder = photo_folder(tmp / "photos", args.images)
        base = dict(data=str(folder), size=args.size, samples=args.samples, shard_size=args.images, quiet=True,
                    report=False, methods=METHODS, measures=["ef", "deletion", "insertion"], fractions=FRACTIONS,
                    num_workers=0, device=args.device)
        run_audit(AuditConfig(out=str(tmp / "warm-up"), auc_mc_error=True, **base))    # first use: not timed
        seconds, cpu = {False: [], True: []}, {False: [], True: []}
        for r in range(args.repeats):
            for on in (False, True):
                c0 = time.process_time()
                summary = run_audit(AuditConfig(out=str(tmp / f"run{r}{on}"), auc_mc_error=on, **base))
                cpu[on].append(time.process_time() - c0)
                seconds[on].append(summary["ranks"][0]["seconds"])
                print(f"  repeat {r} auc_mc_error={on}: loop {seconds[on][-1]:.1f} s wall, "
                      f"{cpu[on][-1]:.1f} s CPU (this process, all threads)", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    off, on = statistics.median(cpu[False]), statistics.median(cpu[True])
    sampled = sum(1 for m in METHODS if m != "vg")
    di_passes = 2 * FRACTIONS                                 # deletion + insertion curves of one map, per image
    passes_off, passes_on = len(METHODS) * di_passes, (len(METHODS) + 2 * sampled) * di_passes
    return {
        "title": "Cost of --auc-mc-error (deletion/insertion AUC of each half's map)",
        "settings": {"images": args.images, "size": args.size, "samples": args.samples, "methods": METHODS,
                     "measures": ["ef", "deletion", "insertion"], "fractions": FRACTIONS,
                     "model": "efficientnet-lite0", "repeats": args.repeats},
        "loop_seconds_off": seconds[False], "loop_seconds_on": seconds[True],
        "cpu_seconds_off": cpu[False], "cpu_seconds_on": cpu[True],
        "on_over_off_cpu": on / off, "deletion_insertion_passes_per_image": {"off": passes_off, "on": passes_on},
        "table": {"columns": ["images × px", "audit CPU off (s)", "audit CPU on (s)", "on / off",
                              "deletion/insertion forward passes per image off → on"],
                  "rows": [[f"{args.images} × {args.size}", f"{off:.1f}", f"{on:.1f}", f"{on / off:.2f}",
                            f"{passes_off} → {passes_on}"]]},
        "note": "run_audit's CPU time in this process (all threads; no report, images decoded in the process), "
                "median of interleaved repeats after an untimed warm-up run: CPU time rather than wall time because other jobs shared the "
                "machine (the wall times, also recorded, varied 2× between repeats of the same run). "
                "With the switch every sampled method with halves (sg2, sl2, sg2opt) runs deletion and insertion "
                "on its two halves' maps too: 3× those methods' deletion/insertion forward passes; the gradient "
                "passes are unchanged.",
    }


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "results"))
    args = p.parse_args(argv)
    return write_one_case("auc_mc_error", argv, torch.device(args.device), args.out, lambda: study(args))

if __name__ == "__main__":
    sys.exit(main())
