"""Expected Frequency and the explanation gap as ``torchmetrics.Metric`` subclasses (docs/integrations.md §1).

States are float64 sums only, reduced with ``dist_reduce_fx="sum"``: the per-map values, their squares,
the count and (with ``size=``) the per-ring spectrum sums.  Memory is O(K) whatever the number of maps,
and a DDP sync (or ``merge_state``) gives exactly the sums of one process over all maps, up to float64
rounding.  Per-map values are those of :func:`spectral_xai.expected_frequency` /
:func:`spectral_xai.explanation_gap` on the maps as given (docs/methods.md §7, §11).
"""
from __future__ import annotations

import inspect
import math
from typing import NamedTuple

import torch

from . import check_ef_options, require, split_ef_options
from .. import _validation as V
from ..spectrum import expected_frequency, explanation_gap, radial_power_spectrum

Metric = require("torchmetrics", "torchmetrics").Metric

__all__ = ["EFStats", "ExpectedFrequency", "ExplanationGap", "GapSpectra"]


class EFStats(NamedTuple):
    """mean: the mean over maps; stderr: sample sd (n − 1) / sqrt(n) (NaN for n < 2); count: n.  All float64."""

    mean: torch.Tensor
    stderr: torch.Tensor
    count: torch.Tensor


class GapSpectra(NamedTuple):
    """The mean radial spectra (K,) of the reference maps and of the method maps."""

    reference: torch.Tensor
    method: torch.Tensor


def _zero(*shape) -> torch.Tensor:
    return torch.zeros(shape, dtype=torch.float64)


class _SpectralMetric(Metric):
    """Shared machinery: keyword split, sum states of a per-map value, stats, spectrum states."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0
    _spectra: tuple = ()            # names of the per-ring spectrum states

    def __init__(self, *, size=None, **kwargs):
        self.ef_options, metric_kwargs = split_ef_options(kwargs)
        super().__init__(**metric_kwargs)
        self.size = check_ef_options(self.ef_options, size)
        for name in ("value_sum", "value_sq_sum", "count"):
            self.add_state(name, _zero(), dist_reduce_fx="sum")
        if self.size is not None:
            rings = radial_power_spectrum(torch.zeros((1, *self.size)), **self._spectrum_options()).shape[1]
            for name in self._spectra:
                self.add_state(name, _zero(rings), dist_reduce_fx="sum")

    def _spectrum_options(self) -> dict:
        """The options of radial_power_spectrum among the EF options (rank_normalize, ndim, ...)."""
        names = inspect.signature(radial_power_spectrum).parameters
        return {k: v for k, v in self.ef_options.items() if k in names}

    def _spectrum(self, maps: torch.Tensor, b: torch.Tensor | None, arg: str, b_arg: str):
        """The summed (K,) ring spectra of (B, *size) maps (the cross spectrum with ``b``), or None when the
        metric tracks no spectrum.  Checked before any state changes."""
        if self.size is None:
            return None
        if tuple(maps.shape[1:]) != self.size:
            V.fail(arg, f"maps of size {tuple(maps.shape[1:])} given to a metric tracking the mean spectrum of "
                        f"{self.size} maps (size=); the mean spectrum needs maps of one size")
        opts = self._spectrum_options()
        if b is not None and opts["rank_normalize"]:
            V.fail(b_arg, "rank-normalised halves have an EF (bias-reduced) but no spectrum (docs/methods.md "
                          "§11); construct the metric without size= or with rank_normalize=False")
        return radial_power_spectrum(maps, b, **opts).detach().to(self.count.device, torch.float64).sum(0)

    def _add(self, values: torch.Tensor, spectra: dict) -> None:
        """Add per-map values (B,) and the summed spectra {state: (K,) or None} to the states."""
        v = values.detach().to(self.value_sum.device, torch.float64)
        self.value_sum += v.sum()
        self.value_sq_sum += (v * v).sum()
        self.count += v.numel()
        for name, spec in spectra.items():
            if spec is not None:
                setattr(self, name, getattr(self, name) + spec)

    def _synced(self):
        """Context in which the states are summed over processes (as compute() does), then restored."""
        return self.sync_context(dist_sync_fn=self.dist_sync_fn, should_sync=self.sync_on_compute)

    def compute(self) -> torch.Tensor:
        """The mean of the per-map values over every map seen (float64; NaN before any map)."""
        return self.value_sum / self.count

    def compute_stats(self) -> EFStats:
        """EFStats(mean, stderr, count) over every map seen (on every process, after a DDP sync)."""
        with self._synced():
            n, s, sq = self.count.clone(), self.value_sum.clone(), self.value_sq_sum.clone()
        mean = s / n
        var = (sq - s * mean) / (n - 1) if float(n) >= 2 else torch.full_like(s, math.nan)
        return EFStats(mean, var.clamp_min(0).sqrt() / n.sqrt(), n)

    def _mean_spectra(self) -> list[torch.Tensor]:
        if self.size is None:
            V.fail("size", "the mean spectrum is tracked only when the metric is constructed with size=(H, W) "
                           "(the maps' spatial size)")
        with self._synced():
            n, sums = self.count.clone(), [getattr(self, s).clone() for s in self._spectra]
        if float(n) == 0:
            V.fail("maps", "no maps seen yet: call update() before compute_spectrum()")
        return [x / n for x in sums]


class ExpectedFrequency(_SpectralMetric):
    """Mean Expected Frequency over a stream of maps (docs/methods.md §7; docs/integrations.md §1).

    ``ExpectedFrequency(rank_normalize=True, reduction="mean", exclude_dc=False, size=None, **options)``:
    the keywords of :func:`spectral_xai.expected_frequency` (any of them, passed through), plus
    ``size=(H, W)`` to also track the mean radial spectrum, plus torchmetrics' own (``sync_on_compute``...).

    ``update(maps)``: (B, H, W) maps, each scored by ``sx.expected_frequency(maps)``;
    ``update(a, b)``: two independent halves of sampled maps, scored by ``sx.expected_frequency(a, b)``
    (cross-spectrum EF, or bias-reduced EF with rank normalisation; docs/methods.md §11).
    ``compute()``: the mean EF (float64) = ``sx.expected_frequency(all maps).mean()``;
    ``compute_stats()``: ``EFStats(mean, stderr, count)``; ``compute_spectrum()``: the mean (K,) ring
    spectrum of the maps (the cross spectrum for halves), the rank-normalised one with rank_normalize.
    """

    _spectra = ("spectrum_sum",)

    def __init__(self, *, rank_normalize: bool = True, reduction: str = "mean", exclude_dc: bool = False,
                 size=None, **kwargs):
        super().__init__(size=size, rank_normalize=rank_normalize, reduction=reduction, exclude_dc=exclude_dc,
                         **kwargs)

    def update(self, maps: torch.Tensor, b: torch.Tensor | None = None) -> None:
        """maps (B, H, W); b: an independent second half of the same maps, or None."""
        ef = expected_frequency(maps, b, **self.ef_options)         # checks the maps first
        self._add(ef, {"spectrum_sum": self._spectrum(maps, b, "maps", "b")})

    def compute_spectrum(self) -> torch.Tensor:
        """The mean radial spectrum (K,) float64 over every map seen (needs ``size=``)."""
        return self._mean_spectra()[0]


class ExplanationGap(_SpectralMetric):
    """Mean explanation gap ΔEF = |EF(method) − EF(reference)| over a stream of map pairs
    (docs/methods.md §7; docs/integrations.md §1).  Same keywords as :class:`ExpectedFrequency`.

    ``update(reference_maps, method_maps, *, reference_b=None, method_b=None)``: (B, H, W) maps of the same
    images, scored by ``sx.explanation_gap`` (``*_b``: the second halves of sampled maps).
    ``compute()`` / ``compute_stats()``: of the per-image gaps; ``compute_spectrum()``:
    ``GapSpectra(reference, method)``, the two mean radial spectra (needs ``size=``).
    """

    _spectra = ("reference_spectrum_sum", "method_spectrum_sum")

    def __init__(self, *, rank_normalize: bool = True, reduction: str = "mean", exclude_dc: bool = False,
                 size=None, **kwargs):
        super().__init__(size=size, rank_normalize=rank_normalize, reduction=reduction, exclude_dc=exclude_dc,
                         **kwargs)

    def update(self, reference_maps: torch.Tensor, method_maps: torch.Tensor, *,
               reference_b: torch.Tensor | None = None, method_b: torch.Tensor | None = None) -> None:
        """reference_maps, method_maps: (B, H, W) of the same images; ``*_b``: their second halves or None."""
        gap = explanation_gap(reference_maps, method_maps, reference_b=reference_b, method_b=method_b,
                              **self.ef_options)                   # checks the maps first
        self._add(gap, {"reference_spectrum_sum": self._spectrum(reference_maps, reference_b, "reference_maps",
                                                                 "reference_b"),
                        "method_spectrum_sum": self._spectrum(method_maps, method_b, "method_maps", "method_b")})

    def compute_spectrum(self) -> GapSpectra:
        """GapSpectra(reference (K,), method (K,)) float64, the mean radial spectra (needs ``size=``)."""
        return GapSpectra(*self._mean_spectra())
