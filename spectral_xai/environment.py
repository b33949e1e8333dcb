"""What a result was computed with (for benchmark reports and run manifests), and atomic JSON writes."""
from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path

import torch


def environment_info(device: torch.device | str | None = None) -> dict:
    """Library, torch and build versions, threads, platform, CPU count and the GPU name (if any)."""
    from . import __version__, build_info

    device = torch.device(device) if device is not None else None
    return {
        "spectral_xai": __version__, "torch": torch.__version__, "build": build_info(),
        "threads": torch.get_num_threads(), "platform": platform.platform(), "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(device) if device is not None and device.type == "cuda" else None,
    }


def write_json(obj, path: str | os.PathLike) -> Path:
    """Write ``obj`` as indented JSON atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path
