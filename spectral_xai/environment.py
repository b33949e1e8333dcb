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


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, fsync it, give it the usual permissions
    and rename it over ``path``: readers see the old file or the complete new one, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)          # mkstemp makes 0600
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_json(obj, path: str | os.PathLike) -> Path:
    """Write ``obj`` as indented JSON atomically (see :func:`atomic_write`)."""
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2)

    return atomic_write(path, write)
