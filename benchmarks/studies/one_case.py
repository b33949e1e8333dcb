"""A study of one case written as a suite report (JSON + markdown): the part every single-case study shares."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from benchmarks.suite import machine_name, new_report, recorded_command, run_case, write_report


def write_one_case(name: str, argv: list[str], device: torch.device, out, fn) -> int:
    """Run ``fn()`` as case ``name`` of a report recorded with the command ``python -m benchmarks.studies.<name>
    argv`` and write it to ``out``; 1 if it raised (the traceback is in the report), else 0."""
    report = new_report(recorded_command(argv, f"python -m benchmarks.studies.{name}"), "default", device,
                        machine_name(device))
    t0 = time.perf_counter()
    report["cases"][name] = run_case(name, fn)
    report["wall_s"] = time.perf_counter() - t0
    write_report(report, Path(out))
    return 1 if "error" in report["cases"][name] else 0
