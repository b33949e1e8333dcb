"""One shard of the audit: the clean prediction, every requested map and every requested measure.

All sampling is keyed by (seed, global image index), so an image's numbers depend only on the
configuration and the shard it belongs to (shards are fixed by the configuration), never on the process
count, the batch size or whether the run was resumed.
"""
from __future__ import annotations

import math

import torch

from ..lens import spectral_lens
from ..methods import LENS_METHODS, METHODS, explain
from ..metrics import deletion_insertion, inconsistency
from ..model_calls import clean_logits
from ..noise_level import sigma_star
from . import columns
from .config import AuditConfig
from .errors import fail
from ..mc_derived import half_split_error, inconsistency_mc_error, sigma_star_change
from .mc import AuditMap, ef_columns, gap_error_columns, mc_kind

TOP_K = 5
# What a method's budget kind (MethodSpec.budget) means in the audit: its function's option and the
# configuration field that sets it ("samples" also takes the SG noise and the target-error stop).
BUDGET_OPTIONS = {"samples": ("n_samples", "samples"), "steps": ("n_steps", "ig_steps"),
                  "masks": ("n_masks", "rise_masks")}


def _empty_row(cfg: AuditConfig, index: int, name: str, label: int | None) -> dict:
    """A row of the requested columns (:func:`.columns.table_columns`), measures NaN (counts null) until
    computed; the class names are added at the merge."""
    row = {c: None if columns.spec(c).dtype != "float64" else math.nan
           for c in columns.table_columns(cfg.methods, cfg.measures) if c not in ("label_name", "target_name")}
    row.update(index=index, name=name, status="ok", error="", label=label)
    return row


def _method_options(cfg: AuditConfig, method: str, ids: torch.Tensor, batch_size) -> tuple[dict, int | None]:
    """Keyword options of a gradient or perturbation ``method`` under ``cfg`` and its model passes per image
    (None where the count depends on the image size)."""
    spec = METHODS[method]
    if spec.family == "lens" or spec.budget not in ("one", "windows", *BUDGET_OPTIONS):
        raise ValueError(f"spectral_xai audit: method {method!r} has no audit options")
    opts = dict(batch_size=batch_size)
    if spec.family == "gradient":
        opts.update(image_ids=ids, fast=cfg.fast(), output=cfg.output)
    if spec.seeded:
        opts.update(seed=cfg.seed, image_ids=ids)
    if spec.budget == "samples":
        opts.update(sigma=cfg.sg_sigma, **_stopping(cfg))
    if spec.budget in BUDGET_OPTIONS:
        option, config_field = BUDGET_OPTIONS[spec.budget]
        opts[option] = getattr(cfg, config_field)
        return opts, getattr(cfg, config_field)
    return opts, (1 if spec.budget == "one" else None)


def audit_batch(model, x: torch.Tensor, ids: torch.Tensor, labels: list[int | None], names: list[str],
                cfg: AuditConfig, batch_size: int | None = None) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """x (b, C, S, S) valid images with global indices ids (b,) and labels (b,) (None: none).

    Returns one row per image (the requested columns of :mod:`.columns`) and the tensors to keep:
    ``maps/<m>`` (b, S, S), ``curves/<m>/deletion|insertion`` (b, Q)."""
    rows = [_empty_row(cfg, int(i), n, lab) for i, n, lab in zip(ids.tolist(), names, labels)]
    target, columns_of, top = _clean_prediction(model, x, labels, cfg, batch_size)
    ids_dev = ids.to(x.device)
    maps, per_image = _lens_maps(model, x, target, ids_dev, cfg, batch_size)
    for m in cfg.methods:
        if m not in LENS_METHODS:
            maps[m] = _method_map(model, x, target, ids_dev, cfg, m, batch_size)
    vg = maps["vg"].map if "vg" in maps else None
    if "gap" in cfg.measures and vg is None:
        vg = explain("vg", model, x, target, **_method_options(cfg, "vg", ids_dev, batch_size)[0])
    tensors = _measures(model, x, target, maps, vg, cfg, batch_size, columns_of)
    for m, am in maps.items():
        columns_of[f"{m}_rel_error"] = am.rel_error
        if am.samples is not None:
            columns_of[f"{m}_samples"] = am.samples
    columns_of.update(per_image)
    for k, v in columns_of.items():
        v = v.detach().cpu()
        for row, val in zip(rows, _typed(v, columns.spec(k).dtype).tolist()):
            row[k] = val
    for row, t, k, p in zip(rows, target.tolist(), top.indices.tolist(), top.values.tolist()):
        row.update(target=int(t), top5_classes=k, top5_probs=p)
    return rows, tensors


def _typed(v: torch.Tensor, dtype: str) -> torch.Tensor:
    """A column's values (b,) as the tensor type of its dictionary dtype (int64, bool, else float64)."""
    return v.long() if dtype == "int64" else v.bool() if dtype == "bool" else v.double()


def sl2_image_independent(per_sigma: torch.Tensor, weights: torch.Tensor, admissible: torch.Tensor) -> torch.Tensor:
    """Share of ‖SL²‖₁ = Σ_j w_j‖G_j‖₁ carried by the σ that are not admissible (the perturbed input no
    longer depends on the image): per_sigma G (b, S, S', S') ≥ 0, weights (S,), admissible (S,) or (b, S)
    bool -> (b,) float64 (0 where SL² is all zero)."""
    mass = weights.to(per_sigma.device, torch.float64) * per_sigma.double().flatten(2).sum(-1)     # (b, S)
    total = mass.sum(dim=1)
    fixed = (mass * (~admissible).to(per_sigma.device, torch.float64)).sum(dim=1)     # admissible (S,) or (b, S)
    return torch.where(total > 0, fixed / total.clamp_min(torch.finfo(torch.float64).tiny), 0.0)


def _stopping(cfg: AuditConfig) -> dict:
    """The target-error stopping options of the sampled maps (none without --target-error)."""
    if cfg.target_error is None:
        return {}
    return {"target_error": cfg.target_error, "max_samples": cfg.max_samples}


def _method_map(model, x, target, ids_dev, cfg: AuditConfig, method: str, batch_size) -> AuditMap:
    """The map of a gradient or perturbation ``method`` with its Monte Carlo statistics (halves and
    relative error from the same passes for SG / SG², see :mod:`.mc`)."""
    opts, nominal = _method_options(cfg, method, ids_dev, batch_size)
    kind = mc_kind(method, cfg.sample_cap())
    if kind == "halves":
        st = explain(method, model, x, target, return_stats=True, **opts)
        return AuditMap(st.map, st.halves, st.rel_error.double(), st.n_samples.long(), kind)
    mp = explain(method, model, x, target, **opts)
    samples = None if nominal is None else torch.full((x.shape[0],), nominal, dtype=torch.int64)
    return AuditMap.without_halves(mp, samples, kind)


def _clean_prediction(model, x, labels, cfg: AuditConfig, batch_size) -> tuple[torch.Tensor, dict, tuple]:
    """The explained classes (b,), the columns confidence (of that class) and predictive entropy, and the
    clean top-5 (``torch.topk`` of the softmax: values and indices (b, min(5, classes)))."""
    prob = torch.softmax(clean_logits(model, x, batch_size or x.shape[0]).double(), dim=1)
    if cfg.target == "label":
        if any(lab is None for lab in labels):
            fail("target", "'label' needs labels (--labels folders or a "
                 "labelled built-in)")
        target = torch.tensor(labels, dtype=torch.int64, device=x.device)
    else:
        target = prob.argmax(dim=1)
    conf = prob.gather(1, target.view(-1, 1)).squeeze(1)
    entropy = -(prob * prob.clamp_min(1e-300).log()).sum(dim=1)
    top = prob.topk(min(TOP_K, prob.shape[1]), dim=1)
    return target, {"confidence": conf, "entropy": entropy}, top


def _lens_maps(model, x, target, ids_dev, cfg: AuditConfig, batch_size) -> tuple[dict[str, AuditMap], dict]:
    """SL², ArgLens, SG²_opt (with their Monte Carlo statistics, see :mod:`.mc`), σ* and inconsistency from
    one SpectralLens call (if the run needs one): ({m: AuditMap}, per-image columns)."""
    maps, per_image = {}, {}
    if not cfg.needs_lens():
        return maps, per_image
    stats = mc_kind("sl2", cfg.sample_cap()) == "halves"
    sig = torch.tensor(cfg.sigmas, dtype=torch.float64)
    res = spectral_lens(model, x, sig, target, n_samples=cfg.samples, prior=cfg.prior,
                        noise_scale=cfg.noise_scale, output=cfg.output, seed=cfg.seed, image_ids=ids_dev,
                        batch_size=batch_size, return_per_sigma=True, fast=cfg.fast(), return_stats=stats,
                        **_stopping(cfg))
    per_sigma = res.per_sigma.double()
    star = sigma_star(per_sigma, res.sigmas, cfg.noise_scale)
    used = res.n_samples.sum(dim=1).long()
    if stats:
        at = (torch.arange(x.shape[0], device=star.index.device), star.index)
        lens_maps = {"sl2": AuditMap(res.sl2, res.halves, res.rel_error.double(), used, "halves"),
                     "sg2opt": AuditMap(star.maps, tuple(h[at] for h in res.per_sigma_halves),
                                        res.per_sigma_rel_error[at].double(), used, "halves")}
    else:
        lens_maps = {m: AuditMap.without_halves(mp, used, "not estimated")
                     for m, mp in (("sl2", res.sl2), ("sg2opt", star.maps))}
    lens_maps["al"] = AuditMap.without_halves(res.arglens, used, "not estimated")
    for m in LENS_METHODS:
        if m in cfg.methods:
            maps[m] = lens_maps[m]
    if "sigma_opt" in cfg.measures:
        per_image["sigma_opt"] = star.sigma
        per_image["sigma_opt_at_edge"] = star.at_edge
        per_image["sl2_image_independent"] = sl2_image_independent(per_sigma, res.weights, star.admissible)
    if "inconsistency" in cfg.measures:
        per_image["inconsistency"] = inconsistency(per_sigma)
    if stats:
        per_image.update(_lens_mc_errors(res, cfg))
    return maps, per_image


def _lens_mc_errors(res, cfg: AuditConfig) -> dict:
    """The Monte Carlo stability of σ*, inconsistency and ArgLens from the per-σ groups and halves of a
    SpectralLens result with statistics (docs/methods.md §11): the requested of sigma_opt_mc_change,
    inconsistency_mc_error, al_mc_agreement (b,)."""
    out = {}
    groups, counts = res.per_sigma_groups, res.per_sigma_group_counts
    if "sigma_opt" in cfg.measures:
        out["sigma_opt_mc_change"] = sigma_star_change(groups, counts, res.sigmas, cfg.noise_scale)
    if "inconsistency" in cfg.measures:
        out["inconsistency_mc_error"] = inconsistency_mc_error(groups, counts)[1]
    if "al" in cfg.methods:
        out["al_mc_agreement"] = res.arglens_agreement.double().flatten(1).mean(1)
    return out


def _measures(model, x, target, maps: dict[str, AuditMap], vg, cfg: AuditConfig, batch_size,
              columns_of: dict) -> dict:
    """EF (of the rank-normalised map and of the map itself; corrected and plug-in, with their Monte Carlo
    error, see :func:`.mc.ef_columns`), ΔEF and deletion/insertion AUCs of every map into ``columns_of``;
    returns the tensors to keep (curves, maps)."""
    tensors: dict[str, torch.Tensor] = {}
    fractions = torch.linspace(0, 1, cfg.fractions, dtype=torch.float64)
    for m, am in maps.items():
        mp = am.map.detach()
        ef_cols = ef_columns(m, am, cfg.measures, vg, cfg.gap_exclude_dc)
        columns_of.update(ef_cols)
        columns_of.update(gap_error_columns(m, am, cfg.measures, ef_cols, cfg.gap_exclude_dc))
        if METHODS[m].ranks_pixels and ("deletion" in cfg.measures or "insertion" in cfg.measures):
            di = deletion_insertion(model, x, mp, target, fractions=fractions, erosion=cfg.erosion,
                                    baseline=cfg.deletion_baseline, batch_size=batch_size)
            errors = _auc_mc_errors(model, x, target, am, cfg, fractions, batch_size)
            for kind in ("deletion", "insertion"):
                if kind in cfg.measures:
                    columns_of[f"{m}_{kind}"] = di[f"{kind}_auc"]
                    tensors[f"curves/{m}/{kind}"] = di[f"{kind}_curve"].float()
                    if errors is not None:
                        columns_of[f"{m}_{kind}_mc_error"] = errors[kind]
        if m in cfg.kept_maps:
            tensors[f"maps/{m}"] = mp.to(getattr(torch, cfg.maps_dtype))
    return tensors


def _auc_mc_errors(model, x, target, am: AuditMap, cfg: AuditConfig, fractions, batch_size) -> dict | None:
    """{deletion, insertion: (b,)} Monte Carlo errors of a map's AUCs: 0 for a deterministic map; with
    --auc-mc-error and halves, |AUC(A) − AUC(B)|/2 of the halves' maps (two more deletion/insertion runs);
    else None (NaN in the table)."""
    if am.kind == "deterministic":
        zero = torch.zeros(x.shape[0], dtype=torch.float64)
        return {"deletion": zero, "insertion": zero}
    if not cfg.auc_mc_error or am.halves is None:
        return None
    a, b = (deletion_insertion(model, x, h.detach(), target, fractions=fractions, erosion=cfg.erosion,
                               baseline=cfg.deletion_baseline, batch_size=batch_size) for h in am.halves)
    return {k: half_split_error(a[f"{k}_auc"], b[f"{k}_auc"]) for k in ("deletion", "insertion")}


def failed_row(cfg: AuditConfig, index: int, name: str, label: int | None, error: str) -> dict:
    """The row of an image that could not be read: status "failed", the reason, NaN measures."""
    row = _empty_row(cfg, index, name, label)
    row.update(status="failed", error=error)
    return row
