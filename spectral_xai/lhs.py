"""Latin hypercube noise (``sampling="lhs"``): the n samples of one (image, σ) stratify every element.

Element e of sample i is ``Φ⁻¹((π_e(i) + U_{i,e}) / n)`` with ``π_e`` a random permutation of the n samples,
drawn independently per element, and ``U`` uniform.  Every sample is exactly N(0, I) (so every Monte Carlo
mean stays unbiased), while each element's n values cover the n quantile strata of N(0, 1) once: the variance
of the additive part of the statistic (one function per element, e.g. the terms linear in ε) is removed
(McKay et al. 1979; Owen 1992: never worse than n/(n − 1) × the i.i.d. variance).

The design of one (seed, image id, σ index, n, first sample index) is generated on the CPU in blocks of
``BLOCK`` elements by ``torch.Generator`` streams keyed by a hash of those numbers and the block index, so the
noise of a sample does not depend on the batch size, the chunking or the device.
"""
from __future__ import annotations

import hashlib

import torch

from .options import output_dtype

BLOCK = 4096
_TINY = 2.0**-54


def _generator(*key: int) -> torch.Generator:
    digest = hashlib.blake2b(repr(("spectral_xai.lhs", *key)).encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & ((1 << 63) - 1))


def lhs_design(seed: int, image_id: int, sigma_index: int, n: int, numel: int, offset: int = 0) -> torch.Tensor:
    """(n, numel) float32 Latin hypercube standard normals on the CPU (see the module docstring)."""
    out = torch.empty(n, numel, dtype=torch.float32)
    for blk, e0 in enumerate(range(0, numel, BLOCK)):
        e1 = min(numel, e0 + BLOCK)
        g = _generator(seed, image_id, sigma_index, n, offset, blk)
        perm = torch.argsort(torch.rand(n, e1 - e0, generator=g, dtype=torch.float64), dim=0, stable=True)
        u = (perm.to(torch.float64) + torch.rand(n, e1 - e0, generator=g, dtype=torch.float64) + _TINY) / n
        out[:, e0:e1] = torch.special.ndtri(u)
    return out


class LatinHypercubeNoise:
    """Perturbed rows with Latin hypercube noise, the designs cached per (image slot, σ index) slot.

    ``limits`` (P,) int64: the samples of each slot (the design size n); ``offset``: the sample index of the
    design's first row.  A slot's design is dropped once its last row has been produced (rows come in
    (image, σ, sample) order, every slot exactly once: no adaptive stopping).
    """

    def __init__(self, seed: int, image_ids: torch.Tensor, limits: torch.Tensor, num_sigmas: int, offset: int = 0):
        self.seed, self.ids, self.limits = seed, image_ids.cpu(), limits.cpu()
        self.S, self.offset = num_sigmas, offset
        self.cache: dict[int, torch.Tensor] = {}

    def perturb(self, x: torch.Tensor, rows: torch.Tensor, sigmas: torch.Tensor, scales: torch.Tensor,
                mixing: str) -> torch.Tensor:
        """x (B, C, H, W) in the model's dtype and format; rows (N, 3) -> (N, C, H, W) as ``ops.perturb``."""
        numel = x[0].numel()
        acc = output_dtype(x)
        rows_h = rows.cpu()
        eps = torch.empty(rows_h.shape[0], numel, dtype=torch.float32)
        slot = rows_h[:, 0] * self.S + rows_h[:, 1]
        for s in torch.unique_consecutive(slot).tolist():
            sel = (slot == s).nonzero().view(-1)
            b, j = divmod(s, self.S)
            n = int(self.limits[s])
            design = self.cache.get(s)
            if design is None:
                design = lhs_design(self.seed, int(self.ids[b]), j, n, numel, self.offset)
                self.cache[s] = design
            i = rows_h[sel, 2] - self.offset
            eps[sel] = design[i]
            if int(i.max()) == n - 1:
                del self.cache[s]
        sig = sigmas.to(torch.float64)[rows[:, 1]]
        a = torch.ones_like(sig) if mixing == "additive" else 1.0 - sig
        c = sig * scales.to(torch.float64)[rows[:, 0]]
        view = (-1, 1, 1, 1)
        xb = x[rows[:, 0]].to(acc)
        noise = eps.to(device=x.device, dtype=acc).view(-1, *x.shape[1:])
        out = a.to(acc).view(view) * xb + c.to(acc).view(view) * noise
        fmt = torch.channels_last if (x.is_contiguous(memory_format=torch.channels_last)
                                      and not x.is_contiguous()) else torch.contiguous_format
        return out.to(x.dtype).contiguous(memory_format=fmt)
