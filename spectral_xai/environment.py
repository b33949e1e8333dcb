"""What a result was computed with (for benchmark reports and run manifests)."""
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
