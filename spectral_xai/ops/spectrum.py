"""``torch.ops.spectral_xai.rank_normalize`` and ``torch.ops.spectral_xai.radial_power_spectrum``.

rank_normalize: maps (B, ...) -> same shape, average ranks (ties averaged) / N per map (N the elements
of one map), equal to ``scipy.stats.rankdata(m, "average") / N``; same dtype; a NaN raises (it has no
rank).  CPU: an O(N) radix sort of order-preserving float keys (comparison sort for float64); CUDA:
ATen's sort.

radial_power_spectrum: maps (B, L), (B, H, W) or (B, D, H, W) -> (B, K) with P = |FFTn(m)|² over the
map axes (no mean removal, no window), the integer radius k = floor(sqrt(Σ_i c_i²)) of the frequency
indices c_i centred at n_i//2 as after fftshift, S_k = mean of P over shell k and K = max k + 1
(159 at 224², L//2 + 1 for a 1-D signal of length L); docs/methods.md §7.  The real FFT's half
spectrum is used (its mirror columns folded in), accumulated in float64; float64 out for float64
maps, else float32.  Neither op is differentiable (they are measures of finished maps).
"""
from __future__ import annotations

import math

import torch


def radial_bins(*sizes: int) -> int:
    """K = floor(sqrt(Σ_i (n_i//2)²)) + 1 shells for a map of axes sizes n_1, ..., n_d."""
    return math.isqrt(sum((int(n) // 2) ** 2 for n in sizes)) + 1


def rank_normalize(maps: torch.Tensor) -> torch.Tensor:
    """Compiled op (CPU and CUDA kernels); see the module docstring."""
    return torch.ops.spectral_xai.rank_normalize(maps)


def radial_power_spectrum(maps: torch.Tensor) -> torch.Tensor:
    """Compiled op (CPU and CUDA kernels); see the module docstring."""
    return torch.ops.spectral_xai.radial_power_spectrum(maps)


@torch.library.register_fake("spectral_xai::rank_normalize")
def _rank_fake(maps):
    torch._check(maps.dim() >= 2, lambda: "spectral_xai: argument 'maps': expected (B, ...) maps")
    return torch.empty_like(maps, memory_format=torch.contiguous_format)


@torch.library.register_fake("spectral_xai::radial_power_spectrum")
def _radial_fake(maps):
    torch._check(2 <= maps.dim() <= 4,
                 lambda: "spectral_xai: argument 'maps': expected (B, L), (B, H, W) or (B, D, H, W)")
    dtype = torch.float64 if maps.dtype == torch.float64 else torch.float32
    return maps.new_empty((maps.shape[0], radial_bins(*(int(n) for n in maps.shape[1:]))), dtype=dtype)


def rank_normalize_reference(maps: torch.Tensor) -> torch.Tensor:
    """Pure-PyTorch reference: average ranks / N per map, ties averaged.  (B, ...) -> same shape."""
    flat = maps.reshape(maps.shape[0], -1)
    out = torch.empty(flat.shape, dtype=torch.float64, device=maps.device)
    n = flat.shape[1]
    for r in range(flat.shape[0]):
        _, inverse, counts = torch.unique(flat[r], sorted=True, return_inverse=True, return_counts=True)
        ends = torch.cumsum(counts, 0).to(torch.float64)
        out[r] = (ends - (counts.to(torch.float64) - 1) / 2)[inverse] / n
    return out.reshape(maps.shape).to(maps.dtype)


def radial_power_spectrum_reference(maps: torch.Tensor) -> torch.Tensor:
    """Pure-PyTorch reference: full FFT over the map axes, fftshift, integer radius, shell means.
    (B, L), (B, H, W) or (B, D, H, W) -> (B, K)."""
    B, *sizes = maps.shape
    dims = tuple(range(1, maps.dim()))
    dtype = torch.float64 if maps.dtype == torch.float64 else torch.float32
    power = torch.fft.fftshift(torch.fft.fftn(maps.to(torch.float64), dim=dims).abs() ** 2, dim=dims)
    axes = torch.meshgrid(*[torch.arange(n, device=maps.device) - n // 2 for n in sizes], indexing="ij")
    r2 = sum(a ** 2 for a in axes)
    k = torch.sqrt(r2.to(torch.float64)).floor().to(torch.int64)
    k = k - (k * k > r2).to(torch.int64) + ((k + 1) * (k + 1) <= r2).to(torch.int64)  # exact isqrt
    K = radial_bins(*sizes)
    counts = torch.bincount(k.flatten(), minlength=K).to(torch.float64)
    sums = torch.zeros(B, K, dtype=torch.float64, device=maps.device).index_add_(1, k.flatten(), power.flatten(1))
    return (sums / counts).to(dtype)
