"""The audit's one error format: ``spectral_xai audit: option 'NAME': message`` (a configuration field or
CLI flag) or ``... argument 'NAME': ...`` (an argument of a Python call), as :func:`spectral_xai._validation.fail`
words the core's."""
from __future__ import annotations


def fail(arg: str, message: str, kind: type[Exception] = ValueError, *, scope: str = "option") -> None:
    """Raise ``kind`` naming ``arg`` (``scope``: "option" or "argument")."""
    raise kind(f"spectral_xai audit: {scope} '{arg}': {message}")
