"""What a result was computed with (for benchmark reports and run manifests) and which build is installed."""
from __future__ import annotations

import os
import platform

import torch


def environment_info(device: torch.device | str | None = None) -> dict:
    """Library, torch and build versions, threads, platform, CPU count and the GPU name (if any)."""
    from . import _C
    from ._version import __version__

    device = torch.device(device) if device is not None else None
    return {
        "spectral_xai": __version__, "torch": torch.__version__, "build": _C.build_info(),
        "threads": torch.get_num_threads(), "platform": platform.platform(), "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(device) if device is not None and device.type == "cuda" else None,
    }


def build_summary(info: dict | None = None) -> str:
    """One line on the installed build (``spectral-xai --version``): the version, which kernels the extension
    holds and the torch it was built against (``build_info()``), plus the running torch where that differs, e.g.
    ``spectral-xai 0.1.0 (CPU kernels only; built with torch 2.14.1)``. `info`: a ``build_info()`` dict."""
    from . import _C
    from ._version import __version__

    info = _C.build_info() if info is None else info
    if info["cuda"]:
        archs = ", ".join(f"sm_{a}" for a in info["cuda_archs"])
        kernels = f"CPU and CUDA kernels (CUDA {info['cuda_version']}, {archs})"
    else:
        kernels = "CPU kernels only"
    built = info["torch_version"]
    running = "" if torch.__version__.split("+")[0] == built else f", running torch {torch.__version__}"
    return f"spectral-xai {__version__} ({kernels}; built with torch {built}{running})"
