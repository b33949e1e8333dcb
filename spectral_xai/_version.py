"""``__version__``: the version of the installed distribution (pyproject.toml's, as pip recorded it)."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("spectral-xai")
except PackageNotFoundError:   # a copy of the package that pip did not install (e.g. put on PYTHONPATH by hand)
    __version__ = "unknown"
