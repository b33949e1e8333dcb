"""Skewness-corrected intervals for Monte Carlo means (docs/methods.md §11).

Hall's (1992) transformation removes the skewness a = κ3 / var^(3/2) of a studentised mean: with g⁻¹(t) =
3/a · (cbrt(1 + a (t − a/6)) − 1) (→ t as a → 0) and q the Student-t quantile with ``dof`` degrees of
freedom, the interval is (mean − se·g⁻¹(q), mean − se·g⁻¹(−q)).
"""
from __future__ import annotations

import math

import torch

from . import _validation as V


def student_t_quantile(p: torch.Tensor, dof: torch.Tensor) -> torch.Tensor:
    """Quantile of Student's t at probability p in (0.5, 1) with dof >= 1 degrees of freedom (float64,
    broadcast; inf: the normal quantile): Hill's (1970) approximation, Algorithm 396 (relative error < 2e-5
    from ν = 2.5 on); below 2.5 the closed forms of ν = 1 and ν = 2, a fractional ν rounded down to them (a
    wider interval).  torch has no t quantile and scipy is not a dependency of the library."""
    p = torch.as_tensor(p, dtype=torch.float64)
    nu = torch.as_tensor(dof, dtype=torch.float64, device=p.device)
    p, nu = torch.broadcast_tensors(p, nu)
    n = torch.where(torch.isfinite(nu), nu.clamp(min=1), torch.full_like(nu, 1e6))
    two_sided = 2 * (1 - p)
    a = 1 / (n - 0.5)
    b = 48 / (a * a)
    c = ((20700 * a / b - 98) * a - 16) * a + 96.36
    d = ((94.5 / (b + c) - 3) / b + 1) * torch.sqrt(a * math.pi / 2) * n
    x = d * two_sided
    y = x.pow(2 / n)
    # the tail expansion (moderate p, larger n)
    z = torch.special.ndtri(two_sided / 2)
    cz = torch.where(n < 5, c + 0.3 * (n - 4.5) * (z + 0.6), c)
    cz = (((0.05 * d * z - 5) * z - 7) * z - 2) * z + b + cz
    yz = z * z
    yz = (((((0.4 * yz + 6.3) * yz + 36) * yz + 94.5) / cz - yz - 3) / b + 1) * z
    tail = torch.expm1(a * yz * yz)
    # the small-probability branch
    small = ((1 / (((n + 6) / (n * y) - 0.089 * d - 0.822) * (n + 2) * 3) + 0.5 / (n + 4)) * y - 1) \
        * (n + 1) / (n + 2) + 1 / y
    q = torch.sqrt(n * torch.where(y > 0.05 + a, tail, small))
    one = torch.tan(math.pi * (p - 0.5))                   # ν = 1 and ν = 2 in closed form
    two = (2 * p - 1) * torch.sqrt(2 / (4 * p * (1 - p)))
    q = torch.where(n < 2, one, torch.where(n < 2.5, two, q))
    return torch.where(torch.isfinite(nu), q, torch.special.ndtri(p))


def _ginv(t: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Hall's inverse transformation 3/a (cbrt(1 + a (t − a/6)) − 1), t where a == 0."""
    u = 1 + a * (t - a / 6)
    cbrt = torch.sign(u) * u.abs().pow(1.0 / 3.0)
    safe = torch.where(a != 0, a, torch.ones_like(a))
    return torch.where(a != 0, 3 / safe * (cbrt - 1), t)


def skewness_corrected_interval(mean: torch.Tensor, var: torch.Tensor, third: torch.Tensor, dof: torch.Tensor,
                                level: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """(lo, hi) like ``mean``: mean, var (se²) and third (the estimate's third central moment) broadcast
    together, dof (broadcastable) > 0; level in (0, 1).  Where var == 0: lo = hi = mean."""
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        V.fail("level", f"expected a number in (0, 1), got {level!r}")
    mean, var, third = (torch.as_tensor(t, dtype=torch.float64) for t in (mean, var, third))
    var = var.clamp(min=0)
    se = var.sqrt()
    pos = var > 0
    a = torch.where(pos, third / torch.where(pos, var, torch.ones_like(var)).pow(1.5), torch.zeros_like(var))
    dof = torch.as_tensor(dof, dtype=torch.float64, device=mean.device)
    q = student_t_quantile(torch.tensor(0.5 + level / 2, dtype=torch.float64, device=mean.device), dof)
    q = q.expand_as(a) if q.dim() <= a.dim() else q
    lo = torch.where(pos, mean - se * _ginv(q, a), mean)
    hi = torch.where(pos, mean - se * _ginv(-q, a), mean)
    return lo, hi
