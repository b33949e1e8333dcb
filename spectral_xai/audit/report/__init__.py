"""``report.html`` of an audit run: one self-contained file (figures embedded as data URIs: JPEG for the map
panels, PNG for the plots, at most the page's width) built from manifest.json, metrics.parquet, sessions.json
and the shards.  ``spectral-xai report RUN_DIR`` rebuilds it.

Sections: warnings (σ* at the end of the admissible grid, the image-independent share of SL², flat ArgLens
maps; :mod:`.checks`); run summary and every session (first run and resumes); per-method means ± standard error (EF of
the rank-normalised map and of the map as is, each with its per-image Monte Carlo error, ΔEF,
deletion/insertion AUC, the map's relative Monte Carlo error, samples; each method's EF estimator in words;
bold only where a Welch t-test says a method beats every other); per-image panels (file name, class and
probability; image, SL², ArgLens shown as 1/(AL+1) with a σ scale, other maps, each with a colourbar); EF
histograms on common bins per recipe (corrected EF, the plug-in EF as an outline, mean ± se); how much the
plug-in EF was off (per method with halves); σ* distribution; inconsistency vs predictive entropy (ECCV24
Fig. 11); mean deletion/insertion curves with their standard-error bands; failed images; the first rows of
the table (per-image columns under grouped headers, with the clean top-5; then one images × methods table
per per-method measure); the data dictionary, each per-method column once (:mod:`..columns`).

Modules: :mod:`.tables` (method table, plug-in bias, rows, dictionary, sessions), :mod:`.figures` (panels,
histograms, σ*, inconsistency, curves), :mod:`.page` (CSS, embedded figures, number formats),
:mod:`.checks` (warnings).
"""
from __future__ import annotations

import html
from pathlib import Path

from ...methods import label
from ..mc import run_kinds
from ..rundir import MANIFEST, REPORT, SESSIONS, SHARD_DIR, TABLE, read_manifest, read_sessions
from ..store import atomic_write, shard_spans
from .checks import warnings_html
from .figures import FIGURES, curves, ef_histograms, inconsistency_figure, panels, sigma_histogram
from .page import CSS, kv
from .tables import (dictionary, dictionary_table, failed_table, method_table, plugin_bias_table, rows_table,
                     sessions_table)

__all__ = ["FIGURES", "build_report"]


def _summary(manifest, table, run_dir: Path) -> dict:
    """The run's key facts (model, data, images, options, device, versions) as label -> text."""
    cfg, env = manifest["config"], manifest["environment"]
    ok = int((table["status"] == "ok").sum())
    hardware = env.get("gpu") or f"{env.get('cpus')} CPUs"
    return {
        "run directory": run_dir.name,
        "model": cfg["model"], "data": f"{manifest['dataset']['source']} ({manifest['dataset']['n_images']} images, "
                                      f"fingerprint {manifest['dataset']['fingerprint'][:12]})",
        "images": f"{ok} audited, {len(table) - ok} failed", "size": f"{cfg['size']} px",
        "methods": ", ".join(label(m) for m in cfg["methods"]),
        "measures": ", ".join(cfg["measures"]) + ("; ΔEF without the DC ring" if cfg.get("gap_exclude_dc") else ""),
        "sampling": f"{cfg['samples']} samples per σ, σ ∈ {cfg['sigmas']}, noise scale {cfg['noise_scale']}, "
                    f"prior {cfg['prior']}; SG std {cfg['sg_sigma']}; seed {cfg['seed']}",
        "device": f"{manifest['key_fields']['device']} ({hardware}), "
                  f"{cfg['dtype']}, {manifest['world_size']} process(es), {env.get('threads')} threads each",
        "versions": f"spectral_xai {manifest['spectral_xai']}, torch {env['torch']}",
        "configuration key": manifest["key"], "created": manifest["created"],
    }


def _read_run(run_dir: Path):
    """(manifest, table, sessions) of a run directory; ValueError when the run has no manifest or table yet."""
    import pandas as pd

    manifest = read_manifest(run_dir)
    if manifest is None:
        raise ValueError(f"spectral_xai report: argument 'run_dir': {run_dir} has no {MANIFEST}")
    tpath = run_dir / TABLE
    if not tpath.exists():
        raise ValueError(f"spectral_xai report: {run_dir} has no {TABLE} yet (the audit is unfinished; "
                         "run it again with --resume)")
    return manifest, pd.read_parquet(tpath), read_sessions(run_dir)


def build_report(run_dir: str | Path) -> Path:
    """Write RUN_DIR/report.html from the run's files; returns its path."""
    run_dir = Path(run_dir)
    manifest, table, sessions = _read_run(run_dir)
    cfg, source = manifest["config"], manifest["dataset"]["source"]
    methods, classes = cfg["methods"], manifest.get("output_classes")
    kinds = run_kinds(cfg, methods)
    spans = shard_spans(manifest["dataset"]["n_images"], cfg["shard_size"])
    described = dictionary(run_dir / TABLE, list(table.columns))
    ok = int((table["status"] == "ok").sum())
    title = f"spectral_xai audit of {cfg['model']} on {source} ({run_dir.name})"
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head><body>",
        f"<h1>Explanation audit: {html.escape(cfg['model'])} on {html.escape(source)}</h1><p class='sub'>"
        f"run {html.escape(run_dir.name)} · {ok} images · spectral_xai</p>",
        warnings_html(table, run_dir, manifest, spans),
        "<h2>Run</h2>", kv(_summary(manifest, table, run_dir)), "<h3>Sessions</h3>", sessions_table(sessions),
        "<h2>Methods</h2>", method_table(table, methods, kinds),
        "<h2>Per-image maps</h2>", panels(run_dir, manifest, table, methods, spans),
        "<h2>Expected Frequency</h2>", ef_histograms(table, methods, manifest, kinds),
        "<h3 id='plugin-bias-title'>How much the plug-in EF was off</h3>", plugin_bias_table(table, methods, kinds),
        "<h2>Optimal noise level</h2>", sigma_histogram(table, manifest),
        "<h2>Inconsistency and predictive entropy</h2>", inconsistency_figure(table, manifest),
        "<h2>Deletion and insertion</h2>", curves(run_dir, manifest, methods, spans),
        "<h2>Failed images</h2>", failed_table(table),
        "<h2>Per-image table</h2>", rows_table(table, classes, methods, described),
        "<h2>Columns of metrics.parquet</h2>", dictionary_table(described),
        f"<p class='note'>Files: {MANIFEST}, {TABLE}, {SESSIONS}, {SHARD_DIR}/ ({len(spans)} safetensors "
        "shards).</p>",
        "</body></html>",
    ]
    return atomic_write(run_dir / REPORT, lambda tmp: Path(tmp).write_text("".join(parts), encoding="utf-8"))
