"""How long `pip install .` takes a new user: a fresh venv, a cold build folder, with and without build isolation.

    python benchmarks/studies/install.py --ref main --ref HEAD      # JSON + markdown in benchmarks/results/

Each git ref is exported (`git archive`, so no build folder comes along) and installed into a fresh venv, once with
build isolation (pip installs torch and the other build requirements into a temporary build environment, then torch
again as a run-time dependency) and once with `--no-build-isolation` into a venv where torch and the build
requirements were installed beforehand (not timed). The timed part is the `pip install` alone. The build log says
which kernels were compiled. The load average is recorded before and after each install: on a shared machine
the times depend on it (README.md, "Install as a library").
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def export(ref: str, dest: Path) -> str:
    """Write the tree of `ref` into `dest`; return its commit."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", ref], check=True, capture_output=True,
                          text=True).stdout.strip()


def kernels(log: str) -> str:
    """What the build log says was compiled."""
    if "spectral_xai: CUDA kernels ON" in log:
        return "CUDA + CPU"
    if "spectral_xai: CPU kernels only" in log:
        return "CPU only"
    return "unknown"


def measure(src: Path, isolated: bool, torch_spec: str, work: Path) -> dict:
    """One fresh venv, one `pip install` of `src`; the pip step's wall time and what it built."""
    env_dir = work / ("venv-iso" if isolated else "venv-noiso")
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(env_dir)], check=True)
    pip = [str(env_dir / "bin" / "python"), "-m", "pip"]
    if not isolated:
        build_requires = tomllib.loads((src / "pyproject.toml").read_text())["build-system"]["requires"]
        reqs = [r for r in build_requires if not r.startswith("torch")] + [torch_spec, "numpy"]
        subprocess.run(pip + ["install", "-q", *reqs], check=True)
    cmd = pip + ["install", "-v"] + ([] if isolated else ["--no-build-isolation"]) + [str(src)]
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PIP_NO_CACHE_DIR": "1"})
    seconds = time.perf_counter() - t0
    load_after = os.getloadavg()
    log = proc.stdout + proc.stderr
    (work / f"pip-{'iso' if isolated else 'noiso'}.log").write_text(log)
    if proc.returncode != 0:
        raise SystemExit(f"install study: {' '.join(cmd)} failed:\n{log[-4000:]}")
    version = subprocess.run([str(env_dir / "bin" / "spectral-xai"), "--version"], capture_output=True, text=True,
                             cwd=work).stdout.strip()
    pip_version = subprocess.run(pip + ["--version"], capture_output=True, text=True).stdout.split()[1]
    shutil.rmtree(env_dir)
    return {"isolation": isolated, "seconds": round(seconds, 1), "kernels": kernels(log), "pip": pip_version,
            "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in load_after],
            "version_line": version, "command": "pip install -v" + ("" if isolated else " --no-build-isolation") + " ."}


def markdown(result: dict) -> str:
    rows = ["| ref | build isolation | `pip install` wall time | kernels compiled | load (1 min) before → after |",
            "|---|---|---|---|---|"]
    for r in result["runs"]:
        rows.append(f"| {r['ref']} ({r['commit']}) | {'yes' if r['isolation'] else 'no (torch preinstalled)'} | "
                    f"{r['seconds']:.0f} s | {r['kernels']} | {r['load_before'][0]:.1f} → {r['load_after'][0]:.1f} |")
    return (f"# `pip install .` into a fresh venv ({result['machine']}, {result['utc']})\n\n"
            f"Cold build folder, no NVIDIA driver, pip's cache off (wheels from the machine's local index), "
            f"{result['cpus']} cores shared with other jobs. `python benchmarks/studies/install.py`.\n\n"
            + "\n".join(rows) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", action="append", help="git ref to install (repeatable; default HEAD)")
    parser.add_argument("--modes", default="isolated,no-isolation", help="isolated, no-isolation or both")
    parser.add_argument("--torch", default="torch==2.14.1", help="torch preinstalled for --no-build-isolation")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the JSON and markdown reports")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",")]
    if not set(modes) <= {"isolated", "no-isolation"}:
        parser.error(f"--modes: isolated and/or no-isolation, got {args.modes!r}")
    utc = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    result = {"utc": utc, "machine": f"cpu-{os.cpu_count()}core", "cpus": os.cpu_count(),
              "nvidia_driver": Path("/proc/driver/nvidia/version").exists(), "runs": []}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"install-{utc}-cpu-{os.cpu_count()}core"
    for ref in args.ref or ["HEAD"]:
        for mode in modes:
            with tempfile.TemporaryDirectory(prefix="sxai-install-") as tmp:
                work = Path(tmp)
                commit = export(ref, work / "src")
                r = measure(work / "src", mode == "isolated", args.torch, work)
            result["runs"].append({"ref": ref, "commit": commit, **r})
            print(json.dumps(result["runs"][-1]), flush=True)
            # written after every run: a long series stopped half-way keeps what it measured
            stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
            stem.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
