"""``torch.ops.spectral_xai.rank_normalize`` and ``torch.ops.spectral_xai.radial_power_spectrum``.

rank_normalize: maps (B, H, W) -> (B, H, W), average ranks (ties averaged) / N per map, equal to
``scipy.stats.rankdata(m, "average") / N``; same dtype; a NaN raises (it has no rank).  CPU: an
O(N) radix sort of order-preserving float keys (comparison sort for float64); CUDA: ATen's sort.

radial_power_spectrum: maps (B, H, W) -> (B, K) with P = |FFT2(m)|² (no mean removal, no window),
k = floor(sqrt(u² + v²)) for the frequency indices centred at (H//2, W//2) as after fftshift,
S_k = mean of P over ring k and K = max k + 1 (159 at 224²).  The real FFT's half spectrum is
used (its mirror columns folded in), accumulated in float64; float64 out for float64 maps, else
float32.  Neither op is differentiable (they are measures of finished maps).
"""
from __future__ import annotations

import math

import torch


def radial_bins(H: int, W: int) -> int:
    """K = floor(sqrt((H//2)² + (W//2)²)) + 1 rings for an H x W map."""
    return math.isqrt((H // 2) ** 2 + (W // 2) ** 2) + 1


def rank_normalize(maps: torch.Tensor) -> torch.Tensor:
    """Compiled op (CPU and CUDA kernels); see the module docstring."""
    return torch.ops.spectral_xai.rank_normalize(maps)


def radial_power_spectrum(maps: torch.Tensor) -> torch.Tensor:
    """Compiled op (CPU and CUDA kernels); see the module docstring."""
    return torch.ops.spectral_xai.radial_power_spectrum(maps)


@torch.library.register_fake("spectral_xai::rank_normalize")
def _rank_fake(maps):
    torch._check(maps.dim() == 3, lambda: "spectral_xai: argument 'maps': expected (B, H, W)")
    return torch.empty_like(maps, memory_format=torch.contiguous_format)


@torch.library.register_fake("spectral_xai::radial_power_spectrum")
def _radial_fake(maps):
    torch._check(maps.dim() == 3, lambda: "spectral_xai: argument 'maps': expected (B, H, W)")
    dtype = torch.float64 if maps.dtype == torch.float64 else torch.float32
    return maps.new_empty((maps.shape[0], radial_bins(int(maps.shape[1]), int(maps.shape[2]))), dtype=dtype)


def rank_normalize_reference(maps: torch.Tensor) -> torch.Tensor:
    """Pure-PyTorch reference: average ranks / N per map, ties averaged.  (..., H, W) -> same shape."""
    flat = maps.reshape(-1, maps.shape[-2] * maps.shape[-1])
    out = torch.empty(flat.shape, dtype=torch.float64, device=maps.device)
    n = flat.shape[1]
    for r in range(flat.shape[0]):
        _, inverse, counts = torch.unique(flat[r], sorted=True, return_inverse=True, return_counts=True)
        ends = torch.cumsum(counts, 0).to(torch.float64)
        out[r] = (ends - (counts.to(torch.float64) - 1) / 2)[inverse] / n
    return out.reshape(maps.shape).to(maps.dtype)


def radial_power_spectrum_reference(maps: torch.Tensor) -> torch.Tensor:
    """Pure-PyTorch reference: full FFT, fftshift, integer radius, ring means.  (B, H, W) -> (B, K)."""
    B, H, W = maps.shape
    dtype = torch.float64 if maps.dtype == torch.float64 else torch.float32
    power = torch.fft.fftshift(torch.fft.fft2(maps.to(torch.float64)).abs() ** 2, dim=(-2, -1))
    u = torch.arange(H, device=maps.device) - H // 2
    v = torch.arange(W, device=maps.device) - W // 2
    r2 = u.view(-1, 1) ** 2 + v.view(1, -1) ** 2
    k = torch.sqrt(r2.to(torch.float64)).floor().to(torch.int64)
    k = k - (k * k > r2).to(torch.int64) + ((k + 1) * (k + 1) <= r2).to(torch.int64)  # exact isqrt
    K = radial_bins(H, W)
    counts = torch.bincount(k.flatten(), minlength=K).to(torch.float64)
    sums = torch.zeros(B, K, dtype=torch.float64, device=maps.device).index_add_(1, k.flatten(), power.flatten(1))
    return (sums / counts).to(dtype)
