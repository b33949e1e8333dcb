"""Inconsistency of explanations across noise scales (SPEC §6, ECCV24 App. H), as intended.

Maps are divided by their L2 norm, down-sampled by area averaging (default factor 5) and flattened.
The authors' code multiplied sums in an einsum instead of taking a cosine and typed μ² as 2μ; these
are the measures they describe.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import _validation as V
from ..ops.spectrum import rank_normalize

C1, C2 = 0.01**2, 0.03**2


def _prepare(maps: torch.Tensor, downsample: int) -> torch.Tensor:
    """(B, S, H, W) -> (B, S, N) float64: L2-normalised, area-down-sampled, flattened maps."""
    if not isinstance(maps, torch.Tensor) or maps.dim() != 4:
        V.fail("per_sigma_maps", f"expected a (B, S, H, W) tensor, got {getattr(maps, 'shape', type(maps))}")
    if maps.shape[1] < 2:
        V.fail("per_sigma_maps", "needs at least two scales (S >= 2)")
    m = maps.detach().to(torch.float64)
    if downsample > 1:
        B, S, H, W = m.shape
        size = (max(1, H // downsample), max(1, W // downsample))
        m = F.adaptive_avg_pool2d(m.reshape(B * S, 1, H, W), size).reshape(B, S, *size)
    m = m.flatten(2)
    return m / m.norm(dim=2, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)


def inconsistency(per_sigma_maps: torch.Tensor, *, measure: str = "cosine", downsample: int = 5) -> torch.Tensor:
    """(B, S, H, W) -> (B,): how much the maps at σ_1..σ_{S−1} differ from the map at σ_0.

    cosine: 1 − mean_{t>0} cos(M_0, M_t) (0 for identical maps, 1 for non-negative maps with
    disjoint supports).  dssim: mean_{t>0} (1 − l·c)/2 with the SSIM luminance l = (2μ_0μ_t + c1) /
    (μ_0² + μ_t² + c1) and contrast c = (2σ_0σ_t + c2) / (σ_0² + σ_t² + c2) of the flattened maps
    (c1 = 0.01², c2 = 0.03²).
    """
    m = _prepare(per_sigma_maps, downsample)
    ref, rest = m[:, :1], m[:, 1:]
    if measure == "cosine":
        return 1 - (ref * rest).sum(dim=2).mean(dim=1)
    if measure == "dssim":
        mu0, mut = ref.mean(dim=2), rest.mean(dim=2)
        sd0, sdt = ref.std(dim=2, correction=0), rest.std(dim=2, correction=0)
        lum = (2 * mu0 * mut + C1) / (mu0**2 + mut**2 + C1)
        con = (2 * sd0 * sdt + C2) / (sd0**2 + sdt**2 + C2)
        return ((1 - lum * con) / 2).mean(dim=1)
    V.fail("measure", f"expected 'cosine' or 'dssim', got {measure!r}")


def scale_rank_correlation(per_sigma_maps: torch.Tensor, *, downsample: int = 1) -> torch.Tensor:
    """Spearman rank correlation between the maps of every pair of scales: (B, S, H, W) -> (B, S, S).

    Low off-diagonal values are the Rashomon effect of ECCV24 Prop. 1: equally valid explanations at
    different scales rank pixels differently."""
    m = _prepare(per_sigma_maps, downsample)
    B, S, N = m.shape
    r = rank_normalize(m.reshape(B * S, 1, N)).reshape(B, S, N)   # average ranks / N (ties averaged)
    r = r - r.mean(dim=2, keepdim=True)
    r = r / r.norm(dim=2, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
    return r @ r.transpose(1, 2)
