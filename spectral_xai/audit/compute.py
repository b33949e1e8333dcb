"""One shard of the audit: the clean prediction, every requested map and every requested measure.

All sampling is keyed by (seed, global image index), so an image's numbers depend only on the
configuration and the shard it belongs to (shards are fixed by the configuration), never on the process
count, the batch size or whether the run was resumed.
"""
from __future__ import annotations

import math

import torch

from ..lens import spectral_lens
from ..methods import explain
from ..metrics import deletion_insertion, inconsistency
from ..scale import cs_curves
from ..spectrum import expected_frequency, explanation_gap
from .config import LENS_METHODS, AuditConfig

NO_DELETION = ("al",)      # ArgLens maps a scale, not an importance: no deletion/insertion ranking
PER_IMAGE = ("index", "name", "status", "error", "label", "target", "confidence", "entropy", "sigma_opt",
             "inconsistency")
PER_METHOD = ("ef", "gap", "deletion", "insertion", "samples")


def columns(cfg: AuditConfig) -> list[str]:
    """The table's columns, in order: per image, then ``<method>_<measure>`` per method."""
    return list(PER_IMAGE) + [f"{m}_{k}" for m in cfg.methods for k in PER_METHOD]


def _nan_row(cfg: AuditConfig, index: int, name: str, label: int) -> dict:
    row = {c: math.nan for c in columns(cfg)}
    row.update(index=index, name=name, status="ok", error="", label=label, target=-1)
    return row


def _method_options(cfg: AuditConfig, method: str, ids: torch.Tensor, batch_size) -> tuple[dict, float]:
    """Keyword options of ``method`` under ``cfg`` and its nominal samples (model passes) per image."""
    common = dict(batch_size=batch_size, image_ids=ids, fast=cfg.fast())
    if method in ("vg", "vg2"):
        return dict(output=cfg.output, **common), 1.0
    if method in ("sg", "sg2"):
        return dict(sigma=cfg.sg_sigma, n_samples=cfg.samples, output=cfg.output, seed=cfg.seed, **common), \
            float(cfg.samples)
    if method in ("ig", "ig2", "xig", "xig2"):
        return dict(n_steps=cfg.ig_steps, output=cfg.output, **common), float(cfg.ig_steps)
    if method == "rise":
        return dict(n_masks=cfg.rise_masks, seed=cfg.seed, batch_size=batch_size, image_ids=ids), \
            float(cfg.rise_masks)
    if method == "occlusion":
        return dict(batch_size=batch_size), math.nan
    raise ValueError(f"spectral_xai audit: method {method!r} has no audit options")


def audit_batch(model, x: torch.Tensor, ids: torch.Tensor, labels: torch.Tensor, names: list[str],
                cfg: AuditConfig, batch_size: int | None = None) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """x (b, C, S, S) valid images with global indices ids (b,) and labels (b,) (−1: none).

    Returns one row per image (see :func:`columns`) and the tensors to keep: ``maps/<m>`` (b, S, S),
    ``curves/<m>/deletion|insertion`` (b, Q)."""
    b = x.shape[0]
    rows = [_nan_row(cfg, int(i), n, int(lab)) for i, n, lab in zip(ids.tolist(), names, labels.tolist())]
    with torch.no_grad():
        chunk = batch_size or b
        logits = torch.cat([model(x[lo:lo + chunk]) for lo in range(0, b, chunk)]).double()
    prob = torch.softmax(logits, dim=1)
    pred = prob.argmax(dim=1)
    if cfg.target == "label":
        if bool((labels < 0).any()):
            raise ValueError("spectral_xai audit: option 'target': 'label' needs labels (--labels folders or a "
                             "labelled built-in)")
        target = labels.to(x.device)
    else:
        target = pred
    conf = prob.gather(1, target.view(-1, 1)).squeeze(1)
    entropy = -(prob * prob.clamp_min(1e-300).log()).sum(dim=1)
    maps: dict[str, torch.Tensor] = {}
    samples: dict[str, torch.Tensor] = {}
    per_image: dict[str, torch.Tensor] = {}
    ids_dev = ids.to(x.device)
    if cfg.needs_lens():
        sig = torch.tensor(cfg.sigmas, dtype=torch.float64)
        res = spectral_lens(model, x, sig, target, n_samples=cfg.samples, prior=cfg.prior,
                            noise_scale=cfg.noise_scale, output=cfg.output, seed=cfg.seed, image_ids=ids_dev,
                            batch_size=batch_size, return_per_sigma=True, fast=cfg.fast())
        per_sigma = res.per_sigma.double()
        curves, _ = cs_curves(per_sigma, res.sigmas, cfg.noise_scale)
        j = curves.argmax(dim=1)
        lens_maps = {"sl2": res.sl2, "al": res.arglens, "sg2opt": per_sigma[torch.arange(b), j]}
        lens_samples = res.n_samples.sum(dim=1).double()
        for m in LENS_METHODS:
            if m in cfg.methods:
                maps[m], samples[m] = lens_maps[m], lens_samples
        per_image["sigma_opt"] = res.sigmas.to(j.device)[j]
        if "inconsistency" in cfg.measures:
            per_image["inconsistency"] = inconsistency(per_sigma)
        if "sigma_opt" not in cfg.measures:
            per_image.pop("sigma_opt")
    for m in cfg.methods:
        if m in LENS_METHODS:
            continue
        opts, nominal = _method_options(cfg, m, ids_dev, batch_size)
        maps[m] = explain(m, model, x, target, **opts)
        samples[m] = torch.full((b,), nominal, dtype=torch.float64)
    vg = maps.get("vg")
    if "gap" in cfg.measures and vg is None:
        vg = explain("vg", model, x, target, **_method_options(cfg, "vg", ids_dev, batch_size)[0])
    tensors: dict[str, torch.Tensor] = {}
    columns_of: dict[str, torch.Tensor] = {}
    fractions = torch.linspace(0, 1, cfg.fractions, dtype=torch.float64)
    for m, mp in maps.items():
        mp = mp.detach()
        if "ef" in cfg.measures:
            columns_of[f"{m}_ef"] = expected_frequency(mp.float())
        if "gap" in cfg.measures:
            columns_of[f"{m}_gap"] = explanation_gap(vg.float(), mp.float())
        if m not in NO_DELETION and ("deletion" in cfg.measures or "insertion" in cfg.measures):
            di = deletion_insertion(model, x, mp, target, fractions=fractions, erosion=cfg.erosion,
                                    baseline=cfg.deletion_baseline, batch_size=batch_size)
            for kind in ("deletion", "insertion"):
                if kind in cfg.measures:
                    columns_of[f"{m}_{kind}"] = di[f"{kind}_auc"]
                    tensors[f"curves/{m}/{kind}"] = di[f"{kind}_curve"].float()
        columns_of[f"{m}_samples"] = samples[m]
        if m in cfg.kept_maps:
            tensors[f"maps/{m}"] = mp.to(getattr(torch, cfg.maps_dtype))
    columns_of.update(per_image)
    columns_of["confidence"], columns_of["entropy"] = conf, entropy
    for k, v in columns_of.items():
        for row, val in zip(rows, v.detach().double().cpu().tolist()):
            row[k] = val
    for row, t in zip(rows, target.tolist()):
        row["target"] = int(t)
    return rows, tensors


def failed_row(cfg: AuditConfig, index: int, name: str, label: int, error: str) -> dict:
    """The row of an image that could not be read: status "failed", the reason, NaN measures."""
    row = _nan_row(cfg, index, name, label)
    row.update(status="failed", error=error)
    return row
