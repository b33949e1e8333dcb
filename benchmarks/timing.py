"""Side-by-side timing in one process: interleaved repeats, medians and paired ratios."""
from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compare(fns: dict[str, Callable[[], object]], reference: str, repeats: int, device: torch.device,
            warmup: int = 1) -> dict:
    """Time every function ``repeats`` times, interleaved (the order reversed every other repeat).

    Returns times_s {name: [s, ...]}, median_s {name: s} and, relative to ``reference``,
    ratio {name: median over repeats of t_name / t_reference of the same repeat} (the paired
    ratio, robust to slow drifts of a shared machine), ratio_range {name: [min, max]} of the paired
    ratios and ratio_of_medians {name: median t_name / median t_reference}.
    """
    if reference not in fns:
        raise ValueError(f"reference {reference!r} is not one of {list(fns)}")
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(repeats):
        for k in (names if r % 2 == 0 else names[::-1]):
            sync(device)
            t0 = time.perf_counter()
            fns[k]()
            sync(device)
            times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    paired = {k: [a / b for a, b in zip(times[k], times[reference])] for k in fns}
    return {
        "repeats": repeats, "reference": reference, "times_s": times, "median_s": med,
        "ratio": {k: statistics.median(v) for k, v in paired.items()},
        "ratio_range": {k: [min(v), max(v)] for k, v in paired.items()},
        "ratio_of_medians": {k: med[k] / med[reference] for k in fns},
    }
