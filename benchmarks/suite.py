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
        tab = res["table"]
        lines.append("| " + " | ".join(cell(c) for c in tab["columns"]) + " |")
        lines.append("|" + "---|" * len(tab["columns"]))
        lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in tab["rows"]]
        lines.append("")
        if res.get("note"):
            lines += [res["note"], ""]
        lo, hi = res["load_avg_1min"]
        lines += [f"({res['wall_s']:.0f} s; 1-min load average {lo:.1f} at the start, {hi:.1f} at the end, "
                  f"on {env['cpus']} CPUs)", ""]
    return "\n".join(lines)


def recorded_command(argv: list[str]) -> str:
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
    return " ".join(["python -m benchmarks", *kept])


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    device = torch.device(args.device)
    machine = args.machine or machine_name(device)
    now = dt.datetime.now(dt.timezone.utc)
    stem = f"{now.strftime('%Y%m%dT%H%M%SZ')}-{machine}"
    report = {"suite": "spectral_xai benchmarks", "created_utc": now.isoformat(timespec="seconds"),
              "command": recorded_command(sys.argv[1:] if argv is None else argv),
              "mode": "quick" if args.quick else "default", "device": str(device), "machine": machine,
              "environment": environment_info(device), "cases": {}}
    t_all = time.perf_counter()
    failed = []
    for name in args.cases:
        print(f"[{name}]", flush=True)
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        try:
            res = importlib.import_module(f"benchmarks.{name}").run(device, args.quick)
        except Exception:  # record it and go on with the other cases
            traceback.print_exc()
            res = {"error": traceback.format_exc()}
            failed.append(name)
        res["wall_s"] = time.perf_counter() - t0
        res["load_avg_1min"] = [load, os.getloadavg()[0]]  # other processes on the machine: noise
        report["cases"][name] = res
    report["wall_s"] = time.perf_counter() - t_all
    out = Path(args.out)
    path = write_json(report, out / f"{stem}.json")
    md = out / f"{stem}.md"
    md.write_text(markdown(report))
    print(f"wrote {path} and {md}")
    return 1 if failed else 0
