"""SPECTRAL_XAI_CUDA (AUTO, ON or OFF) -> whether the build may compile the CUDA kernels: the one rule behind
`pip install .` (CMakeLists.txt runs this file with the build's Python) and `python3 dev.py` (which imports it).

AUTO on a machine without an NVIDIA driver (no /proc/driver/nvidia/version and no nvidia-smi on PATH) means the
CPU kernels only: CUDA kernels could not run there, and compiling them took most of a first build. ON forces
them (CI, wheel builders), OFF turns them off. AUTO with a driver leaves it to CMake (a CUDA build of torch and
a working nvcc). Run as a script (argument: the value) it prints the mode on one line and the reason on the next (exit status 2
for a value that is none of the three).
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

MODES = ("AUTO", "ON", "OFF")
DRIVER_FILE = Path("/proc/driver/nvidia/version")


def nvidia_driver() -> bool:
    """An NVIDIA kernel driver is loaded (Linux), or nvidia-smi is on PATH."""
    return DRIVER_FILE.exists() or shutil.which("nvidia-smi") is not None


def cuda_request(value: str | None) -> tuple[str, str]:
    """(mode, reason): mode is ON, OFF or AUTO (AUTO only where a driver exists); reason says why, for the log."""
    mode = (value or "AUTO").strip().upper() or "AUTO"
    if mode not in MODES:
        raise ValueError(f"SPECTRAL_XAI_CUDA must be AUTO, ON or OFF, got {value!r}")
    if mode == "AUTO" and not nvidia_driver():
        return "OFF", (f"no NVIDIA driver (no {DRIVER_FILE}, no nvidia-smi on PATH), "
                       "SPECTRAL_XAI_CUDA=ON compiles the CUDA kernels anyway")
    if mode == "AUTO":
        return "AUTO", "an NVIDIA driver is present"
    return mode, f"SPECTRAL_XAI_CUDA={mode}"


if __name__ == "__main__":
    try:
        print("\n".join(cuda_request(sys.argv[1] if len(sys.argv) > 1 else None)))
    except ValueError as err:
        print(err, file=sys.stderr)
        sys.exit(2)
