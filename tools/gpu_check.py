"""GPU readiness check for a bare GPU machine: ``python3 dev.py gpu-check [--out DIR] [--budget S]``.

Uses the Python that runs it (no venv, no network).  Steps, each a subprocess with its own timeout
and log (a failure is recorded and the next step runs; a step that no longer fits the overall budget
is skipped):

  wheels     install carried wheels (``$SPECTRAL_XAI_WHEELS`` or ``wheels/``) into ``build/gpu-check/site``
  env        torch, the device, its capability and memory properties
  build      the extension against the installed torch for the local GPU's architecture, into the same
             folder (the source tree and the venv of ``dev.py test`` are left alone)
  tests      every CUDA test (marked ``cuda``, or with "cuda" in its name)
  memcheck, racecheck   compute-sanitizer over every kernel (all mixings, dtypes); "refused" where
             the tool does not support the device (recorded, not a failure)
  parity     CPU vs CUDA: noise and sums bit for bit, spectra and SG² maps within tolerance
  bandwidth  the radial spectrum op against a device copy and the spec-sheet peak
  bench-*    the benchmark suite's cases sg2, fastpath, memory and audit on CUDA

Writes ``DIR/gpu_check.json`` (rewritten after every step) and ``DIR/logs/<step>.log``; the suite's
reports go to ``DIR/bench/``.  Without CUDA every CUDA step is reported as skipped.  This module
imports only the standard library; it is also the pytest plugin that selects the CUDA tests.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "gpu-check"
SITE = WORK / "site"
PROBE = ROOT / "tools" / "gpu_probe.py"
BENCH_CASES = ("sg2", "fastpath", "memory", "audit")
# Each step's own limit (s); all together are capped by --budget (default 450 s: the check ends in
# under 8 minutes).  Sized for an H100/H200 with 16 cores.
TIMEOUTS = {"wheels": 60, "env": 60, "build": 300, "parity": 90, "memcheck": 150, "racecheck": 150,
            "tests": 240, "bandwidth": 60, "bench-sg2": 120, "bench-fastpath": 150, "bench-memory": 90,
            "bench-audit": 90}


def pytest_collection_modifyitems(config, items):
    """pytest plugin (``-p tools.gpu_check``): keep the tests marked ``cuda`` or named "cuda"."""
    keep = [it for it in items
            if it.get_closest_marker("cuda") is not None or any("cuda" in k.lower() for k in it.keywords)]
    config.hook.pytest_deselected(items=[it for it in items if it not in keep])
    items[:] = keep


def child_env(extra: dict | None = None) -> dict:
    """This process's environment with the check's site folder first on the import path."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SITE), str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env.update(extra or {})
    return env


def run_with_timeout(cmd: list[str], cwd: Path, env: dict, log, limit: float) -> tuple[int | None, str]:
    """(exit code, "ok" / "failed" / "timeout"); on a timeout the command's whole process group is
    killed (a build's compilers, a test's workers), not only the command itself."""
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as err:  # e.g. the tool is not executable
        log.write(f"could not start: {err}\n")
        return None, "failed"
    try:
        rc = proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.write(f"\n[gpu-check] killed after {limit:.0f} s\n")
        return None, "timeout"
    return rc, "ok" if rc == 0 else "failed"


class Check:
    """Runs the steps, records each in the summary and rewrites the JSON after each."""

    def __init__(self, out: Path, budget: float, scale: float, argv: list[str]):
        self.out, self.logs, self.deadline = out, out / "logs", time.monotonic() + budget
        self.scale = scale
        self.logs.mkdir(parents=True, exist_ok=True)
        self.t0 = time.monotonic()
        self.summary = {"check": "spectral_xai gpu-check", "command": "dev.py gpu-check " + " ".join(argv),
                        "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                        "python": sys.executable, "python_version": sys.version.split()[0],
                        "budget_s": budget, "timeout_scale": scale, "cuda": None, "steps": {}}

    def write(self) -> Path:
        self.summary["wall_s"] = time.monotonic() - self.t0
        tmp, path = self.out / "gpu_check.json.tmp", self.out / "gpu_check.json"
        tmp.write_text(json.dumps(self.summary, indent=1))
        os.replace(tmp, path)
        return path

    def record(self, name: str, **res) -> dict:
        self.summary["steps"][name] = res
        self.write()
        print(f"[{name}] {res['status']}" + (f": {res['reason']}" if res.get("reason") else "")
              + (f" ({res['seconds']:.0f} s)" if "seconds" in res else ""), flush=True)
        return res

    def skip(self, name: str, reason: str) -> dict:
        return self.record(name, status="skipped", reason=reason)

    def step(self, name: str, cmd: list, cwd: Path = ROOT, env: dict | None = None, data: Path | None = None):
        """Run ``cmd`` with the step's timeout (cut to what is left of the budget); the log is logs/<name>.log
        and ``data``, if the command wrote it, is the step's JSON result."""
        left = self.deadline - time.monotonic()
        if left < 10:
            return self.skip(name, "out of the overall time budget")
        limit = min(TIMEOUTS[name] * self.scale, left)
        log = self.logs / f"{name}.log"
        t0 = time.monotonic()
        with open(log, "w") as f:
            f.write("+ " + " ".join(map(str, cmd)) + "\n")
            f.flush()
            rc, status = run_with_timeout([str(c) for c in cmd], cwd, child_env(env), f, limit)
        res = {"status": status, "rc": rc, "seconds": time.monotonic() - t0, "timeout_s": limit,
               "log": str(log.relative_to(self.out))}
        if data is not None and data.exists():
            try:
                res["data"] = json.loads(data.read_text())
            except ValueError as err:
                res["data_error"] = str(err)
        return self.record(name, **res)


def wheels_step(check: Check) -> None:
    """Install the carried wheels (no index, no dependencies) into the check's site folder."""
    folder = Path(os.environ.get("SPECTRAL_XAI_WHEELS", ROOT / "wheels"))
    whls = sorted(folder.glob("*.whl")) if folder.is_dir() else []
    if not whls:
        check.skip("wheels", f"no *.whl in {folder}")
        return
    check.step("wheels", [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--no-compile",
                          "--upgrade", "--target", SITE, *whls])


def build_step(check: Check, arch: str | None) -> None:
    """The extension against the installed torch, CUDA kernels for ``arch`` (e.g. "90") when there is a GPU;
    without one (a rehearsal) the CPU kernels only (CI compiles the CUDA kernels)."""
    env = {"SPECTRAL_XAI_CUDA": "ON", "SPECTRAL_XAI_CUDA_ARCHS": arch} if arch else {"SPECTRAL_XAI_CUDA": "OFF"}
    check.step("build", [sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-deps", "--no-index",
                         "--upgrade", "--target", SITE, f"--config-settings=build-dir={WORK / 'cmake'}", ROOT],
               env=env)


def sanitizer_steps(check: Check) -> None:
    """compute-sanitizer's memcheck and racecheck over the probe's ``kernels`` workload."""
    tool = shutil.which("compute-sanitizer") or next(
        (str(p) for p in (Path("/usr/local/cuda/bin/compute-sanitizer"),) if p.exists()), None)
    for name in ("memcheck", "racecheck"):
        if tool is None:
            check.skip(name, "compute-sanitizer not found (PATH, /usr/local/cuda/bin)")
            continue
        data = check.out / f"{name}.json"
        # No caching allocator under memcheck, so that an access past a tensor's end is out of bounds.
        extra = {"PYTORCH_NO_CUDA_MEMORY_CACHING": "1"} if name == "memcheck" else {}
        res = check.step(name, [tool, "--tool", name, "--error-exitcode", "99", sys.executable, PROBE, "kernels",
                                data], env=extra, data=data)
        log = (check.out / res["log"]).read_text(errors="replace") if "log" in res else ""
        summary = [ln.strip() for ln in log.splitlines() if "ERROR SUMMARY" in ln or "RACECHECK SUMMARY" in ln]
        refusal = [ln.strip() for ln in log.splitlines() if "not supported" in ln.lower()][:3]
        if res["status"] == "failed" and refusal and not summary:  # the tool refused this device: not our bug
            res.update(status="refused", reason="compute-sanitizer refused the device")
        if summary or refusal:
            check.record(name, **res, sanitizer_summary=summary or refusal)


def run_checks(check: Check) -> None:
    wheels_step(check)
    env_json = check.out / "env.json"
    res = check.step("env", [sys.executable, PROBE, "env", env_json], data=env_json)
    info = res.get("data", {})
    cuda = bool(info.get("cuda_available"))
    check.summary["cuda"] = cuda
    build_step(check, info.get("arch") if cuda else None)
    built = check.summary["steps"]["build"]["status"] == "ok"
    if not cuda:
        for name in ("tests", "memcheck", "racecheck", "parity", "bandwidth", *(f"bench-{c}" for c in BENCH_CASES)):
            check.skip(name, "no CUDA device (torch.cuda.is_available() is False)")
        return
    if not built:
        check.summary["note"] = "the build failed: the steps below ran against whatever spectral_xai imports"
    check.step("parity", [sys.executable, PROBE, "parity", check.out / "parity.json"], data=check.out / "parity.json")
    sanitizer_steps(check)
    check.step("tests", [sys.executable, "-m", "pytest", "-q", "-ra", "-p", "tools.gpu_check",
                         "--junitxml", check.out / "tests.xml"], cwd=ROOT / "tests")
    check.step("bandwidth", [sys.executable, PROBE, "bandwidth", check.out / "bandwidth.json"],
               data=check.out / "bandwidth.json")
    bench = check.out / "bench"
    for case in BENCH_CASES:
        check.step(f"bench-{case}", [sys.executable, ROOT / "benchmarks" / "__main__.py", "--device", "cuda",
                                     "--cases", case, "--out", bench])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="dev.py gpu-check", description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "out" / "gpu-check"), help="folder for the JSON and logs")
    p.add_argument("--budget", type=float, default=450.0, help="overall time limit in seconds (default %(default)s)")
    p.add_argument("--timeout-scale", type=float, default=1.0,
                   help="multiplies every step's own limit (e.g. 4 for a slow CPU-only rehearsal)")
    args = p.parse_args(argv)
    if args.budget <= 0:
        p.error("argument --budget: must be > 0")
    if args.timeout_scale <= 0:
        p.error("argument --timeout-scale: must be > 0")
    check = Check(Path(args.out).resolve(), args.budget, args.timeout_scale, argv)
    run_checks(check)
    steps = check.summary["steps"]
    failed = [k for k, v in steps.items() if v["status"] in ("failed", "timeout")]
    check.summary.update(finished=True, ok=not failed, failed=failed,
                         skipped=[k for k, v in steps.items() if v["status"] == "skipped"])
    print(f"wrote {check.write()}; " + (f"failed: {', '.join(failed)}" if failed else "no step failed"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
