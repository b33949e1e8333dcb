"""``report.html`` of an audit run: one self-contained file (figures embedded as PNG data URIs) built from
manifest.json, metrics.parquet and the shards.  ``spectral-xai report RUN_DIR`` rebuilds it.

Sections: run summary; per-method means (EF, ΔEF, deletion/insertion AUC, samples); per-image panels
(image, SL², ArgLens shown as 1/(AL+1) like the authors, other maps); EF histograms per method; σ*
distribution; inconsistency vs predictive entropy (ECCV24 Fig. 11); mean deletion/insertion curves;
failed images; the first rows of the table.
"""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import torch

from ..methods import label
from ..viz import _display, _matplotlib
from .store import SHARD_DIR, atomic_write, read_shard_tensors, shard_plan, shard_path

FIGURES = ("panels", "ef-histograms", "sigma-opt", "inconsistency-entropy", "deletion-insertion")
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1180px;
color:#222;line-height:1.45;padding:0 16px}
h1{font-size:1.6em;margin-bottom:0}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;margin-top:4px}table{border-collapse:collapse;font-size:0.88em;margin:8px 0}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right;white-space:nowrap}th{background:#f4f4f4}
td.l,th.l{text-align:left}
td.best{font-weight:bold;background:#eef7ee}figure{margin:12px 0}figcaption{color:#555;font-size:0.9em}
img{max-width:100%}.kv td{text-align:left}.note{color:#666;font-size:0.9em}.scroll{overflow-x:auto}
"""


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=96)
    _matplotlib().close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(fig_id: str, fig, caption: str) -> str:
    return (f'<figure id="fig-{fig_id}"><img alt="{html.escape(caption)}" src="data:image/png;base64,{_png(fig)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _missing(fig_id: str, why: str) -> str:
    return f'<figure id="fig-{fig_id}"><p class="note">{html.escape(why)}</p></figure>'


def _why_missing(manifest, measure: str) -> str:
    if measure in manifest["config"]["measures"]:
        return f"No {measure} values: no image was audited successfully (see Failed images)."
    return f"{measure} was not measured (add '{measure}' to --measures)."


def _fmt(v, digits=4) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    a = abs(float(v))
    return f"{float(v):.{digits}g}" if (a >= 1e-3 or a == 0) else f"{float(v):.3e}"


def _class_name(classes, t) -> str:
    if classes is not None and 0 <= int(t) < len(classes):
        return classes[int(t)]
    return f"class {int(t)}"


def _method_table(table, methods) -> str:
    measures = [("ef", "EF", None), ("gap", "ΔEF vs VG", None), ("deletion", "deletion AUC ↓", "min"),
                ("insertion", "insertion AUC ↑", "max"), ("samples", "samples / image", None)]
    present = [(k, t, b) for k, t, b in measures if any(f"{m}_{k}" in table for m in methods)]
    ok = table[table["status"] == "ok"]
    means = {(m, k): float(ok[f"{m}_{k}"].mean()) if f"{m}_{k}" in ok and ok[f"{m}_{k}"].notna().any()
             else None for m in methods for k, _, _ in present}
    stds = {(m, k): float(ok[f"{m}_{k}"].std()) if f"{m}_{k}" in ok and ok[f"{m}_{k}"].notna().sum() > 1
            else None for m in methods for k, _, _ in present}
    best = {}
    for k, _, rule in present:
        vals = {m: means[m, k] for m in methods if means[m, k] is not None}
        if rule and vals:
            best[k] = (min if rule == "min" else max)(vals, key=vals.get)
    head = "".join(f"<th>{html.escape(t)}</th>" for _, t, _ in present)
    body = []
    for m in methods:
        cells = []
        for k, _, _ in present:
            mu, sd = means[m, k], stds[m, k]
            txt = _fmt(mu) + (f" ± {_fmt(sd, 2)}" if sd is not None and k != "samples" else "")
            cls = ' class="best"' if best.get(k) == m else ""
            cells.append(f"<td{cls}>{txt}</td>")
        body.append(f'<tr><td class="l">{html.escape(label(m))}</td>{"".join(cells)}</tr>')
    return (f'<table><tr><th class="l">method</th>{head}</tr>{"".join(body)}</table>'
            f'<p class="note">Mean ± standard deviation over {len(ok)} images. EF: Expected Frequency of the '
            "rank-normalised map (ICCV25); ΔEF = |EF(method) − EF(VanillaGrad)|, the explanation-gap proxy; "
            "AUCs over the actual removed fraction (ECCV24 §5), best in bold.</p>")


def _panels(run_dir, manifest, table, methods, plan) -> str:
    plt = _matplotlib()
    n = manifest["config"]["panels"]
    kept = [m for m in (manifest["config"]["keep_maps"] or methods) if m in methods]
    images, maps = {}, {m: {} for m in kept}
    for span in plan:
        if span[0] >= n:
            break
        t = read_shard_tensors(shard_path(run_dir, span))
        idx = t.get("maps_index", torch.empty(0, dtype=torch.int64)).tolist()
        for i in range(span[0], min(span[1], n)):
            if f"image/{i}" in t:
                images[i] = t[f"image/{i}"]
                for m in kept:
                    if f"maps/{m}" in t and i in idx:
                        maps[m][i] = t[f"maps/{m}"][idx.index(i)].float()
    if not images:
        return _missing("panels", "No panel images (panels = 0, or every one of the first images failed).")
    ids = sorted(images)
    classes = manifest.get("output_classes")
    rows = table.set_index("index")
    cols = 1 + len(kept)
    fig, axes = plt.subplots(len(ids), cols, figsize=(1.9 * cols, 1.95 * len(ids)), squeeze=False)
    for r, i in enumerate(ids):
        img = images[i].float() / 255
        axes[r, 0].imshow(img.permute(1, 2, 0).numpy().squeeze(), cmap="gray" if img.shape[0] == 1 else None)
        row = rows.loc[i]
        axes[r, 0].set_title(f"#{i} {_class_name(classes, row['target'])[:22]}\n({row['confidence']:.2f})",
                             fontsize=7)
        for c, m in enumerate(kept, start=1):
            ax = axes[r, c]
            if i in maps[m]:
                mp = maps[m][i]
                if m == "al":
                    ax.imshow((1 / (mp + 1)).numpy(), cmap="viridis")
                else:
                    shown, kw = _display(mp, signed=bool((mp < 0).any()))
                    ax.imshow(shown.numpy(), **kw)
            if r == 0:
                ax.set_title(label(m) + (" (1/(AL+1))" if m == "al" else ""), fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    return _figure("panels", fig, f"The first {len(ids)} images with their maps (clipped at the 99.5th percentile; "
                                  "signed maps in a diverging colour map).")


def _ef_histograms(table, methods, manifest) -> str:
    cols = [m for m in methods if f"{m}_ef" in table and table[f"{m}_ef"].notna().any()]
    if not cols:
        return _missing("ef-histograms", _why_missing(manifest, "ef"))
    plt = _matplotlib()
    fig, axes = plt.subplots(1, len(cols), figsize=(2.6 * len(cols), 2.4), squeeze=False)
    for ax, m in zip(axes[0], cols):
        v = table[f"{m}_ef"].dropna().to_numpy()
        ax.hist(v, bins=min(30, max(5, len(v) // 2)), color="#4c72b0")
        ax.set_title(f"{label(m)}: mean {_fmt(float(v.mean()))}", fontsize=8)
        ax.set_xlabel("EF (rank-normalised)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.locator_params(axis="x", nbins=3)
    return _figure("ef-histograms", fig, "Expected Frequency per image, one histogram per method.")


def _sigma_hist(table, manifest) -> str:
    if "sigma_opt" not in table or not table["sigma_opt"].notna().any():
        return _missing("sigma-opt", _why_missing(manifest, "sigma_opt"))
    plt = _matplotlib()
    sig = np.asarray(manifest["config"]["sigmas"], dtype=float)
    v = table["sigma_opt"].dropna().to_numpy()
    counts = [(np.isclose(v, s)).sum() for s in sig]
    fig, ax = plt.subplots(figsize=(4.8, 2.6))
    ax.bar(sig, counts, width=0.8 * (np.diff(np.sort(sig)).min() if len(sig) > 1 else 0.1), color="#dd8452")
    ax.set_xlabel("σ* (argmax of CS(σ) = (σs)^2.5 ||E_σ[g²]||₁)", fontsize=8)
    ax.set_ylabel("images", fontsize=8)
    return _figure("sigma-opt", fig, f"Distribution of the optimal noise level σ* over {len(v)} images "
                                     f"(grid of {len(sig)} σ, noise scale {manifest['config']['noise_scale']}).")


def _inconsistency(table, manifest) -> str:
    if "inconsistency" not in table or not table["inconsistency"].notna().any():
        return _missing("inconsistency-entropy", _why_missing(manifest, "inconsistency"))
    plt = _matplotlib()
    ok = table[table["inconsistency"].notna()]
    fig, ax = plt.subplots(figsize=(4.8, 3.2))
    ax.scatter(ok["entropy"], ok["inconsistency"], s=14, alpha=0.75, color="#55a868")
    if len(ok) > 2:
        from scipy.stats import spearmanr

        rho = spearmanr(ok["entropy"], ok["inconsistency"]).statistic
        ax.set_title(f"Spearman ρ = {rho:.2f} over {len(ok)} images", fontsize=9)
    ax.set_xlabel("predictive entropy of the clean input (nats)", fontsize=8)
    ax.set_ylabel("inconsistency across σ (1 − mean cos)", fontsize=8)
    return _figure("inconsistency-entropy", fig, "Inconsistency of the per-σ SG² maps against predictive "
                                                 "entropy (ECCV24 Fig. 11).")


def _curves(run_dir, manifest, methods, plan) -> str:
    sums, counts = {}, {}
    for span in plan:
        for k, v in read_shard_tensors(shard_path(run_dir, span), prefix="curves/").items():
            sums[k] = sums.get(k, 0) + v.double().sum(dim=0)
            counts[k] = counts.get(k, 0) + v.shape[0]
    if not sums:
        return _missing("deletion-insertion", _why_missing(manifest, "deletion"))
    plt = _matplotlib()
    q = np.linspace(0, 1, manifest["config"]["fractions"])
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, kind in zip(axes, ("deletion", "insertion")):
        for m in methods:
            k = f"curves/{m}/{kind}"
            if k in sums:
                ax.plot(q, (sums[k] / counts[k]).numpy(), label=label(m))
        ax.set_xlabel("fraction of pixels removed (MoRF)" if kind == "deletion" else "fraction of pixels inserted",
                      fontsize=8)
        ax.set_ylabel("mean target probability", fontsize=8)
        ax.set_title(kind, fontsize=9)
        ax.legend(fontsize=7)
    return _figure("deletion-insertion", fig, f"Mean deletion (↓ better) and insertion (↑ better) curves, "
                                              f"{manifest['config']['deletion_baseline']} baseline, erosion "
                                              f"{manifest['config']['erosion']}.")


def _kv(d: dict) -> str:
    return "<table class='kv'>" + "".join(
        f"<tr><th class='l'>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in d.items()) \
        + "</table>"


def _rows_table(table, classes, limit=200) -> str:
    show = table.head(limit).copy()
    if classes is not None:
        show.insert(show.columns.get_loc("target") + 1, "class",
                    [_class_name(classes, t) if t >= 0 else "" for t in show["target"]])
    cols = [c for c in show.columns if c != "error"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(
        f"<td class='l'>{html.escape(str(r[c]))}</td>" if isinstance(r[c], str) else f"<td>{_fmt(r[c])}</td>"
        for c in cols) + "</tr>" for _, r in show.iterrows())
    more = f"<p class='note'>First {limit} of {len(table)} rows; all in metrics.parquet.</p>" \
        if len(table) > limit else ""
    return f"<div class='scroll'><table><tr>{head}</tr>{body}</table></div>{more}"


def build_report(run_dir: str | Path) -> Path:
    """Write RUN_DIR/report.html from the run's files; returns its path."""
    import pandas as pd

    run_dir = Path(run_dir)
    mpath = run_dir / "manifest.json"
    if not mpath.exists():
        raise ValueError(f"spectral_xai report: argument 'run_dir': {run_dir} has no manifest.json")
    manifest = json.loads(mpath.read_text())
    tpath = run_dir / "metrics.parquet"
    if not tpath.exists():
        raise ValueError(f"spectral_xai report: {run_dir} has no metrics.parquet yet (the audit is unfinished; "
                         "run it again with --resume)")
    table = pd.read_parquet(tpath)
    cfg = manifest["config"]
    methods = cfg["methods"]
    plan = shard_plan(manifest["dataset"]["n_images"], cfg["shard_size"])
    sessions = json.loads((run_dir / "sessions.json").read_text()) if (run_dir / "sessions.json").exists() else []
    ok = int((table["status"] == "ok").sum())
    env = manifest["environment"]
    hardware = env.get("gpu") or f"{env.get('cpus')} CPUs"
    summary = {
        "model": cfg["model"], "data": f"{manifest['dataset']['source']} ({manifest['dataset']['n_images']} images, "
                                      f"fingerprint {manifest['dataset']['fingerprint'][:12]})",
        "images": f"{ok} audited, {len(table) - ok} failed", "size": f"{cfg['size']} px",
        "methods": ", ".join(label(m) for m in methods), "measures": ", ".join(cfg["measures"]),
        "sampling": f"{cfg['samples']} samples per σ, σ ∈ {cfg['sigmas']}, noise scale {cfg['noise_scale']}, "
                    f"prior {cfg['prior']}; SG std {cfg['sg_sigma']}; seed {cfg['seed']}",
        "device": f"{manifest['key_fields']['device']} ({hardware}), "
                  f"{cfg['dtype']}, {manifest['world_size']} process(es), {env.get('threads')} threads each",
        "versions": f"spectral_xai {manifest['spectral_xai']}, torch {env['torch']}",
        "configuration key": manifest["key"], "created": manifest["created"],
    }
    for s in sessions:
        if s.get("images_per_s"):
            summary[f"session {s['finished']}"] = (f"{s['images']} images, {s['images_per_s']:.3g} images/s "
                                                   f"({s['compute_images_per_s']:.3g} images/s computing)")
    failed = table[table["status"] != "ok"]
    failed_html = "<p>None.</p>" if failed.empty else "<table><tr><th class='l'>image</th><th class='l'>reason" \
        "</th></tr>" + "".join(f"<tr><td class='l'>{html.escape(str(r['name']))}</td><td class='l'>"
                               f"{html.escape(str(r['error']))}</td></tr>" for _, r in failed.iterrows()) + "</table>"
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>spectral_xai audit: "
        f"{html.escape(run_dir.name)}</title><style>{CSS}</style></head><body>",
        f"<h1>Explanation audit</h1><p class='sub'>{html.escape(cfg['model'])} on "
        f"{html.escape(manifest['dataset']['source'])} · {ok} images · spectral_xai</p>",
        "<h2>Run</h2>", _kv(summary),
        "<h2>Methods</h2>", _method_table(table, methods),
        "<h2>Per-image maps</h2>", _panels(run_dir, manifest, table, methods, plan),
        "<h2>Expected Frequency</h2>", _ef_histograms(table, methods, manifest),
        "<h2>Optimal noise level</h2>", _sigma_hist(table, manifest),
        "<h2>Inconsistency and predictive entropy</h2>", _inconsistency(table, manifest),
        "<h2>Deletion and insertion</h2>", _curves(run_dir, manifest, methods, plan),
        "<h2>Failed images</h2>", failed_html,
        "<h2>Per-image table</h2>", _rows_table(table, manifest.get("output_classes")),
        f"<p class='note'>Files: manifest.json, metrics.parquet, {SHARD_DIR}/ ({len(plan)} safetensors shards).</p>",
        "</body></html>",
    ]
    return atomic_write(run_dir / "report.html", lambda tmp: Path(tmp).write_text("".join(parts), encoding="utf-8"))
