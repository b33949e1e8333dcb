"""Expected Frequency and the explanation gap as components of other libraries (docs/integrations.md).

- :mod:`spectral_xai.integrations.torchmetrics`: ``ExpectedFrequency`` and ``ExplanationGap`` as
  ``torchmetrics.Metric`` subclasses (streaming, DDP-synchronised sum states); extra ``[torchmetrics]``.
- :mod:`spectral_xai.integrations.quantus`: ``ExpectedFrequency`` and ``ExplanationGap`` as
  ``quantus.Metric`` subclasses (usable in ``quantus.evaluate``); extra ``[quantus]``.

Importing this package imports neither torchmetrics nor Quantus; each submodule imports its library.
"""
from __future__ import annotations

import inspect

import torch

from .. import _validation as V
from ..spectrum import expected_frequency


def require(package: str, extra: str):
    """Import ``package``, or raise an ImportError that names the pip extra that installs it."""
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError as err:
        raise ImportError(f"spectral_xai.integrations.{extra} needs the '{package}' package: "
                          f"pip install 'spectral-xai[{extra}]'") from err


def ef_keywords() -> frozenset:
    """The options of :func:`spectral_xai.expected_frequency` (rank_normalize, reduction, ...): its named
    parameters other than the maps and their second half ``b``."""
    sig = inspect.signature(expected_frequency)
    named = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return frozenset(n for n, p in sig.parameters.items() if p.kind in named and n not in ("maps", "b"))


def split_ef_options(options: dict) -> tuple[dict, dict]:
    """(options of sx.expected_frequency, the rest) of a keyword dict."""
    names = ef_keywords()
    return {k: v for k, v in options.items() if k in names}, {k: v for k, v in options.items() if k not in names}


def check_ef_options(ef_options: dict, size=None) -> tuple | None:
    """Validate EF options early by measuring a small probe map with them (so a bad ``reduction`` or
    ``ndim`` fails at construction, naming the argument).  ``size``: the spatial size of the maps, a
    tuple of positive ints, or None.  Returns ``size`` as a tuple (or None)."""
    ndim = ef_options.get("ndim", 2)
    if size is not None:
        if not isinstance(size, (tuple, list)) or not all(isinstance(s, int) and not isinstance(s, bool)
                                                          for s in size):
            V.fail("size", f"expected a tuple of ints (the maps' spatial size), got {size!r}", TypeError)
        size = tuple(size)
        if len(size) != ndim or min(size, default=0) <= 0:
            V.fail("size", f"expected {ndim} positive sizes (ndim={ndim}), got {size!r}")
    probe = torch.rand((1,) + (size or (4,) * (ndim if isinstance(ndim, int) else 2)), dtype=torch.float64,
                       generator=torch.Generator().manual_seed(0))
    expected_frequency(probe, **ef_options)
    return size
