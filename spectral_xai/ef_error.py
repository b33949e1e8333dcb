"""The Expected Frequency of a sampled map from its G interleaved sample groups, with its own Monte Carlo
error (docs/methods.md §11, "EF from groups").

A sampled map m̂ = Σ_g c_g·m_g / n has G independent group means m_g (c_g samples each, n = Σ_g c_g).

- Unranked EF: the EF of the all-pairs group cross spectrum
  ``C = (|Σ_g c_g F_g|² − Σ_g c_g²·|F_g|²) / ((Σ_g c_g)² − Σ_g c_g²)`` (F_g the FFT of m_g, ring means as in
  docs/methods.md §7): only products of different, independent groups remain, so E[C] = |FFT(m)|² exactly.  With
  G = 2 it is the cross spectrum of the halves; with one sample per group it is the full U-statistic.
- Ranked EF (the paper's recipe, no unbiased form): the delete-a-group jackknife bias correction
  ``G·EF(m̂) − (G − 1)·mean_g EF(m̂_(−g))``, m̂_(−g) the map without group g; with G = 2 it is
  ``2·EF(m̂) − (EF(A) + EF(B))/2``.
- Standard error of either: the delete-a-group jackknife, ``se² = (G − 1)/G·Σ_g (θ_(−g) − mean θ_(−·))²``,
  θ_(−g) the same estimator on the G − 1 other groups (G − 1 degrees of freedom).  Where only two groups
  are left the leave-one-out estimate of the unranked EF has no cross spectrum; it is then the plug-in EF of
  the other group (so G = 2 gives the half-split |EF(A) − EF(B)|/2).

Empty groups (count 0) are left out; an image with fewer than 2 non-empty groups gets NaN.  All of it runs on
the maps' device without a host synchronisation, through the library's spectrum ops: 2G + 1 power spectra per
image unranked, G + 1 rank normalisations and spectra ranked.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from . import _validation as V
from .mc_interval import t_quantile
from .mc_stats import leave_one_group_out
from .options import EF_STOP_LEVEL
from .ops import spectrum as ops
from .spectrum import _check_maps, _check_ndim, _ef_of_spectrum

ESTIMATORS = {True: "bias-reduced rank EF (delete-a-group jackknife), jackknife standard error",
              False: "EF of the all-pairs group cross spectrum, delete-a-group jackknife standard error"}


@dataclass
class EFError:
    """ef (B,) float64: the estimate; stderr (B,) float64: its delete-a-group jackknife standard error;
    rel_error (B,): stderr / |ef| (inf where ef is 0); groups (B,) int64: the non-empty groups used;
    estimator: what ef and stderr are, in words."""

    ef: torch.Tensor
    stderr: torch.Tensor
    rel_error: torch.Tensor
    groups: torch.Tensor
    estimator: str

    def rel_halfwidth(self, level: float = EF_STOP_LEVEL) -> torch.Tensor:
        """(B,) relative half-width t_{G−1}((1 + level)/2)·stderr / |ef| of the Student-t interval of ``level``
        (G − 1 degrees of freedom): the EF stop's criterion (docs/methods.md §11)."""
        if not 0 < level < 1:
            V.fail("level", f"expected 0 < level < 1, got {level!r}")
        return relative_halfwidth(self.ef, self.stderr, self.groups, level)


def _check_groups(groups, counts, ndim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """groups (B, G, *spatial) floating, counts (B, G) integers >= 0 on the same device, G >= 2."""
    ndim = _check_ndim(ndim)
    if not isinstance(groups, torch.Tensor) or groups.dim() != ndim + 2:
        V.fail("groups", f"expected a (B, G, *spatial) tensor with {ndim} map axes (ndim={ndim}), got "
                         f"{tuple(groups.shape) if isinstance(groups, torch.Tensor) else type(groups).__name__}",
               TypeError if not isinstance(groups, torch.Tensor) else ValueError)
    B, G = groups.shape[:2]
    _check_maps(groups.reshape(B * G, *groups.shape[2:]), "groups", ndim)
    if G < 2:
        V.fail("groups", f"needs at least 2 sample groups, got {G}")
    if not isinstance(counts, torch.Tensor) or counts.is_floating_point() or counts.is_complex():
        V.fail("counts", "expected an integer tensor (B, G) of samples per group", TypeError)
    if tuple(counts.shape) != (B, G):
        V.fail("counts", f"expected shape ({B}, {G}), got {tuple(counts.shape)}")
    if counts.device != groups.device:
        V.fail("counts", f"is on {counts.device}, the groups on {groups.device}")
    return groups.detach().to(torch.float64), counts.to(torch.float64)


def _spectra(maps: torch.Tensor, ranked: bool) -> torch.Tensor:
    """Ring means (N, K) float64 of maps (N, *spatial) float64, rank-normalised first when ``ranked``."""
    return ops.radial_power_spectrum(ops.rank_normalize(maps) if ranked else maps)


def _leave_one_out(g: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """m̂ (B, *sp), the maps without each group (B, G, *sp) and the samples left n − c_g (B, G)."""
    n = c.sum(1)
    full = (c.view(*c.shape, *([1] * (g.dim() - 2))) * g).sum(1) / n.clamp(min=1).view(-1, *([1] * (g.dim() - 2)))
    return full, leave_one_group_out(g, c), n.view(-1, 1) - c


def _pair_spectrum(s_all: torch.Tensor, s_sq: torch.Tensor, total: torch.Tensor, sq: torch.Tensor) -> torch.Tensor:
    """(S(Σ c m)/N² − Σ c² S(m)/N²) / (1 − Σc²/N²) with s_all = S(Σ c m / N), s_sq = Σ c² S(m), N = total,
    sq = Σ c²: the all-pairs cross spectrum (.., K)."""
    t2 = (total * total).unsqueeze(-1)
    return (s_all - s_sq / t2) / (1 - sq.unsqueeze(-1) / t2)


def group_cross_spectrum(groups: torch.Tensor, counts: torch.Tensor, *, ndim: int = 2) -> torch.Tensor:
    """Ring means (B, K) float64 of the all-pairs group cross spectrum
    (|Σ_g c_g F_g|² − Σ_g c_g²|F_g|²) / ((Σc)² − Σc²) (docs/methods.md §11): unbiased for the power spectrum of
    the true mean map.  groups (B, G, *spatial), counts (B, G) (spatial: (L,), (H, W), (D, H, W) for ndim 1, 2, 3)."""
    g, c = _check_groups(groups, counts, ndim)
    B, G, sp = g.shape[0], g.shape[1], g.shape[2:]
    full, _, _ = _leave_one_out(g, c)
    spec = ops.radial_power_spectrum(torch.cat([g.reshape(B * G, *sp), full])).to(torch.float64)
    s_g, s_full = spec[:B * G].view(B, G, -1), spec[B * G:]
    return _pair_spectrum(s_full, (c * c).unsqueeze(-1).mul(s_g).sum(1), c.sum(1), (c * c).sum(1))


def _jackknife(theta: torch.Tensor, theta_loo: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """From θ (B,), θ_(−g) (B, G) and the non-empty groups (B, G): the bias-corrected G·θ − (G−1)·mean θ_(−g),
    the jackknife se and the number of groups G (B,), over the valid groups only."""
    k = valid.sum(1).to(theta.dtype)
    loo = torch.where(valid, theta_loo, torch.zeros_like(theta_loo))
    mean = loo.sum(1) / k.clamp(min=1)
    dev = torch.where(valid, theta_loo - mean.unsqueeze(1), torch.zeros_like(theta_loo))
    var = (k - 1) / k.clamp(min=1) * dev.square().sum(1)
    nan = torch.full_like(theta, float("nan"))
    ok = k >= 2
    return (torch.where(ok, k * theta - (k - 1) * mean, nan), torch.where(ok, var.sqrt(), nan), valid.sum(1))


def ef_with_error(groups: torch.Tensor, counts: torch.Tensor, *, ndim: int = 2, rank_normalize: bool = True,
                  reduction: str = "mean", exclude_dc: bool = False) -> EFError:
    """EF of a sampled map from its G sample groups, with its delete-a-group jackknife standard error
    (docs/methods.md §11).

    Args:
        groups: (B, G, *spatial) the group means m_g (e.g. ``MapStats.groups``).
        counts: (B, G) samples per group (e.g. ``MapStats.group_counts``).
        ndim, reduction, exclude_dc: as in :func:`~spectral_xai.expected_frequency`.
        rank_normalize: True: the bias-reduced rank EF G·EF(m̂) − (G − 1)·mean_g EF(m̂_(−g)); False: the EF of
            the all-pairs group cross spectrum.

    Returns:
        An :class:`EFError` (ef, stderr, rel_error (B,) float64; groups (B,) non-empty groups used).

    Example:
        >>> st = sx.smooth_grad(model, x, 0.15, n_samples=8, groups=4, return_stats=True)
        >>> e = sx.ef_with_error(st.groups, st.group_counts, rank_normalize=False)
        >>> e.ef.shape, e.groups.tolist()
        (torch.Size([2]), [4, 4])
    """
    if reduction not in ("mean", "authors"):
        V.fail("reduction", f"expected 'mean' or 'authors', got {reduction!r}")
    g, c = _check_groups(groups, counts, ndim)
    if not bool(torch.isfinite(g).all()):
        V.fail("groups", "contains NaN or Inf values")
    ef, se, used = group_ef_error(g, c, ranked=bool(rank_normalize), reduction=reduction, exclude_dc=exclude_dc)
    return EFError(ef=ef, stderr=se, rel_error=relative(se, ef), groups=used,
                   estimator=ESTIMATORS[bool(rank_normalize)])


def relative_halfwidth(ef: torch.Tensor, se: torch.Tensor, used: torch.Tensor, level: float) -> torch.Tensor:
    """(B,) t_{G−1}((1 + level)/2)·se / |ef|: the relative half-width of the two-sided Student-t interval of
    ``level`` with G − 1 degrees of freedom (G = ``used``, the non-empty groups; NaN where G < 2).  No host
    synchronisation."""
    dof = (used.to(torch.float64) - 1)
    q = t_quantile(torch.full_like(dof, (1 + level) / 2), dof.clamp(min=1))
    return torch.where(dof >= 1, q * relative(se, ef), torch.full_like(se, float("nan")))


def relative(se: torch.Tensor, ef: torch.Tensor) -> torch.Tensor:
    """se / |ef| (B,): inf where ef is 0 and se is not, 0 where both are."""
    den = ef.abs()
    return torch.where(den > 0, se / den.clamp(min=torch.finfo(den.dtype).tiny),
                       torch.where(se > 0, torch.full_like(se, float("inf")), torch.zeros_like(se)))


def group_ef_error(g: torch.Tensor, c: torch.Tensor, *, ranked: bool, reduction: str = "mean",
                   exclude_dc: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ef, se, groups used) (B,) of checked float64 groups (B, G, *sp) and float64 counts (B, G); no host
    synchronisation (the engine's EF stop calls it once per round)."""
    B, G, sp = g.shape[0], g.shape[1], g.shape[2:]
    valid = c > 0
    full, loo, rest = _leave_one_out(g, c)

    def ef(spec):
        return _ef_of_spectrum(spec, reduction, exclude_dc)

    if ranked:
        spec = _spectra(torch.cat([full, loo.reshape(B * G, *sp)]), True).to(torch.float64)
        theta, theta_loo = ef(spec[:B]), ef(spec[B:]).view(B, G)
        return _jackknife(theta, theta_loo, valid)
    spec = _spectra(torch.cat([g.reshape(B * G, *sp), full, loo.reshape(B * G, *sp)]), False).to(torch.float64)
    s_g, s_full, s_loo = spec[:B * G].view(B, G, -1), spec[B * G:B * G + B], spec[B * G + B:].view(B, G, -1)
    c2 = c * c
    sq_spec = (c2.unsqueeze(-1) * s_g).sum(1)                      # Σ c² S(m_g)   (B, K)
    n, sq = c.sum(1), c2.sum(1)
    theta = ef(_pair_spectrum(s_full, sq_spec, n, sq))
    left = valid.sum(1, keepdim=True) - valid.to(torch.int64)      # non-empty groups left without g
    loo_pairs = _pair_spectrum(s_loo, sq_spec.unsqueeze(1) - c2.unsqueeze(-1) * s_g, rest, sq.unsqueeze(1) - c2)
    # Two groups left: the one remaining group has no cross spectrum; its plug-in EF stands in.
    loo_spec = torch.where((left >= 2).unsqueeze(-1), loo_pairs, s_loo)
    theta_loo = ef(loo_spec.reshape(B * G, -1)).view(B, G)
    ef_u, se, used = _jackknife(theta, theta_loo, valid)
    # The group cross spectrum is already free of the noise bias: the jackknife only gives its error.
    return torch.where(used >= 2, theta, ef_u), se, used
