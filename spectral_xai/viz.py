"""Figures (matplotlib, headless): explanation maps next to their images."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch


def _matplotlib():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _display(m: torch.Tensor, signed: bool) -> tuple[torch.Tensor, dict]:
    """Clip a map at its 99.5th percentile of |m| for display; signed maps use a diverging map."""
    m = m.detach().float().cpu()
    hi = float(torch.quantile(m.abs().flatten(), 0.995)) or 1.0
    if signed:
        return m.clamp(-hi, hi), dict(cmap="coolwarm", vmin=-hi, vmax=hi)
    return m.clamp(0, hi), dict(cmap="inferno", vmin=0, vmax=hi)


def maps_figure(images: torch.Tensor, maps: Mapping[str, torch.Tensor], titles: Sequence[str] | None = None,
                path=None):
    """One row per image: the image (B, 3, H, W) in [0, 1], then each (B, H, W) map.

    Signed maps (with negative values) are drawn with a diverging colour map.  Returns the
    Figure; saves a PNG when ``path`` is given.
    """
    plt = _matplotlib()
    B = images.shape[0]
    cols = 1 + len(maps)
    fig, axes = plt.subplots(B, cols, figsize=(2.2 * cols, 2.2 * B), squeeze=False)
    for b in range(B):
        axes[b, 0].imshow(images[b].detach().float().cpu().permute(1, 2, 0).clamp(0, 1).numpy())
        axes[b, 0].set_title(titles[b] if titles else f"image {b}", fontsize=8)
        for c, (name, m) in enumerate(maps.items(), start=1):
            shown, kw = _display(m[b], signed=bool((m < 0).any()))
            axes[b, c].imshow(shown.numpy(), **kw)
            axes[b, c].set_title(name, fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
