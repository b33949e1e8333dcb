#!/usr/bin/env python3
"""Set-up, build, demo and tests in one place (needs only Python 3.10+ and a C++ compiler).

    python3 dev.py demo     # venv + deps + build, then the demo
    python3 dev.py test     # venv + deps + build, then the test suite
    python3 dev.py build    # venv + deps + build only
    python3 dev.py bench    # the benchmark suite (JSON + markdown in benchmarks/results/)

Environment: SPECTRAL_XAI_TORCH (default "torch==2.14.1"; e.g. "torch==2.13.0" for the
CPU-only build), SPECTRAL_XAI_CUDA (AUTO/ON/OFF), SPECTRAL_XAI_CUDA_ARCHS (default "90"),
SPECTRAL_XAI_VENV (default .venv).
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("SPECTRAL_XAI_VENV", ROOT / ".venv"))
TORCH = os.environ.get("SPECTRAL_XAI_TORCH", "torch==2.14.1")
REQUIREMENTS = ROOT / "requirements" / "dev.txt"


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
    run(python(), "-m", "pip", "install", "-r", REQUIREMENTS, TORCH)
    stamp.write_text(key)


def build() -> None:
    """Build and install the extension against the venv's torch (no build isolation)."""
    ensure_venv()
    run(python(), "-m", "pip", "install", "--no-build-isolation", "--no-deps", ROOT)
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
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except subprocess.CalledProcessError as err:
        sys.exit(err.returncode or 1)
