"""``torch.ops.spectral_xai.perturb``: Philox noise + mixing written into the perturbed batch.

For output row ``r`` with ``(b, j, i) = rows[r]`` (image slot, sigma index, sample index)::

    additive: out[r] = x[b] + (sigmas[j] * scales[b]) * eps
    convex:   out[r] = (1 - sigmas[j]) * x[b] + (sigmas[j] * scales[b]) * eps
    damping:  out[r] = (1 - sigmas[j]) * x[b] + sigmas[j] * baseline[b]      (no noise)

``eps`` is standard normal noise keyed by ``(seed, image_ids[b], j, i, element)`` where the
element is the logical (C, H, W) index, so the noise does not depend on the memory format,
the batch layout or the device.  Shapes: x (B, C, H, W); rows (N, 3) int64; sigmas (S,)
float64; scales (B,) float64; image_ids (B,) int64 in [0, 2^32); baseline (B, C, H, W) or
None (zeros); seed an int in [0, 2^64) (the Philox key).  Returns (N, C, H, W) in x's dtype
and memory format.  Coefficients are computed in float64 and cast to the compute type
(float32, or float64 for float64 x).
Differentiable in x and baseline (the output is linear in both; the noise is constant).
"""
from __future__ import annotations

import torch

from .. import _validation as V
from ..options import MIXINGS
from . import _philox


def perturb(x: torch.Tensor, rows: torch.Tensor, sigmas: torch.Tensor, scales: torch.Tensor,
            image_ids: torch.Tensor, baseline: torch.Tensor | None, seed: int, mixing: str) -> torch.Tensor:
    """Compiled op (CPU and CUDA kernels); see the module docstring.  ``seed`` in [0, 2^64)."""
    return torch.ops.spectral_xai.perturb(x, rows, sigmas, scales, image_ids, baseline, schema_seed(seed), mixing)


def schema_seed(seed: int) -> int:
    """The uint64 ``seed`` (checked, [0, 2^64)) as the op schema's int64: its two's complement bits.

    The kernels read the int64 back as uint64, so seeds from 2^63 up map to negative ints.
    """
    seed = V.check_seed(seed)
    return seed - 2**64 if seed >= 2**63 else seed


@torch.library.register_fake("spectral_xai::perturb")
def _perturb_fake(x, rows, sigmas, scales, image_ids, baseline, seed, mixing):
    torch._check(x.dim() == 4, lambda: "spectral_xai: argument 'x': expected a 4-D tensor")
    torch._check(rows.dim() == 2 and rows.shape[1] == 3, lambda: "spectral_xai: argument 'rows': expected (N, 3)")
    fmt = torch.channels_last if (x.is_contiguous(memory_format=torch.channels_last)
                                  and not x.is_contiguous()) else torch.contiguous_format
    return x.new_empty((rows.shape[0], *x.shape[1:])).contiguous(memory_format=fmt)


def _row_coefficients(rows, sigmas, scales, mixing, dtype):
    """Per-row (a, c) of the mixing, shape (N,) each, computed in float64 as the kernels do."""
    sig = sigmas.to(torch.float64)[rows[:, 1]]
    a = torch.ones_like(sig) if mixing == "additive" else 1.0 - sig
    c = sig if mixing == "damping" else sig * scales.to(torch.float64)[rows[:, 0]]
    return a.to(dtype), c.to(dtype)


def _setup_context(ctx, inputs, output):
    x, rows, sigmas, scales, image_ids, baseline, seed, mixing = inputs
    ctx.save_for_backward(rows, sigmas, scales)
    ctx.mixing = mixing
    ctx.x_shape = x.shape
    ctx.has_baseline = baseline is not None


def _backward(ctx, grad_out):
    """out[r] is linear in x[b] (coefficient a_r) and in baseline[b] (c_r, damping only)."""
    rows, sigmas, scales = ctx.saved_tensors
    a, c = _row_coefficients(rows, sigmas, scales, ctx.mixing, grad_out.dtype)
    view = (-1, 1, 1, 1)
    grad_x = grad_out.new_zeros(ctx.x_shape).index_add_(0, rows[:, 0], grad_out * a.view(view))
    grad_base = None
    if ctx.has_baseline:
        grad_base = grad_out.new_zeros(ctx.x_shape).index_add_(0, rows[:, 0], grad_out * c.view(view))
    return grad_x, None, None, None, None, grad_base, None, None


torch.library.register_autograd("spectral_xai::perturb", _backward, setup_context=_setup_context)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def perturb_reference(x: torch.Tensor, rows: torch.Tensor, sigmas: torch.Tensor, scales: torch.Tensor,
                      image_ids: torch.Tensor, baseline: torch.Tensor | None, seed: int,
                      mixing: str) -> torch.Tensor:
    """Pure-PyTorch reference of :func:`perturb` (bit-identical on CPU)."""
    if mixing not in MIXINGS:
        raise ValueError(f"spectral_xai: argument 'mixing': expected one of {MIXINGS}, got {mixing!r}")
    acc = _compute_dtype(x.dtype)
    N = rows.shape[0]
    out = torch.empty((N, *x.shape[1:]), dtype=x.dtype, device=x.device)
    numel = x[0].numel() if x.shape[0] > 0 else 0
    for r in range(N):
        b, j, i = (int(v) for v in rows[r].tolist())
        sigma = float(sigmas[j])
        scale = float(scales[b])
        if mixing == "additive":
            a, c = 1.0, sigma * scale
        elif mixing == "convex":
            a, c = 1.0 - sigma, sigma * scale
        else:
            a, c = 1.0 - sigma, sigma
        a_t = torch.tensor(a, dtype=torch.float64).to(acc)
        c_t = torch.tensor(c, dtype=torch.float64).to(acc)
        xv = x[b].to(acc)
        if mixing == "damping":
            second = torch.zeros_like(xv) if baseline is None else baseline[b].to(acc)
        else:
            second = _philox.normal_noise(seed, int(image_ids[b]), j, i, numel, x.device)
            second = second.reshape(x.shape[1:]).to(acc)
        out[r] = (a_t * xv + c_t * second).to(x.dtype)
    fmt = torch.channels_last if (x.is_contiguous(memory_format=torch.channels_last)
                                  and not x.is_contiguous()) else torch.contiguous_format
    return out.contiguous(memory_format=fmt)
