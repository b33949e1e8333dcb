"""Pure-PyTorch mirror of ``csrc/ops/common/philox.h`` (the test oracle for the noise).

Every operation is the same IEEE float32 operation, in the same order, as the C++/CUDA code,
so the values are bit-identical.  Integers are held in int64 tensors and masked to 32 bits.
"""
from __future__ import annotations

import torch

_MASK = 0xFFFFFFFF
_M0, _M1 = 0xD2511F53, 0xCD9E8D57
_W0, _W1 = 0x9E3779B9, 0xBB67AE85

_F = {name: float.fromhex(h) for name, h in {
    "inv3": "0x1.555556p-2", "inv5": "0x1.99999ap-3", "inv7": "0x1.24924ap-3", "inv9": "0x1.c71c72p-4",
    "ln2": "0x1.62e430p-1", "sqrt2": "0x1.6a09e6p+0", "half_pi": "0x1.921fb6p+0",
    "s3": "0x1.555556p-3", "s5": "0x1.111112p-7", "s7": "0x1.a01a02p-13", "s9": "0x1.71de3ap-19",
    "c4": "0x1.555556p-5", "c6": "0x1.6c16c2p-10", "c8": "0x1.a01a02p-16", "c10": "0x1.27e4fcp-22",
}.items()}


def _mulhilo(a: int, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    p = b * a  # wraps modulo 2^64 in int64: the low 64 bits of the product are exact
    return (p >> 32) & _MASK, p & _MASK


def philox4x32_10(counter: list[torch.Tensor], key: tuple[int, int]) -> list[torch.Tensor]:
    """Philox4x32-10 on int64 tensors holding 32-bit words; ``key`` is two 32-bit ints."""
    c0, c1, c2, c3 = (c & _MASK for c in counter)
    k0, k1 = key
    for _ in range(10):
        hi0, lo0 = _mulhilo(_M0, c0)
        hi1, lo1 = _mulhilo(_M1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0, k1 = (k0 + _W0) & _MASK, (k1 + _W1) & _MASK
    return [c0, c1, c2, c3]


def _f32(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.float32)


def _log_f32(u: torch.Tensor) -> torch.Tensor:
    bits = u.view(torch.int32).to(torch.int64) & _MASK
    e = ((bits >> 23) & 0xFF) - 127
    m = ((bits & 0x7FFFFF) | 0x3F800000).to(torch.int32).view(torch.float32)
    big = m > _F["sqrt2"]
    m = torch.where(big, m * 0.5, m)
    e = e + big.to(torch.int64)
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    p = torch.full_like(s, _F["inv9"])
    p = p * s2 + _F["inv7"]
    p = p * s2 + _F["inv5"]
    p = p * s2 + _F["inv3"]
    p = p * s2 + 1.0
    ln_m = (s * 2.0) * p
    return ln_m + _f32(e) * _F["ln2"]


def _sincos_small(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a2 = a * a
    ps = torch.full_like(a, _F["s9"])
    ps = ps * a2 - _F["s7"]
    ps = ps * a2 + _F["s5"]
    ps = ps * a2 - _F["s3"]
    ps = ps * a2 + 1.0
    pc = torch.full_like(a, _F["c10"])
    pc = _F["c8"] - pc * a2
    pc = _F["c6"] - pc * a2
    pc = _F["c4"] - pc * a2
    pc = 0.5 - pc * a2
    return a * ps, 1.0 - pc * a2


def _box_muller(u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    uu = _f32(((u >> 9) << 1) | 1) * 2.0**-24
    # torch.sqrt on float32 CPU tensors is not always correctly rounded; the float64 square root
    # rounded to float32 is (53 >= 2*24 + 2), and equals the kernels' IEEE sqrt.
    r = torch.sqrt((_log_f32(uu) * -2.0).to(torch.float64)).to(torch.float32)
    q = v >> 30
    f = (_f32((v >> 8) & 0x3FFFFF) + 0.5) * 2.0**-22
    a = (f - 0.5) * _F["half_pi"]
    s, c = _sincos_small(a)
    cs = torch.where(q == 0, c, torch.where(q == 1, -s, torch.where(q == 2, -c, s)))
    sn = torch.where(q == 0, s, torch.where(q == 1, c, torch.where(q == 2, -s, -c)))
    return r * cs, r * sn


def normal_noise(seed: int, image_id: int, sigma_index: int, sample_index: int, numel: int,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """The ``numel`` standard normals (float32) of one (seed, image, sigma, sample) stream."""
    groups = (numel + 3) // 4
    g = torch.arange(groups, dtype=torch.int64, device=device)
    full = lambda v: torch.full_like(g, v & _MASK)  # noqa: E731
    seed &= (1 << 64) - 1
    w = philox4x32_10([g, full(sample_index), full(sigma_index), full(image_id)],
                      (seed & _MASK, (seed >> 32) & _MASK))
    z0, z1 = _box_muller(w[0], w[1])
    z2, z3 = _box_muller(w[2], w[3])
    return torch.stack([z0, z1, z2, z3], dim=1).reshape(-1)[:numel]
