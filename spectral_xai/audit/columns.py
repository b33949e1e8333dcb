"""The data dictionary of metrics.parquet: one :class:`Column` per column, in table order.

Everything that knows a column reads it from here: the rows a shard computes (:mod:`.compute`), the table's
schema and its metadata (:mod:`.store`), the Monte Carlo columns (:mod:`.mc`) and the report's tables.
Adding a per-method measure is its function plus one entry in :data:`COLUMNS`.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ..methods import METHODS

PER_METHOD = "<method>"        # the placeholder of a per-method column's name in the dictionary


def _methods_of(kind: str) -> str:
    """The keys of the methods whose audit map is of Monte Carlo ``kind``, comma-separated, in table order."""
    return ", ".join(m for m, s in METHODS.items() if s.mc == kind)


@dataclass(frozen=True)
class Column:
    """key: the column name, or for a per-method column its suffix (column ``<m>_<key>``); dtype: the parquet
    type ("float64", "list<int64>"); description: its meaning (the data dictionary); measure: the
    ``--measures`` entry that brings it (None: always present); per_method: once per method; ranked: needs a
    map that ranks pixels (deletion/insertion); mc_error / plugin: the keys of its Monte Carlo error and
    plug-in twins; short: the report's sub-header; group: the report's column group of a per-image column;
    summary: the report's method-table title and ``better`` ("min"/"max": Welch-tested for the best method,
    None: not tested; count: a count, shown as its mean); histogram: the report's EF histogram row title;
    scale_map: only for maps that are a scale, not an importance (ArgLens)."""

    key: str
    dtype: str
    description: str
    measure: str | None = None
    per_method: bool = False
    ranked: bool = False
    mc_error: str | None = None
    plugin: str | None = None
    short: str | None = None
    group: str | None = None
    summary: str | None = None
    better: str | None = None
    count: bool = False
    histogram: str | None = None
    scale_map: bool = False

    @property
    def name(self) -> str:
        """The dictionary's name: ``key``, or ``<method>_<key>`` for a per-method column."""
        return f"{PER_METHOD}_{self.key}" if self.per_method else self.key

    def column(self, method: str | None = None) -> str:
        """The table's column name (of ``method`` for a per-method column)."""
        return f"{method}_{self.key}" if self.per_method else self.key

    def present(self, method: str | None, measures) -> bool:
        """Whether a run with ``measures`` has this column (of ``method``)."""
        if self.ranked and not METHODS[method].ranks_pixels:
            return False
        if self.scale_map and METHODS[method].ranks_pixels:
            return False
        return self.measure is None or self.measure in measures


def _image(key, dtype, description, **kw) -> Column:
    return Column(key, dtype, description, **kw)


def _method(key, dtype, description, **kw) -> Column:
    return Column(key, dtype, description, per_method=True, **kw)


_IMAGE = (
    _image("index", "int64", "position of the image in the dataset's order (0-based); keys its noise",
           group="image"),
    _image("name", "string", "the image's path relative to the data folder, or the built-in item's name, or (a "
                             "Python or Hugging Face dataset) the item's position as text", group="image"),
    _image("status", "string", "'ok', or 'failed' when the file could not be read (its measures are NaN)",
           group="image"),
    _image("error", "string", "why the image failed; empty when ok"),
    _image("label", "int64", "the image's class as an index of the model's outputs (--labels folders: the folder "
                             "matched to a class name or index; a labelled built-in; a user's or Hugging Face "
                             "dataset's label); null when none", group="image"),
    _image("label_name", "string", "the model's class name of label; null when unknown", group="image"),
    _image("target", "int64", "the explained class index: the clean prediction (--target pred) or the label; null "
                              "for failed images", group="prediction"),
    _image("target_name", "string", "the model's class name of target; null when the model has no class names",
           group="prediction"),
    _image("confidence", "float64", "softmax probability of target on the clean image", group="prediction"),
    _image("entropy", "float64", "predictive entropy of the clean image's softmax, in nats", group="prediction"),
    _image("sigma_opt", "float64", "σ* of the SpectralLens grid that maximises CS(σ) = (σ·s)^2.5·‖E_σ[g²]‖₁",
           measure="sigma_opt", group="SpectralLens grid"),
    _image("sigma_opt_at_edge", "bool", "σ* is the largest or smallest admissible σ of the grid (docs/methods.md "
                                        "§3): CS(σ) has not turned inside the grid, so σ* is the grid's end, not an "
                                        "optimum, and SG²_opt there may be a map of the noise; null for failed images",
           measure="sigma_opt", group="SpectralLens grid"),
    _image("sl2_image_independent", "float64", "share of ‖SL²‖₁ carried by the σ of the grid at which the "
                                               "perturbed input no longer depends on the image (σ = 1 of convex "
                                               "mixing, sx.admissible_sigmas): Σ w_j‖G_j‖₁ over those σ / "
                                               "Σ w_j‖G_j‖₁, "
                                               "the part of SL² that is the same for every image (docs/methods.md "
                                               "§2); 0 when the grid has no such σ",
           measure="sigma_opt", group="SpectralLens grid"),
    _image("inconsistency", "float64", "1 − mean cosine similarity between the per-σ SG² maps of the grid",
           measure="inconsistency", group="SpectralLens grid"),
    _image("top5_classes", "list<int64>", "the model's 5 most probable classes on the clean image, most probable "
                                          "first (fewer when the model has fewer outputs); null for failed images",
           group="prediction"),
    _image("top5_probs", "list<float64>", "their softmax probabilities, in the same order"),
    _image("sigma_opt_mc_change", "float64", "how often σ* would change with other noise: the fraction of the "
                                             "balanced splits of the sample groups into two halves whose halves "
                                             "choose different σ* (the same CS rule and admissible σ; 1 split, "
                                             "0 or 1, with the default 2 groups); 0 = stable. Each half has n/2 "
                                             "samples: about right near a tie of CS(σ), an upper bound for the "
                                             "n-sample σ* elsewhere (docs/methods.md §11); NaN with one sample "
                                             "per σ", measure="sigma_opt", group="SpectralLens grid"),
    _image("inconsistency_mc_error", "float64", "Monte Carlo standard error of inconsistency, the delete-a-group "
                                                "jackknife over the sample groups of the per-σ maps (G − 1 degrees "
                                                "of freedom; 2 groups: |θ(A) − θ(B)|/2 of the per-σ halves); NaN "
                                                "with one sample per σ", measure="inconsistency",
           group="SpectralLens grid"),
)

_PER_METHOD = (
    _method("ef", "float64", "Expected Frequency of the method's rank-normalised map (ICCV25 recipe): 0 = all "
                             "power at the lowest spatial frequency, 1 = at the highest. Sampled maps with "
                             f"halves A, B ({_methods_of('halves')}): the bias-reduced estimate 2·EF((A+B)/2) − "
                             "(EF(A)+EF(B))/2 (first-order jackknife: the plug-in's 1/n noise bias cancels, "
                             "higher orders remain; for odd n, (A+B)/2 weighs the halves equally); "
                             f"deterministic maps ({_methods_of('deterministic')}): the plug-in EF, "
                             f"exact for them; {_methods_of('not estimated')} and any map of a run with one "
                             "sample per σ: the plug-in EF, not corrected",
            measure="ef", mc_error="ef_mc_error", plugin="ef_plugin", short="EF",
            summary="EF, rank-normalised map (ICCV25 recipe)", histogram="EF, ranked (ICCV25)"),
    _method("ef_unranked", "float64", "Expected Frequency of the method's map as it is (no rank "
                                      "normalisation): better conditioned for comparing methods, since rank "
                                      "normalisation puts most power in the DC ring. Maps with halves: the "
                                      "EF of the cross spectrum Re(FFT(A)·conj FFT(B)), free of the "
                                      "plug-in's (noise power)/n bias (undefined, and kept as computed, when "
                                      "a map is all noise); other maps: the plug-in EF",
            measure="ef", mc_error="ef_unranked_mc_error", plugin="ef_unranked_plugin", short="EF unranked",
            summary="EF, map as is (no rank normalisation)", histogram="EF, map as is"),
    _method("ef_mc_error", "float64", "Monte Carlo standard error of <method>_ef per image, the half-split "
                                      "estimate |EF(A) − EF(B)|/2 of the rank-normalised halves (Var EF(m) ≈ "
                                      "Var EF(A)/2; to first order the bias-reduced EF has the plug-in's "
                                      "variance). One degree of freedom per image: its square is unbiased "
                                      "for the variance, so average squares over images. 0 for "
                                      "deterministic maps; NaN where not estimated "
                                      f"({_methods_of('not estimated')}, one sample)",
            measure="ef", short="EF MC err"),
    _method("ef_unranked_mc_error", "float64", "Monte Carlo standard error of <method>_ef_unranked per "
                                               "image, |EF(A) − EF(B)|/2 of the halves as they are (as "
                                               "<method>_ef_mc_error)", measure="ef", short="EF unr. MC err"),
    _method("ef_plugin", "float64", "plug-in EF of the rank-normalised map, EF(rank(m)) (biased by the "
                                    "map's Monte Carlo noise); equals <method>_ef for maps without halves",
            measure="ef", short="EF plug-in"),
    _method("ef_unranked_plugin", "float64", "plug-in EF of the map as it is, from |FFT(m)|²; equals "
                                             "<method>_ef_unranked for maps without halves",
            measure="ef", short="EF unr. plug-in"),
    _method("gap", "float64", "ΔEF = |EF(method) − EF(VanillaGrad)|, the explanation-gap proxy, with "
                              "<method>_ef's estimator (rank-normalised; bias-reduced where the map has "
                              "halves; VanillaGrad is deterministic); 0 for vg",
            measure="gap", plugin="gap_plugin", short="ΔEF", summary="ΔEF vs VG (rank-normalised)",
            mc_error="gap_mc_error"),
    _method("gap_plugin", "float64", "ΔEF from the plug-in EFs; equals <method>_gap for maps without halves",
            measure="gap", short="ΔEF plug-in"),
    _method("gap_unranked", "float64", "ΔEF of the maps as they are, |EF_unranked(method) − "
                                       "EF_unranked(VanillaGrad)|, "
                                       "with <method>_ef_unranked's estimator (cross spectrum of the halves where "
                                       "the map has them): separates methods better than the rank-normalised "
                                       "ΔEF; 0 for vg",
            measure="gap", plugin="gap_unranked_plugin", short="ΔEF unr.",
            summary="ΔEF vs VG (map as is)", mc_error="gap_unranked_mc_error"),
    _method("gap_unranked_plugin", "float64", "<method>_gap_unranked from the plug-in EFs; equals it for maps "
                                              "without halves", measure="gap", short="ΔEF unr. plug-in"),
    _method("deletion", "float64", "deletion AUC of the target probability over the removed fraction, most "
                                   "relevant pixels first (lower is better); not for al (a scale map)",
            measure="deletion", ranked=True, short="del AUC", summary="deletion AUC ↓", better="min",
            mc_error="deletion_mc_error"),
    _method("insertion", "float64", "insertion AUC of the target probability over the inserted fraction "
                                    "(higher is better); not for al",
            measure="insertion", ranked=True, short="ins AUC", summary="insertion AUC ↑", better="max",
            mc_error="insertion_mc_error"),
    _method("rel_error", "float64", "relative Monte Carlo error ||se||₂/||m||₂ of the map, se the per-pixel "
                                    "standard errors from the samples' variance (docs/methods.md §11): sg, "
                                    "sg2; sl2 (of the prior-weighted mean over σ); sg2opt (of G_σ* at the "
                                    "image's σ*, which is chosen from the same samples: that choice is not "
                                    "in the error). 0 for deterministic maps "
                                    f"({_methods_of('deterministic')}: no sampling, exact). NaN where not "
                                    "estimated: al (an argmax over σ has no standard error), rise (its masks "
                                    "are drawn without statistics), and every map of a run with one sample "
                                    "per σ", short="rel MC err", summary="relative MC error of the map"),
    _method("samples", "int64", "model passes per image behind the map (SpectralLens methods: all σ of the "
                                "grid); with --target-error the samples the image used before its stop; null "
                                "for occlusion", short="samples", summary="samples / image", count=True),
    _method("gap_mc_error", "float64", "Monte Carlo standard error of <method>_gap by error propagation, "
                                       "sqrt(<method>_ef_mc_error² + vg_ef_mc_error²) (the two EFs are "
                                       "independent; VanillaGrad is deterministic, its error 0); the |·| leaves "
                                       "it unchanged away from 0, but where ΔEF is within about 2 errors of 0 "
                                       "ΔEF is biased upwards (by up to 0.8 error) and the error is an upper "
                                       "bound. 0 for deterministic maps; NaN where the EF error is not estimated "
                                       "and with --gap-exclude-dc (the EF errors include the DC ring)",
            measure="gap", short="ΔEF MC err"),
    _method("gap_unranked_mc_error", "float64", "Monte Carlo standard error of <method>_gap_unranked, "
                                                "sqrt(<method>_ef_unranked_mc_error² + vg's²) (as "
                                                "<method>_gap_mc_error)", measure="gap", short="ΔEF unr. MC err"),
    _method("mc_agreement", "float64", "ArgLens stability: the fraction of pixels whose ArgLens (argmax over σ "
                                       "of the per-σ maps) is the same in the two halves A, B of the samples "
                                       "(1 = every pixel agrees; each half has n/2 samples, so the full map "
                                       "agrees with a rerun at least as often); NaN with one sample per σ",
            scale_map=True, short="AL agreement"),
    _method("deletion_mc_error", "float64", "Monte Carlo standard error of <method>_deletion with "
                                            "--auc-mc-error: |AUC(A) − AUC(B)|/2, the deletion AUCs of the maps "
                                            "of the two halves (the EF's half-split estimate; the AUC ranks "
                                            "pixels, so this is a first-order estimate, on the high side); 0 for "
                                            "deterministic maps; NaN for sampled maps without --auc-mc-error or "
                                            "without halves", measure="deletion", ranked=True,
            short="del AUC MC err"),
    _method("insertion_mc_error", "float64", "Monte Carlo standard error of <method>_insertion with "
                                             "--auc-mc-error, |AUC(A) − AUC(B)|/2 (as <method>_deletion_mc_error)",
            measure="insertion", ranked=True, short="ins AUC MC err"),
)

COLUMNS: Mapping[str, Column] = MappingProxyType({c.name: c for c in _IMAGE + _PER_METHOD})
IMAGE_COLUMNS: tuple[Column, ...] = _IMAGE
METHOD_COLUMNS: tuple[Column, ...] = _PER_METHOD
DATA_DICTIONARY: Mapping[str, str] = MappingProxyType({k: c.description for k, c in COLUMNS.items()})


def table_columns(methods, measures) -> list[str]:
    """The columns of metrics.parquet for these methods and measures, in order: per image, then
    ``<method>_<key>`` per method."""
    cols = [c.key for c in _IMAGE if c.present(None, measures)]
    return cols + [c.column(m) for m in methods for c in _PER_METHOD if c.present(m, measures)]


def spec(column: str) -> Column:
    """The :class:`Column` of a table column; ``<m>_<key>`` matches the longest per-method key it ends with
    (a KeyError if none)."""
    if column in COLUMNS:
        return COLUMNS[column]
    keys = [c.key for c in _PER_METHOD if column.endswith("_" + c.key)]
    if not keys:
        raise KeyError(column)
    return COLUMNS[f"{PER_METHOD}_{max(keys, key=len)}"]
