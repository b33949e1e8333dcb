"""The Monte Carlo error study (``benchmarks/mc_error.py``, the suite's ``mc_error`` case) with its knobs for
larger runs, written as a suite report (JSON + markdown) with a partial JSON while it runs.

    python -m benchmarks.studies.mc_error [--quick] [--models efficientnet fashion] [--seeds 4] [--ref-samples 2048] ...
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

if not __package__:  # run as a file: make the benchmarks package importable
    sys.path.append(str(Path(__file__).resolve().parents[2]))
from benchmarks.mc_error import case_result, parse, study  # noqa: E402
from benchmarks.suite import machine_name, new_report, recorded_command, run_case, write_report  # noqa: E402
from spectral_xai.atomic_io import write_json  # noqa: E402


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    device = torch.device(args.device)
    report = new_report(recorded_command(argv, "python -m benchmarks.studies.mc_error"),
                        "quick" if args.quick else "default", device, args.machine or machine_name(device))
    t0 = time.perf_counter()
    partial = Path(args.out) / f"{report['stem']}.partial.json"
    report["cases"]["mc_error"] = run_case(
        "mc_error", lambda: case_result(study(args, lambda p: write_json(p, partial))))
    report["wall_s"] = time.perf_counter() - t0
    write_report(report, Path(args.out))
    partial.unlink(missing_ok=True)
    return 1 if "error" in report["cases"]["mc_error"] else 0


if __name__ == "__main__":
    sys.exit(main())
