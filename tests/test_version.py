"""The installed version and build, as a bug report states them: ``__version__``, ``build_info()`` and
``spectral-xai --version``; and the message when the compiled extension does not load."""
import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import torch

import spectral_xai as sx
from spectral_xai.environment import build_summary

ROOT = Path(__file__).resolve().parents[1]


def test_version_is_the_installed_distributions_and_pyprojects():
    want = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert sx.__version__ == importlib.metadata.version("spectral-xai") == want


def test_build_info_names_the_version_the_kernels_and_the_torch_built_against():
    info = sx.build_info()
    assert info["spectral_xai"] == sx.__version__
    assert info["torch_version"] == torch.__version__.split("+")[0]    # dev.py builds against the venv's torch
    assert isinstance(info["cuda"], bool)
    assert (info["cuda_version"] is None) == (not info["cuda"]) and bool(info["cuda_archs"]) == info["cuda"]
    # the kernels the build says it holds are the ones registered
    assert torch._C._dispatch_has_kernel_for_dispatch_key("spectral_xai::perturb", "CUDA") == info["cuda"]


def test_build_summary_says_which_kernels_and_which_torch():
    base = torch.__version__.split("+")[0]
    cpu = {"torch_version": base, "cuda": False, "cuda_version": None, "cuda_archs": []}
    assert build_summary(cpu) == f"spectral-xai {sx.__version__} (CPU kernels only; built with torch {base})"
    gpu = {"torch_version": "2.0.0", "cuda": True, "cuda_version": "13.0.88", "cuda_archs": ["80", "90"]}
    assert build_summary(gpu) == (f"spectral-xai {sx.__version__} (CPU and CUDA kernels (CUDA 13.0.88, sm_80, "
                                  f"sm_90); built with torch 2.0.0, running torch {torch.__version__})")


def test_the_command_prints_the_installed_build(tmp_path):
    cli = Path(sysconfig.get_path("scripts")) / "spectral-xai"
    out = subprocess.run([cli, "--version"], cwd=tmp_path, capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == build_summary()
    kernels = "CPU and CUDA kernels (CUDA " if sx.build_info()["cuda"] else "CPU kernels only; built with torch "
    assert out.stdout.startswith(f"spectral-xai {sx.__version__} ({kernels}")


def test_an_extension_that_does_not_load_is_explained(tmp_path):
    """A _C that is there but does not load (here: not a shared library at all; in practice: built against
    another torch) is named as such, not as missing."""
    package = Path(sx.__file__).parent
    copy = tmp_path / "site" / "spectral_xai"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("_C*", "__pycache__"))
    so = next(p.name for p in package.iterdir() if p.name.startswith("_C."))
    (copy / so).write_bytes(b"not a shared library")
    env = dict(os.environ, PYTHONPATH=str(copy.parent))
    r = subprocess.run([sys.executable, "-c", "import spectral_xai"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode != 0
    assert (f"the compiled extension in {copy} does not load with torch {torch.__version__}" in r.stderr
            and "--no-build-isolation" in r.stderr and "source tree" not in r.stderr), r.stderr
