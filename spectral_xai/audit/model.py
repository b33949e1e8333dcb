"""Loading the audited model: the built-in EfficientNet-Lite0, ``module:factory`` (a dotted module or a
``.py`` file), a ``torch.export`` program (``.pt2``) or a TorchScript file; optional ``--weights`` (a state
dict) and input normalisation, so the explained input is always the image in [0, 1]."""
from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import torch
from torch import nn

from .config import NORMALIZATIONS, AuditConfig


class Normalize(nn.Module):
    """(x − mean) / std per channel, in front of a model that expects normalised inputs."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ExportedModel(nn.Module):
    """A ``torch.export`` program as a module.  The program's graph module is held outside the module tree:
    it cannot switch train/eval mode (its mode is fixed at export), so ``eval()`` must not reach it."""

    def __init__(self, program_module, device: torch.device):
        super().__init__()
        object.__setattr__(self, "_program", program_module.to(device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._program(x)


def _factory(spec: str):
    module_name, _, attr = spec.rpartition(":")
    if module_name.endswith(".py"):
        path = Path(module_name).expanduser()
        if not path.is_file():
            raise ValueError(f"spectral_xai audit: option 'model': no file {module_name!r}")
        mod_spec = importlib.util.spec_from_file_location(f"_spectral_xai_model_{path.stem}", path)
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise ValueError(f"spectral_xai audit: option 'model': cannot import {module_name!r}: {err}") from err
    if not hasattr(module, attr):
        raise ValueError(f"spectral_xai audit: option 'model': {module_name!r} has no {attr!r}")
    return getattr(module, attr)


def load_model(cfg: AuditConfig, device: torch.device) -> nn.Module:
    """The model of ``cfg`` in eval mode on ``device`` in ``cfg.dtype``: (B, C, S, S) in [0, 1] -> (B, K)."""
    spec = cfg.model
    if spec == "efficientnet-lite0":
        from ..zoo import efficientnet_lite0

        model = efficientnet_lite0()
    elif ":" in spec and not spec.endswith((".pt", ".pth", ".ts", ".pt2")):
        model = _factory(spec)()
        if not isinstance(model, nn.Module):
            raise ValueError(f"spectral_xai audit: option 'model': {spec!r} returned {type(model).__name__}, "
                             "not an nn.Module")
    elif Path(spec).is_file() and spec.endswith(".pt2"):
        if cfg.dtype != "float32" or cfg.weights is not None:
            raise ValueError("spectral_xai audit: option 'model': an exported .pt2 program runs as exported "
                             "(float32, its own weights); drop --dtype/--weights")
        model = ExportedModel(torch.export.load(spec).module(), device)
    elif Path(spec).is_file():
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)       # torch.jit is deprecated, still supported
            model = torch.jit.load(spec, map_location="cpu")
    else:
        raise ValueError(f"spectral_xai audit: option 'model': expected 'efficientnet-lite0', 'module:factory', "
                         f"'file.py:factory', a torch.export .pt2 file or a TorchScript file, got {spec!r}")
    if cfg.weights is not None:
        state = torch.load(cfg.weights, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        model.load_state_dict(state)
    stats = (cfg.mean, cfg.std) if cfg.mean is not None else NORMALIZATIONS[cfg.normalize]
    if stats is not None:
        model = nn.Sequential(Normalize(*stats), model)
    return model.to(device=device, dtype=getattr(torch, cfg.dtype)).eval()
