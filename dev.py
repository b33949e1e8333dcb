#!/usr/bin/env python3
"""Set-up, build, demo and tests in one place (needs only Python 3.10+ and a C++ compiler).

    python3 dev.py demo     # venv + deps + build, then the demo
    python3 dev.py test     # venv + deps + build, then the test suite
    python3 dev.py build    # venv + deps + build only
    python3 dev.py bench    # the benchmark suite (JSON + markdown in benchmarks/results/)
    python3 dev.py gpu-wheels [DIR]        # download what a GPU machine lacks into wheels/ (to carry)
    python3 dev.py gpu-check [--out DIR]   # on a bare GPU machine: build, CUDA tests, sanitizers,
                            # parity, bandwidth, benchmarks with the Python at hand (no venv)

Environment: SPECTRAL_XAI_TORCH (default "torch==2.14.1"; e.g. "torch==2.13.0" for the
CPU-only build; "oldest" for the oldest supported release, the lower bound in pyproject.toml, which
CI tests in a second venv), SPECTRAL_XAI_CUDA (AUTO/ON/OFF), SPECTRAL_XAI_CUDA_ARCHS (default "90"),
SPECTRAL_XAI_VENV (default .venv), SPECTRAL_XAI_WHEELS (gpu-check: folder of wheels to install).

On a machine without an NVIDIA driver, AUTO builds the CPU kernels only (compiling CUDA kernels that cannot
run there took most of a first build), and torch comes from PyTorch's CPU-only index when that index answers
(no 3 GB of NVIDIA libraries); SPECTRAL_XAI_CUDA=ON compiles the CUDA kernels anyway (CI does).
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
# A relative SPECTRAL_XAI_VENV is relative to the repository root (the tests run from tests/).
VENV = (ROOT / os.environ.get("SPECTRAL_XAI_VENV", ".venv")).absolute()
DEFAULT_TORCH = "torch==2.14.1"


def oldest_torch() -> str:
    """"torch==X.Y.*" for the lower bound "torch>=X.Y" of the project's dependencies in pyproject.toml."""
    m = re.search(r'dependencies = \[[^]]*"torch>=([0-9]+\.[0-9]+)', (ROOT / "pyproject.toml").read_text())
    if m is None:
        raise SystemExit("dev.py: no \"torch>=X.Y\" in pyproject.toml's dependencies")
    return f"torch=={m.group(1)}.*"


TORCH = os.environ.get("SPECTRAL_XAI_TORCH", DEFAULT_TORCH)
if TORCH == "oldest":
    TORCH = oldest_torch()
REQUIREMENTS = ROOT / "requirements" / "dev.txt"


CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"


def _cuda_rule():
    """cmake/cuda_request.py as a module: the rule behind SPECTRAL_XAI_CUDA=AUTO, which CMakeLists.txt runs too."""
    spec = importlib.util.spec_from_file_location("cuda_request", ROOT / "cmake" / "cuda_request.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CUDA_RULE = _cuda_rule()


def cuda_request() -> tuple[str, str]:
    """(mode, reason) for the environment's SPECTRAL_XAI_CUDA: ON, OFF, or AUTO where an NVIDIA driver exists
    (without one AUTO is OFF), as the build decides it."""
    try:
        return CUDA_RULE.cuda_request(os.environ.get("SPECTRAL_XAI_CUDA"))
    except ValueError as err:
        raise SystemExit(f"dev.py: {err}") from None


def cuda_mode() -> str:
    return cuda_request()[0]


def answers(url: str, timeout: float = 3.0) -> bool:
    """Whether an HTTP(S) index answers within `timeout` seconds (it is not reachable from every machine)."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except Exception:   # noqa: BLE001 - any failure means: use PyPI's wheel
        return False


def torch_index_args() -> list[str]:
    """pip arguments for torch: PyTorch's CPU-only index when no CUDA build is wanted and it answers (its
    X.Y.Z+cpu wheel satisfies torch==X.Y.Z and wins over PyPI's), else none (PyPI's CUDA wheel)."""
    if cuda_mode() != "OFF":
        return []
    if answers(CPU_TORCH_INDEX + "/torch/"):
        print(f"dev.py: no NVIDIA driver: CPU-only torch from {CPU_TORCH_INDEX}", flush=True)
        return ["--extra-index-url", CPU_TORCH_INDEX]
    print(f"dev.py: no NVIDIA driver, but {CPU_TORCH_INDEX} does not answer: torch from PyPI (with its CUDA "
          "libraries; only the CPU kernels are built)", flush=True)
    return []


def run(*cmd, cwd=ROOT) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], cwd=cwd, check=True)


def python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv() -> None:
    """Create the venv and install the requirements (again only when they changed)."""
    if not python().exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
        run(python(), "-m", "pip", "install", "--upgrade", "pip")
    stamp = VENV / ".spectral_xai_deps"
    key = hashlib.sha256((REQUIREMENTS.read_text() + TORCH).encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == key:
        return
    run(python(), "-m", "pip", "install", *torch_index_args(), "-r", REQUIREMENTS, TORCH)
    stamp.write_text(key)


def build_dir() -> str:
    """CMake's build folder: one per torch spec and CUDA setting, so a second venv never reuses another torch's
    cache and switching between the CPU-only and the CUDA build (CI runs both) does not rebuild either."""
    parts = ["build"]
    if TORCH != DEFAULT_TORCH:
        parts.append("".join(c if c.isalnum() or c in ".-" else "_" for c in TORCH))
    if cuda_mode() == "ON":
        parts.append("cuda")
    return "/".join([*parts, "{wheel_tag}"])


def build() -> None:
    """Build and install the extension against the venv's torch (no build isolation)."""
    ensure_venv()
    if cuda_mode() == "OFF":   # the build decides the same (CMakeLists.txt), but pip hides its log
        print(f"dev.py: CPU kernels only: {cuda_request()[1]}", flush=True)
    run(python(), "-m", "pip", "install", "--no-build-isolation", "--no-deps",
        f"--config-settings=build-dir={build_dir()}", ROOT)
    run(python(), "-I", "-m", "spectral_xai", "info")


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "test"
    rest = argv[1:]
    if cmd == "build":
        build()
    elif cmd == "demo":
        build()
        run(python(), "-I", "-m", "spectral_xai", "demo", *rest)
    elif cmd == "test":
        build()
        # Run from tests/ so that the installed package (with its compiled _C) is imported.
        run(python(), "-m", "pytest", "-q", "-ra", *rest, cwd=ROOT / "tests")
    elif cmd == "bench":
        build()
        # = python -I -m benchmarks: -I keeps the installed spectral_xai (with its compiled _C) first on the
        # path, and it also drops the current directory, so the package is run by its __main__.py, which
        # appends the repository root to sys.path.
        run(python(), "-I", ROOT / "benchmarks" / "__main__.py", *rest)
    elif cmd == "gpu-wheels":
        # Pure-Python wheels that a GPU machine's image lacks (requirements/gpu-carry.txt), to carry there.
        run(sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d",
            rest[0] if rest else ROOT / "wheels", "-r", ROOT / "requirements" / "gpu-carry.txt")
    elif cmd == "gpu-check":
        # No venv, no network: the Python running dev.py, wheels carried in wheels/ (see the README).
        sys.path.insert(0, str(ROOT))
        from tools.gpu_check import main as gpu_check

        return gpu_check(rest)
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except subprocess.CalledProcessError as err:
        sys.exit(err.returncode or 1)
