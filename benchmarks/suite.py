"""Run the cases, then write one JSON per run and its markdown summary (see the package docstring)."""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import re
import sys
import time
import traceback
from pathlib import Path

import torch

from spectral_xai.atomic_io import write_json
from spectral_xai.environment import environment_info

from . import CASES

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def machine_name(device: torch.device) -> str:
    """``cpu-<N>core`` or the GPU's name as a slug (``cuda-nvidia-h100-80gb-hbm3``)."""
    if device.type == "cuda":
        return "cuda-" + re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(device).lower()).strip("-")
    return f"cpu-{os.cpu_count()}core"


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke mode: tiny settings, one repeat (seconds)")
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="folder for the JSON and markdown (default %(default)s)")
    p.add_argument("--machine", default=None, help="machine name in the file names (default: cpu-<N>core / GPU)")
    args = p.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if not cases or unknown:
        p.error(f"argument --cases: unknown case(s) {unknown}; choose from {', '.join(CASES)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("argument --device: cuda requested but torch.cuda.is_available() is False")
    args.cases = cases
    return args


def cell(v) -> str:
    return str(v).replace("|", "\\|")


def table_lines(tab: dict) -> list[str]:
    """A markdown table of {"columns": [...], "rows": [[...], ...]}, then an empty line."""
    lines = ["| " + " | ".join(cell(c) for c in tab["columns"]) + " |", "|" + "---|" * len(tab["columns"])]
    return lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in tab["rows"]] + [""]


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [f"# spectral_xai benchmarks — {report['machine']} ({report['mode']})", "",
             f"- created (UTC): {report['created_utc']}; device: {report['device']}; total {report['wall_s']:.0f} s",
             f"- command: `{report['command']}`",
             f"- spectral_xai {env['spectral_xai']}, torch {env['torch']}, threads {env['threads']}, "
             f"{env['cpus']} CPUs, GPU: {env['gpu'] or 'none'}",
             f"- platform: {env['platform']}; build: {cell(env['build'])}", "",
             "Every figure is a ratio of two implementations timed side by side in this one process "
             "(interleaved repeats; medians).", ""]
    for name, res in report["cases"].items():
        lines.append(f"## {name}: {res.get('title', '')}")
        lines.append("")
        if "error" in res:
            lines += ["**failed:**", "", "```", res["error"].strip(), "```", ""]
            continue
        lines += table_lines(res["table"])
        if res.get("note"):
            lines += [res["note"], ""]
        for extra in res.get("tables", []):   # a case's further tables: {"title", "columns", "rows"[, "note"]}
            lines += [f"### {extra['title']}", "", *table_lines(extra)]
            if extra.get("note"):
                lines += [extra["note"], ""]
        lo, hi = res["load_avg_1min"]
        lines += [f"({res['wall_s']:.0f} s; 1-min load average {lo:.1f} at the start, {hi:.1f} at the end, "
                  f"on {env['cpus']} CPUs)", ""]
    return "\n".join(lines)


def recorded_command(argv: list[str], program: str = "python -m benchmarks") -> str:
    """The command line for the report, without ``--out`` (where a report is written says nothing about its
    figures, and a local path would name the machine)."""
    kept, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--out":
            skip = True
        elif not a.startswith("--out="):
            kept.append(a)
    return " ".join([program, *kept])


def new_report(command: str, mode: str, device: torch.device, machine: str) -> dict:
    """The report's header (its cases are added to ``report["cases"]``)."""
    now = dt.datetime.now(dt.timezone.utc)
    return {"suite": "spectral_xai benchmarks", "created_utc": now.isoformat(timespec="seconds"),
            "stem": f"{now.strftime('%Y%m%dT%H%M%SZ')}-{machine}", "command": command, "mode": mode,
            "device": str(device), "machine": machine, "environment": environment_info(device), "cases": {}}


def run_case(name: str, fn) -> dict:
    """``fn()``'s result with its wall time and the machine's load, or the traceback if it raised."""
    print(f"[{name}]", flush=True)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    try:
        res = fn()
    except Exception:  # record it and go on with the other cases
        traceback.print_exc()
        res = {"error": traceback.format_exc()}
    res["wall_s"] = time.perf_counter() - t0
    res["load_avg_1min"] = [load, os.getloadavg()[0]]  # other processes on the machine: noise
    return res


def write_report(report: dict, out: Path) -> tuple[Path, Path]:
    """``<out>/<stem>.json`` and its markdown summary ``<stem>.md``."""
    out = Path(out)
    path = write_json(report, out / f"{report['stem']}.json")
    md = out / f"{report['stem']}.md"
    md.write_text(markdown(report))
    print(f"wrote {path} and {md}")
    return path, md


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    device = torch.device(args.device)
    report = new_report(recorded_command(argv), "quick" if args.quick else "default", device,
                        args.machine or machine_name(device))
    t_all = time.perf_counter()
    for name in args.cases:
        report["cases"][name] = run_case(
            name, lambda: importlib.import_module(f"benchmarks.{name}").run(device, args.quick))
    report["wall_s"] = time.perf_counter() - t_all
    write_report(report, Path(args.out))
    return 1 if any("error" in res for res in report["cases"].values()) else 0
