"""Monte Carlo statistics of the audit's maps (docs/methods.md §11): which maps come with halves, and the EF
and ΔEF columns computed from the halves beside the plug-in values.

Three kinds of map:

- ``"halves"``: sampled maps whose standard errors and halves (A, B) come from the same passes: SG and SG²
  (``smooth_grad(return_stats=True)``), SL² and SG²_opt (the one ``spectral_lens(return_stats=True)`` call;
  SG²_opt takes the per-σ statistics at each image's σ*).  EF is the bias-reduced rank EF, the unranked EF
  that of the cross spectrum of A and B, and their Monte Carlo error the half-split estimate.
- ``"deterministic"``: maps that draw no noise (VG, VG², IG, IG², XIG, XIG², occlusion): their Monte Carlo
  error is exactly 0 and the plug-in EF is exact (the corrected columns equal the plug-in ones).
- ``"not estimated"``: sampled maps without halves (ArgLens, an argmax over σ; RISE; any sampled map of a
  run with one sample per σ): plug-in EF, Monte Carlo errors NaN.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..mc_derived import gap_mc_error
from ..methods import MC_KINDS, METHODS
from ..spectrum import expected_frequency, explanation_gap
from .columns import METHOD_COLUMNS

KINDS = MC_KINDS
# kind -> how its EF columns are estimated, in words (the report's method table)
ESTIMATORS = {"halves": "bias-reduced rank EF and cross-spectrum EF from the halves",
              "deterministic": "plug-in (deterministic map: exact, MC error 0)",
              "not estimated": "plug-in (sampled, no halves: not corrected, MC error not estimated)"}


def mc_kind(method: str, sample_cap: int) -> str:
    """The kind of ``method``'s audit map (one of :data:`KINDS`) when each image may take ``sample_cap``
    samples (per σ): its ``MethodSpec.mc``, except that halves need two samples."""
    kind = METHODS[method].mc
    return "not estimated" if kind == "halves" and sample_cap < 2 else kind


@dataclass
class AuditMap:
    """One method's maps for a batch of b images: map (b, S, S); halves (A, B), each (b, S, S), or None;
    rel_error (b,) float64 ||se||_2 / ||map||_2 (0 for a deterministic map, NaN where not estimated);
    samples (b,) int64 model passes per image, or None where the count depends on the image; kind: one of
    :data:`KINDS`."""

    map: torch.Tensor
    halves: tuple[torch.Tensor, torch.Tensor] | None
    rel_error: torch.Tensor
    samples: torch.Tensor | None
    kind: str

    @classmethod
    def without_halves(cls, mp: torch.Tensor, samples: torch.Tensor | None, kind: str) -> "AuditMap":
        """A deterministic map (error 0) or one whose error is not estimated (NaN)."""
        err = 0.0 if kind == "deterministic" else math.nan
        return cls(mp, None, torch.full((mp.shape[0],), err, dtype=torch.float64), samples, kind)


def _no_halves_error(am: AuditMap) -> torch.Tensor:
    return am.rel_error.new_full((am.map.shape[0],), 0.0 if am.kind == "deterministic" else math.nan)


def ef_columns(method: str, am: AuditMap, measures, vg: torch.Tensor | None,
               exclude_dc: bool = False) -> dict[str, torch.Tensor]:
    """The EF and ΔEF columns of one method, ``<method>_<key>`` -> (b,): ef, ef_unranked (corrected where the
    map has halves), ef_mc_error, ef_unranked_mc_error, ef_plugin, ef_unranked_plugin ("ef" in
    ``measures``); gap, gap_plugin, gap_unranked, gap_unranked_plugin ("gap"; ``vg`` the (b, S, S)
    VanillaGrad maps, deterministic; ``exclude_dc``: the ΔEF's EFs without the DC ring)."""
    mp = am.map.detach().float()
    halves = None if am.halves is None else tuple(h.detach().float() for h in am.halves)
    out = {}
    if "ef" in measures:
        for key, ranked in (("ef", True), ("ef_unranked", False)):
            plug = expected_frequency(mp, rank_normalize=ranked)
            out[f"{key}_plugin"] = plug
            if halves is None:
                out[key], out[f"{key}_mc_error"] = plug, _no_halves_error(am).to(plug.dtype)
            else:
                a, b = halves
                out[key] = expected_frequency(a, b, rank_normalize=ranked)
                ef_a, ef_b = (expected_frequency(h, rank_normalize=ranked).double() for h in halves)
                out[f"{key}_mc_error"] = (ef_a - ef_b).abs() / 2
    if "gap" in measures:
        for key, ranked in (("gap", True), ("gap_unranked", False)):
            opts = dict(rank_normalize=ranked, exclude_dc=exclude_dc)
            out[f"{key}_plugin"] = explanation_gap(vg.float(), mp, **opts)
            out[key] = out[f"{key}_plugin"] if halves is None else explanation_gap(vg.float(), halves[0],
                                                                                    method_b=halves[1], **opts)
    return {f"{method}_{k}": v for k, v in out.items()}


def run_kinds(config: dict, methods) -> dict[str, str]:
    """{method: kind} of a run from its recorded configuration (manifest.json's ``config``)."""
    cap = config.get("max_samples") or config["samples"]
    return {m: mc_kind(m, cap) for m in methods if m in METHODS}


def rms(v) -> float:
    """Root mean square of per-image Monte Carlo errors (finite values; NaN if none): the typical error,
    averaging the variances that each image's one-degree-of-freedom estimate gives unbiasedly."""
    import numpy as np

    v = np.asarray(v, dtype=float)
    v = v[np.isfinite(v)]
    return float(np.sqrt(np.mean(v * v))) if v.size else math.nan


BIAS_KEYS = tuple(c.key for c in METHOD_COLUMNS if c.plugin)    # the corrected columns with a plug-in twin


def plugin_bias(table, methods, kinds: dict[str, str]) -> dict[str, dict[str, dict]]:
    """How far the plug-in values were from the corrected ones, per method with halves and per key of
    :data:`BIAS_KEYS` present: {method: {key: {n, plugin, corrected (means over the images), diff, diff_se
    (mean and standard error of the paired per-image difference plug-in − corrected), rel (diff / |corrected
    mean|), mc (rms per-image Monte Carlo error of the corrected value)}}}.  ``table``: a pandas
    DataFrame of metrics.parquet (failed images are skipped)."""
    import numpy as np

    ok = table[table["status"] == "ok"] if "status" in table else table
    out: dict[str, dict[str, dict]] = {}
    for m in methods:
        if kinds.get(m) != "halves":
            continue
        for col in METHOD_COLUMNS:
            if not col.plugin:
                continue
            c, p = col.column(m), f"{m}_{col.plugin}"
            if c not in ok or p not in ok:
                continue
            both = ok[[c, p]].astype(float).dropna()
            if both.empty:
                continue
            corr, plug = both[c].to_numpy(), both[p].to_numpy()
            d = plug - corr
            mean_c = float(corr.mean())
            err = f"{m}_{col.mc_error}" if col.mc_error else None
            out.setdefault(m, {})[col.key] = {
                "n": len(d), "plugin": float(plug.mean()), "corrected": mean_c, "diff": float(d.mean()),
                "diff_se": float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else math.nan,
                "rel": float(d.mean()) / abs(mean_c) if mean_c != 0 else math.nan,
                "mc": rms(ok[err]) if err in ok else math.nan}
    return out


def gap_error_columns(method: str, am: AuditMap, measures, ef_cols: dict, exclude_dc: bool = False) -> dict:
    """``<method>_gap_mc_error`` and ``<method>_gap_unranked_mc_error`` (b,) ("gap" in ``measures``): the
    error propagation sqrt(se_m² + se_ref²) of :func:`~spectral_xai.mc_derived.gap_mc_error` from the EF
    errors of :func:`ef_columns` (``ef_cols``, computed here if "ef" is not measured) and the reference's
    (VanillaGrad: deterministic, 0).  NaN with ``exclude_dc`` (the EF errors include the DC ring)."""
    if "gap" not in measures:
        return {}
    keys = (("gap_mc_error", "ef_mc_error"), ("gap_unranked_mc_error", "ef_unranked_mc_error"))
    if exclude_dc:
        return {f"{method}_{g}": am.rel_error.new_full((am.map.shape[0],), math.nan) for g, _ in keys}
    if f"{method}_ef_mc_error" not in ef_cols:
        ef_cols = ef_columns(method, am, ("ef",), None)
    return {f"{method}_{g}": gap_mc_error(ef_cols[f"{method}_{e}"]) for g, e in keys}
