"""The GPU check's measurements, one per sub-command; each prints progress and writes one JSON.

    python tools/gpu_probe.py env       OUT.json   # torch, the device, its properties
    python tools/gpu_probe.py kernels   OUT.json   # every kernel once (the sanitizers' workload)
    python tools/gpu_probe.py parity    OUT.json   # CPU vs CUDA: noise bit for bit, maps within tolerance
    python tools/gpu_probe.py bandwidth OUT.json   # radial spectrum op vs a device copy and the spec sheet

Run by :mod:`tools.gpu_check` (which gives each one its own timeout and log).
"""
from __future__ import annotations

import json
import statistics
import sys

import torch

DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def env() -> dict:
    """torch's versions and, with CUDA, the device's name, capability and memory properties."""
    out = {"torch": torch.__version__, "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
    if not out["cuda_available"]:
        return out
    p = torch.cuda.get_device_properties(0)
    major, minor = torch.cuda.get_device_capability(0)
    out.update(name=p.name, capability=[major, minor], arch=f"{major}{minor}", sm_count=p.multi_processor_count,
               total_memory_gib=p.total_memory / 2**30)
    for key in ("L2_cache_size", "memory_clock_rate", "memory_bus_width"):  # not in every torch release
        if hasattr(p, key):
            out[key] = getattr(p, key)
    out["peak_bandwidth_gb_s"] = peak_bandwidth(out)
    return out


def peak_bandwidth(props: dict) -> float | None:
    """Spec-sheet DRAM bandwidth, GB/s: 2 (double data rate) x memory clock (kHz) x bus width (bits) / 8."""
    if not props.get("memory_clock_rate") or not props.get("memory_bus_width"):
        return None
    return 2 * props["memory_clock_rate"] * 1e3 * props["memory_bus_width"] / 8 / 1e9


def perturb_case(dtype, device, B=4, C=3, H=33, W=17, N=40, seed=0):
    """Inputs of the perturb op: x (B, C, H, W), rows (N, 3), sigmas (2,), scales (B,), ids (B,)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, C, H, W, generator=g, dtype=torch.float64).to(dtype)
    rows = torch.stack([torch.randint(0, B, (N,), generator=g), torch.randint(0, 2, (N,), generator=g),
                        torch.randint(0, 50, (N,), generator=g)], 1)
    sigmas = torch.rand(2, generator=g, dtype=torch.float64)
    scales = torch.rand(B, generator=g, dtype=torch.float64) + 0.5
    ids = torch.randint(0, 2**32, (B,), generator=g)
    base = torch.randn(x.shape, generator=g, dtype=torch.float64).to(dtype)
    return [t.to(device) for t in (x, rows, sigmas, scales, ids, base)]


def accumulate_state(P, C, H, W, reduce, device):
    """mean1, mean2, counts, checkpoint, delta, scale of the accumulate op (every statistic on)."""
    f64 = dict(dtype=torch.float64, device=device)
    c = 1 if reduce else C
    return [torch.zeros(P, c, H, W, **f64), torch.zeros(P, c, H, W, **f64),
            torch.zeros(P, dtype=torch.int64, device=device), torch.zeros(P, c, H, W, **f64),
            torch.full((P,), -1.0, **f64), torch.full((P,), -1.0, **f64)]


def run_kernels(device) -> dict:
    """Every op on ``device`` for every mixing / reduction and dtype: {op/variant/dtype: outputs}."""
    from spectral_xai.ops import MIXINGS, accumulate_, perturb, radial_power_spectrum, rank_normalize

    out = {}
    for dtype in DTYPES:
        name = str(dtype).replace("torch.", "")
        x, rows, sigmas, scales, ids, base = perturb_case(dtype, device)
        for mixing in MIXINGS:
            out[f"perturb/{mixing}/{name}"] = [perturb(x, rows, sigmas, scales, ids,
                                                       base if mixing == "damping" else None, 2**62 + 5, mixing)]
        grads = torch.randn(28, 3, 17, 9, generator=torch.Generator().manual_seed(1)).to(dtype).to(device)
        slots = torch.tensor([p for p in (4, 1, 0, 3) for _ in range(7)], device=device)
        for reduce in (True, False):
            st = accumulate_state(5, 3, 17, 9, reduce, device)
            for lo, hi in ((0, 9), (9, 28)):
                accumulate_(grads[lo:hi], slots[lo:hi], *st, 3)
            out[f"accumulate/{'reduce' if reduce else 'per-channel'}/{name}"] = st
        maps = grads[:6, 0].contiguous()
        for op, fn in (("radial_power_spectrum", radial_power_spectrum), ("rank_normalize", rank_normalize)):
            try:
                out[f"{op}/{name}"] = [fn(maps)]
            except (TypeError, ValueError, RuntimeError) as err:  # a dtype the op refuses: record it
                out[f"{op}/{name}"] = f"refused: {str(err).splitlines()[0]}"
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out


def kernels() -> dict:
    """The sanitizers' workload: every kernel once, small sizes."""
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device"}
    res = run_kernels(torch.device("cuda"))
    return {"ran": sorted(k for k, v in res.items() if not isinstance(v, str)),
            "refused": {k: v for k, v in res.items() if isinstance(v, str)}}


def compare_outputs(cpu: dict, gpu: dict) -> dict:
    """Per op/variant/dtype: bitwise equality and the max |difference| / max |cpu value|."""
    out = {}
    for key, a in cpu.items():
        b = gpu[key]
        if isinstance(a, str) or isinstance(b, str):
            out[key] = {"refused": a if isinstance(a, str) else b}
            continue
        pairs = [(t, u.cpu()) for t, u in zip(a, b)]
        equal = all(torch.equal(t, u) for t, u in pairs)
        rel = max(float((t.double() - u.double()).abs().max() / t.double().abs().max().clamp_min(1e-300))
                  if t.numel() and t.is_floating_point() else 0.0 for t, u in pairs)
        out[key] = {"bitwise_equal": equal, "max_rel_diff": rel}
    return out


def map_parity() -> dict:
    """smooth_grad's SG² maps of a small CNN on CPU and CUDA (same noise): relative differences."""
    import spectral_xai as sx

    from benchmarks.common import small_cnn_28

    out = {}
    for dtype in (torch.float32, torch.float64):
        model = small_cnn_28().to(dtype)
        x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0), dtype=dtype)
        kw = dict(target=torch.tensor([0, 1, 2, 3]), n_samples=16, output="logit", batch_size=32)
        cpu = sx.smooth_grad(model, x, 0.15, **kw).double()
        gpu = sx.smooth_grad(model.cuda(), x.cuda(), 0.15, **kw).double().cpu()
        rel_l2 = float((cpu - gpu).norm() / cpu.norm())
        max_rel = float((cpu - gpu).abs().max() / cpu.abs().max())
        out[str(dtype).replace("torch.", "")] = {"rel_l2": rel_l2, "max_rel": max_rel}
    return out


# Relative L2 tolerances of the map comparison: the noise is identical, only the model's arithmetic
# differs (cuDNN vs CPU convolutions; PyTorch lets cuDNN use TF32 for float32 convolutions by default).
MAP_TOL = {"float32": 1e-2, "float64": 1e-9}


def parity() -> dict:
    """CPU vs CUDA: perturb's noise and accumulate's sums bit for bit, spectra and maps within tolerance."""
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device"}
    ops = compare_outputs(run_kernels(torch.device("cpu")), run_kernels(torch.device("cuda")))
    must_equal = [k for k in ops if k.startswith(("perturb/", "accumulate/", "rank_normalize/"))]
    not_equal = [k for k in must_equal if not ops[k].get("bitwise_equal", True)]
    spectra_off = [k for k in ops if k.startswith("radial") and ops[k].get("max_rel_diff", 0) > 1e-5]
    maps = map_parity()
    maps_off = [k for k, v in maps.items() if v["rel_l2"] > MAP_TOL[k]]
    return {"ops": ops, "maps": maps, "map_tolerance_rel_l2": MAP_TOL, "not_bitwise_equal": not_equal,
            "spectra_beyond_1e-5": spectra_off, "maps_beyond_tolerance": maps_off,
            "ok": not (not_equal or spectra_off or maps_off)}


def time_cuda(fn, repeats=10, warmup=3) -> float:
    """Median seconds of ``fn()`` by CUDA events."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    return statistics.median(times)


def bandwidth() -> dict:
    """The radial spectrum op's achieved bandwidth (input read + output written, the least traffic it
    needs) against a device-to-device copy (read + write) and the spec-sheet peak."""
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device"}
    from spectral_xai.ops import radial_power_spectrum

    big = torch.empty(2**28, dtype=torch.float32, device="cuda")  # 1 GiB
    dst = torch.empty_like(big)
    t_copy = time_cuda(lambda: dst.copy_(big))
    copy_gb_s = 2 * big.numel() * 4 / t_copy / 1e9
    big = dst = None  # free the 2 GiB before the cases
    out = {"copy_gb_s": copy_gb_s, "peak_gb_s": env().get("peak_bandwidth_gb_s"), "cases": []}
    for B, S, dtype in ((256, 224, torch.float32), (1024, 224, torch.float32), (256, 224, torch.float64)):
        maps = torch.rand(B, S, S, device="cuda", dtype=dtype)
        res = radial_power_spectrum(maps)
        t = time_cuda(lambda: radial_power_spectrum(maps))
        nbytes = maps.numel() * maps.element_size() + res.numel() * res.element_size()
        gb_s = nbytes / t / 1e9
        out["cases"].append({"maps": [B, S, S], "dtype": str(dtype).replace("torch.", ""), "seconds": t,
                             "bytes": nbytes, "gb_s": gb_s, "fraction_of_copy": gb_s / copy_gb_s,
                             "maps_per_s": B / t})
        print(f"  radial_power_spectrum {B}x{S}x{S} {dtype}: {t * 1e3:.3f} ms, {gb_s:.0f} GB/s "
              f"({gb_s / copy_gb_s:.2f} of the copy's {copy_gb_s:.0f} GB/s)", flush=True)
    return out


COMMANDS = {"env": env, "kernels": kernels, "parity": parity, "bandwidth": bandwidth}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    res = COMMANDS[argv[0]]()
    with open(argv[1], "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps({k: v for k, v in res.items() if k not in ("ops", "cases", "ran")}, indent=1))
    return 1 if res.get("ok") is False else 0


if __name__ == "__main__":
    if not __package__:  # run as a file: make the benchmarks package importable (after the installed build)
        from pathlib import Path
        sys.path.append(str(Path(__file__).resolve().parent.parent))
    sys.exit(main(sys.argv[1:]))
