"""Case ``memory``: peak memory of one SG² call, ours vs Captum vs the floor, at equal rows per chunk.

The settings are those of case ``sg2``.  Every measurement runs in a fresh subprocess that imports
the same modules, builds the model and the images, resolves the targets (one clean forward pass),
and then records the peak reached while the method runs once, above what was in use before it:

- CPU (Linux): the resident-set high-water mark ``VmHWM`` of ``/proc/self/status`` after the call
  minus the resident set ``VmRSS`` before it, the mark having been reset to the current RSS just
  before the call (``echo 5 > /proc/self/clear_refs``), so that transient set-up allocations (loading
  the weights) do not hide the method's peak.  Large tensors are mmapped by the C allocator and
  returned to the OS when freed, so the RSS follows the live tensors; smaller blocks kept from the
  set-up can be reused without raising the peak (a slight understatement, alike for every method).
  It also counts one-time allocations of the first backward pass (in the floor as well).  Where the
  mark cannot be reset, ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` after minus before is used
  (reported in the result's ``how``; it reads 0 when the set-up peak was higher).
- CUDA: ``torch.cuda.max_memory_allocated`` minus ``memory_allocated`` before the call (after
  ``reset_peak_memory_stats``): exact tensor bytes from the caching allocator.

floor = the passes alone (each chunk's noisy inputs built, forward, backward, gradient dropped):
what any implementation needs at that chunk size.
"""
from __future__ import annotations

import gc
import json
import resource
import subprocess
import sys

import torch

METHODS = ("floor", "ours", "captum")


def child(spec: dict) -> dict:
    """One measurement (runs in the subprocess): {"peak_mib": ...} for spec's setting/method/device."""
    import captum.attr  # noqa: F401  (every method pays the same imports)

    from .common import captum_sg2
    from .sg2 import frozen_setup, ours_sg2, settings

    device = torch.device(spec["device"])
    s = next(s for s in settings(device, spec["quick"]) if s["name"] == spec["setting"])
    n, bs, sigma = s["n"], s["batch_size"], s["sigma"]
    model, x, target = frozen_setup(s, device)

    def floor():
        rows = torch.arange(x.shape[0], device=device).repeat_interleave(n)
        for lo in range(0, rows.numel(), bs):
            idx = rows[lo:lo + bs]
            xt = (x[idx] + sigma * torch.randn(idx.numel(), *x.shape[1:], device=device)).requires_grad_(True)
            torch.autograd.grad(model(xt).gather(1, target[idx].view(-1, 1)).sum(), xt)

    fn = {"floor": floor, "ours": lambda: ours_sg2(model, x, target, sigma, n, bs),
          "captum": lambda: captum_sg2(model, x, target, sigma, n, bs)}[spec["method"]]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        peak = (torch.cuda.max_memory_allocated(device) - before) / 2**20
        how = "cuda max_memory_allocated"
    else:
        gc.collect()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset VmHWM to the current RSS
            before = _proc_status_kib("VmRSS")
            fn()
            peak = (_proc_status_kib("VmHWM") - before) / 1024
            how = "VmHWM after (reset before) - VmRSS before"
        except OSError:
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
            fn()
            peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
            how = "ru_maxrss after - before"
    return {"peak_mib": peak, "how": how, "rows_per_chunk": bs, "n_samples": n, "batch": list(x.shape)}


def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


def measure(setting: str, method: str, device: str, quick: bool) -> dict:
    """Run :func:`child` in a fresh interpreter with this process's import path."""
    code = ("import json, sys; sys.path[:] = json.loads(sys.argv[2]); from benchmarks.memory import child; "
            "print(json.dumps(child(json.loads(sys.argv[1]))))")
    spec = json.dumps({"setting": setting, "method": method, "device": device, "quick": quick})
    proc = subprocess.run([sys.executable, "-I", "-c", code, spec, json.dumps(sys.path)], capture_output=True,
                          text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"memory measurement {setting}/{method} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.2f}"


def run(device: torch.device, quick: bool) -> dict:
    from .sg2 import settings

    names = [s["name"] for s in settings(device, quick)]  # the settings of case sg2
    results, rows = [], []
    for name in names:
        peaks = {}
        for method in METHODS:
            r = measure(name, method, str(device), quick)
            peaks[method] = r["peak_mib"]
        ratio = {k: (v / peaks["floor"] if peaks["floor"] > 0 else None) for k, v in peaks.items()}
        results.append({"setting": name, "how": r["how"], "batch": r["batch"], "n_samples": r["n_samples"],
                        "rows_per_chunk": r["rows_per_chunk"], "peak_mib": peaks, "ratio_to_floor": ratio})
        print(f"  {name:34s} peak MiB floor {peaks['floor']:.0f}  ours {peaks['ours']:.0f}  "
              f"captum {peaks['captum']:.0f}", flush=True)
        rows.append([name, f"{r['batch'][0]} × {r['n_samples']}", str(r["rows_per_chunk"]),
                     *(f"{peaks[k]:.0f}" for k in METHODS), _fmt(ratio["ours"]), _fmt(ratio["captum"])])
    return {
        "title": "Peak memory of one SG² call at equal rows per chunk (MiB above the set-up)",
        "method": sorted({r["how"] for r in results}), "results": results,
        "note": "a fresh subprocess per measurement; CPU: rise of the resident set's high-water mark during "
                "the call (reset just before it); CUDA: torch.cuda.max_memory_allocated above the set-up.",
        "table": {"columns": ["model", "images × n", "rows per chunk", "floor", "ours", "Captum", "ours / floor",
                              "Captum / floor"], "rows": rows},
    }
