"""Inconsistency of explanations across noise scales (docs/methods.md §6, ECCV24 App. H), as intended.

Maps are down-sampled by area averaging (default factor 5), flattened and divided by their L2 norm.
The authors' code multiplied sums in an einsum instead of taking a cosine and typed μ² as 2μ; these
are the measures they describe.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import _validation as V
from ..options import output_dtype
from ..ops.spectrum import rank_normalize

C1, C2 = 0.01**2, 0.03**2


def _prepare(maps: torch.Tensor, downsample: int) -> torch.Tensor:
    """(B, S, H, W) -> (B, S, N) float64: area-down-sampled, flattened maps (N >= 2 pixels)."""
    if not isinstance(maps, torch.Tensor):
        V.fail("per_sigma_maps", f"expected a torch.Tensor, got {type(maps).__name__}", TypeError)
    if not maps.is_floating_point():
        V.fail("per_sigma_maps", f"expected floating maps, got {maps.dtype}", TypeError)
    if maps.dim() != 4:
        V.fail("per_sigma_maps", f"expected a (B, S, H, W) tensor, got shape {tuple(maps.shape)}")
    if maps.shape[1] < 2:
        V.fail("per_sigma_maps", "needs at least two scales (S >= 2)")
    if not bool(torch.isfinite(maps).all()):
        V.fail("per_sigma_maps", "contains NaN or Inf values")
    V.check_positive_int(downsample, "downsample")
    B, S, H, W = maps.shape
    size = (H // downsample, W // downsample)
    if size[0] * size[1] < 2:
        V.fail("downsample", f"{downsample} leaves {size[0]} x {size[1]} pixels of {H} x {W} maps (at least 2 "
                             f"are needed; use a smaller downsample)")
    m = maps.detach().to(torch.float64)
    if downsample > 1:
        m = F.adaptive_avg_pool2d(m.reshape(B * S, 1, H, W), size).reshape(B, S, *size)
    return m.flatten(2)


def _unit(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, S, N) -> vectors divided by their L2 norm (zero vectors stay zero), (B, S) bool: is zero."""
    norm = m.norm(dim=2, keepdim=True)
    zero = norm == 0
    return torch.where(zero, 0.0, m / norm.clamp_min(torch.finfo(torch.float64).tiny)), zero.squeeze(2)


def inconsistency(per_sigma_maps: torch.Tensor, *, measure: str = "cosine", downsample: int = 5) -> torch.Tensor:
    """How much the maps at σ_1..σ_{S−1} differ from the map at σ_0 (docs/methods.md §6).

    cosine: 1 − mean_{t>0} cos(M_0, M_t) (0 for identical maps, 1 for non-negative maps with disjoint supports;
    two all-zero maps have cosine 1, an all-zero and a non-zero map 0).  dssim: mean_{t>0} (1 − l·c)/2 with the
    SSIM luminance l = (2μ_0μ_t + c1) / (μ_0² + μ_t² + c1) and contrast c = (2σ_0σ_t + c2) / (σ_0² + σ_t² + c2)
    of the flattened maps (c1 = 0.01², c2 = 0.03²).  Computed in float64.

    Args:
        per_sigma_maps: (B, S, H, W).
        measure: "cosine" or "dssim".
        downsample: a positive int that leaves at least 2 pixels.

    Returns:
        (B,) float64 for float64 maps, else float32.

    Example:
        >>> sx.inconsistency(torch.rand(2, 3, 10, 10)).shape
        torch.Size([2])
    """
    m, zero = _unit(_prepare(per_sigma_maps, downsample))
    ref, rest = m[:, :1], m[:, 1:]
    if measure == "cosine":
        cos = (ref * rest).sum(dim=2) + (zero[:, :1] & zero[:, 1:]).to(torch.float64)
        out = 1 - cos.mean(dim=1)
    elif measure == "dssim":
        mu0, mut = ref.mean(dim=2), rest.mean(dim=2)
        sd0, sdt = ref.std(dim=2, correction=0), rest.std(dim=2, correction=0)
        lum = (2 * mu0 * mut + C1) / (mu0**2 + mut**2 + C1)
        con = (2 * sd0 * sdt + C2) / (sd0**2 + sdt**2 + C2)
        out = ((1 - lum * con) / 2).mean(dim=1)
    else:
        V.fail("measure", f"expected 'cosine' or 'dssim', got {measure!r}")
    return out.to(output_dtype(per_sigma_maps))


def scale_rank_correlation(per_sigma_maps: torch.Tensor, *, downsample: int = 1) -> torch.Tensor:
    """Spearman rank correlation between the maps of every pair of scales (docs/methods.md §6).

    Low off-diagonal values are the Rashomon effect of ECCV24 Prop. 1: equally valid explanations at different
    scales rank pixels differently.  A constant map has no ranking: its correlation with another constant map
    (and itself) is 1, with a non-constant map 0.

    Args:
        per_sigma_maps: (B, S, H, W).
        downsample: a positive int.

    Returns:
        (B, S, S), float64 for float64 maps, else float32.

    Example:
        >>> sx.scale_rank_correlation(torch.rand(2, 3, 10, 10)).shape
        torch.Size([2, 3, 3])
    """
    m = _prepare(per_sigma_maps, downsample)
    B, S, N = m.shape
    r = rank_normalize(m.reshape(B * S, 1, N)).reshape(B, S, N)   # average ranks / N (ties averaged)
    r, const = _unit(r - r.mean(dim=2, keepdim=True))
    rho = r @ r.transpose(1, 2) + (const.unsqueeze(2) & const.unsqueeze(1)).to(torch.float64)
    return rho.to(output_dtype(per_sigma_maps))
