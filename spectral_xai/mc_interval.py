"""Confidence intervals for Monte Carlo means with skewed samples (docs/methods.md §11, "Intervals").

``skewness_corrected_interval(mean, var, third, dof, level)`` turns a sampled map's mean, the variance and the
third central moment of that estimate and the degrees of freedom into an interval with Hall's (1992)
skewness-removing transformation and Student-t quantiles; ``t_quantile`` is the Student-t quantile it uses
(Hill's 1970 approximation, so that scipy stays optional)."""
from __future__ import annotations

import math
import numbers

import torch

from ._validation import fail


def t_quantile(p: torch.Tensor, dof: torch.Tensor) -> torch.Tensor:
    """Student-t quantile t_dof(p) for p in (0, 1), dof ≥ 1 (real), broadcast, float64.

    Exact for dof = 1 (Cauchy) and dof = 2; otherwise Hill's approximation (Algorithm 396, 1970), relative error
    below 1e-4 (checked against scipy in the tests); dof = inf gives the normal quantile."""
    p, dof = torch.broadcast_tensors(torch.as_tensor(p, dtype=torch.float64),
                                     torch.as_tensor(dof, dtype=torch.float64, device=torch.as_tensor(p).device))
    sign = torch.where(p < 0.5, -1.0, 1.0).to(p)
    tail = 2 * torch.minimum(p, 1 - p)                       # two-sided tail probability P in (0, 1]
    n = dof.clamp(min=1.0)
    nf = torch.where(torch.isinf(n), 1e300, n)               # finite stand-in, replaced by the normal quantile
    cauchy = 1 / torch.tan(tail * (math.pi / 2))
    two = torch.sqrt(2 / (tail * (2 - tail)) - 2)
    a = 1 / (nf - 0.5)
    b = 48 / (a * a)
    c = ((20700 * a / b - 98) * a - 16) * a + 96.36
    d = ((94.5 / (b + c) - 3) / b + 1) * torch.sqrt(a * (math.pi / 2)) * nf
    y = torch.pow(d * tail, 2 / nf)
    # central part: an expansion about the normal quantile
    x = torch.special.ndtri(tail / 2)
    c2 = c + torch.where(nf < 5, 0.3 * (nf - 4.5) * (x + 0.6), torch.zeros_like(c))
    c2 = (((0.05 * d * x - 5) * x - 7) * x - 2) * x + b + c2
    yc = (((((0.4 * x * x + 6.3) * x * x + 36) * x * x + 94.5) / c2 - x * x - 3) / b + 1) * x
    central = torch.sqrt(nf * torch.expm1(a * yc * yc))
    # far tail: Hill's tail series
    yt = ((1 / (((nf + 6) / (nf * y) - 0.089 * d - 0.822) * (nf + 2) * 3) + 0.5 / (nf + 4)) * y - 1) \
        * (nf + 1) / (nf + 2) + 1 / y
    far = torch.sqrt(nf * yt)
    q = torch.where(y > 0.05 + a, central, far)
    q = torch.where(n == 2, two, torch.where(n == 1, cauchy, q))
    q = torch.where(torch.isinf(n), -torch.special.ndtri(tail / 2), q)
    return sign * q


def hall_inverse(t: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Inverse of Hall's transformation g(T) = T + aT²/3 + a²T³/27 + a/6, float64, broadcast:
    g⁻¹(t) = (3/a)(∛(1 + a(t − a/6)) − 1), written as 3(t − a/6)/(c² + c + 1) with c = ∛(1 + a(t − a/6))
    so that a = 0 gives t exactly; ∛ is the real cube root (negative for a negative argument)."""
    s = t - a / 6
    u = 1 + a * s
    c = torch.sign(u) * u.abs().pow(1 / 3)
    return 3 * s / (c * c + c + 1)


def skewness_cap(q: torch.Tensor) -> torch.Tensor:
    """The largest |a| for quantile q ≥ 0: 2/(q + sqrt(q² + 2/3)), the root of 1 − |a|q − a²/6 = 0, where the
    cube root's argument at the far end of the interval reaches 0. Up to it the interval widens with |a|;
    beyond it Hall's transformation would narrow the interval again."""
    return 2 / (q + torch.sqrt(q * q + 2 / 3))


def check_level(level) -> float:
    """level must be a real number in (0, 1)."""
    if isinstance(level, bool) or not isinstance(level, numbers.Real):
        fail("level", f"expected a number in (0, 1), got {type(level).__name__}", TypeError)
    if not 0 < float(level) < 1:
        fail("level", f"expected a number in (0, 1), got {level!r}")
    return float(level)


def skewness_corrected_interval(mean, var, third, dof, level: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Two-sided ``level`` interval (lo, hi) for the true mean of a Monte Carlo estimate (docs/methods.md §11).

    mean, var, third: the estimate, its variance (se²) and its third central moment (k3/n² for a mean of n
    samples with unbiased cumulants k2, k3); dof: degrees of freedom (n − 1). All broadcast together (e.g. maps
    (B, H, W) with dof (B, 1, 1)). With the estimate's skewness a = third/var^1.5, capped at
    ``skewness_cap(q)``, and q the Student-t(dof) quantile of (1 + level)/2:
    lo = mean − se·g⁻¹(q), hi = mean − se·g⁻¹(−q) (``hall_inverse``). a = 0 gives the Student-t interval;
    var = 0 gives lo = hi = mean; dof < 1 gives (−inf, inf). Computed in float64, returned in the dtype of
    ``mean`` (float64 for a non-floating mean)."""
    level = check_level(level)
    for name, arg in (("mean", mean), ("var", var), ("third", third), ("dof", dof)):
        if not isinstance(arg, (torch.Tensor, numbers.Real)) or isinstance(arg, bool):
            fail(name, f"expected a tensor or a number, got {type(arg).__name__}", TypeError)
    out_dtype = mean.dtype if isinstance(mean, torch.Tensor) and mean.is_floating_point() else torch.float64
    device = next((arg.device for arg in (mean, var, third, dof) if isinstance(arg, torch.Tensor)), None)
    m, v, k, n = (torch.as_tensor(x, dtype=torch.float64, device=device) for x in (mean, var, third, dof))
    m, v, k, n = torch.broadcast_tensors(m, v, k, n)
    if bool((v < 0).any()):
        fail("var", "has negative values")
    q = t_quantile(torch.full_like(n, 0.5 + level / 2), n.clamp(min=1.0))
    se = v.sqrt()
    positive = v > 0
    a = torch.where(positive, k / torch.where(positive, v * se, 1.0), 0.0)
    cap = skewness_cap(q)
    a = torch.maximum(torch.minimum(torch.nan_to_num(a), cap), -cap)
    lo = m - se * hall_inverse(q, a)
    hi = m - se * hall_inverse(-q, a)
    lo = torch.where(v == 0, m, lo)
    hi = torch.where(v == 0, m, hi)
    lo = torch.where(n < 1, -math.inf, lo)
    hi = torch.where(n < 1, math.inf, hi)
    return lo.to(out_dtype), hi.to(out_dtype)
