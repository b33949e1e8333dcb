"""Signals and volumes in the engine's 4-D layout (docs/methods.md §1, "Signals and volumes").

The fused ``perturb`` / ``accumulate_`` ops work on (N, C, H, W) tensors and key the noise by the logical
element index, so a (B, C, L) signal runs as (B, C, 1, L) and a (B, C, D, H, W) volume as (B, C, D·H, W):
the same elements in the same order (the same noise, bit for bit, as a flat index), only the view differs.
The model sees its own layout through :class:`NDInput`; images (B, C, H, W) run unchanged.
"""
from __future__ import annotations

import torch
from torch import nn

from .. import _validation as V


def as_4d(x: torch.Tensor) -> torch.Tensor:
    """(B, C, L) -> (B, C, 1, L); (B, C, D, H, W) -> (B, C, D·H, W); (B, C, H, W) unchanged."""
    if x.dim() == 4:
        return x
    if x.dim() == 3:
        return x.unsqueeze(2)
    return x.reshape(x.shape[0], x.shape[1], -1, x.shape[-1])


class NDInput(nn.Module):
    """``model`` called on 4-D engine rows (N, C, H', W) reshaped to its own (N, C, *spatial)."""

    def __init__(self, model, spatial: tuple):
        super().__init__()
        self.model, self.spatial = model, tuple(spatial)

    def forward(self, x: torch.Tensor):
        return self.model(x.reshape(x.shape[0], x.shape[1], *self.spatial))


def check_model_rank(model, spatial: tuple) -> None:
    """x's map axes must suit the model's convolutions, where it has some: one of them must take len(spatial)
    map axes (Conv1d: (L,), Conv2d: (H, W), Conv3d: (D, H, W)); a (C, H, W) image without its batch axis
    would otherwise pass for a batch of signals."""
    if not isinstance(model, nn.Module):
        return
    ranks = {m.weight.dim() - 2: type(m).__name__ for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)}
    if ranks and len(spatial) not in ranks:
        r, name = next(iter(ranks.items()))
        shape = {1: "(B, C, L)", 2: "(B, C, H, W)", 3: "(B, C, D, H, W)"}.get(r, "")
        V.fail("x", f"has {len(spatial)} map axes {tuple(spatial)}, but the model's convolutions ({name}) take "
                    f"{r}: expected {shape} inputs")
