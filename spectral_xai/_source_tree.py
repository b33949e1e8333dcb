"""A clear error when the compiled _C does not import: built against another torch, or a source tree (no _C beside
the sources) shadows the installed build."""
from __future__ import annotations


def missing_extension_error(err: ImportError, here=None) -> ImportError:
    """The ImportError to raise when the compiled ``_C`` does not import from `here` (default: this package):
    it is there but does not load (built against another torch), or it is absent, and then says when a source
    checkout (no build in it) shadows an installed build, as it does from the repository root, and what to do."""
    import importlib.machinery
    import sys
    from pathlib import Path

    import torch

    here = Path(__file__).resolve().parent if here is None else Path(here)
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    if any(f.name.startswith("_C.") and f.name.endswith(suffixes) for f in here.iterdir()):
        return ImportError(
            f"spectral_xai: the compiled extension in {here} does not load with torch {torch.__version__} ({err}): "
            "it was most likely built against another torch (pip's build isolation builds against the newest "
            "torch it finds). Rebuild it against this torch: pip install --no-build-isolation --no-deps "
            "--force-reinstall SOURCE (the source folder or sdist), with its build requirements installed.")
    if not (here.parent / "pyproject.toml").exists():
        return ImportError(f"spectral_xai: the compiled extension _C is missing from {here} ({err}); "
                           "reinstall the package (pip install --no-build-isolation .)")
    builds = [Path(p) / "spectral_xai" for p in sys.path if p and Path(p).resolve() != here.parent]
    built = next((str(b) for b in builds if b.is_dir() and any(f.name.startswith("_C") and f.name.endswith(suffixes)
                                                           for f in b.iterdir())), None)
    where = f"the built package is installed at {built}" if built else "no built copy was found on sys.path"
    return ImportError(
        f"spectral_xai: imported from the source tree {here}, which has no compiled extension _C: the current "
        f"directory (or PYTHONPATH) puts the repository ahead of the installed build ({where}). Run from another "
        "directory, or with `python -I` (e.g. `.venv/bin/python -I -m spectral_xai info`); "
        "`python3 dev.py build` builds and installs the sources into .venv.")
