"""``report.html`` of an audit run: one self-contained file (figures embedded as data URIs: JPEG for the map
panels, PNG for the plots, at most the page's width) built from manifest.json, metrics.parquet, sessions.json
and the shards.  ``spectral-xai report RUN_DIR`` rebuilds it.

Sections: run summary and every session (first run and resumes); per-method means ± standard error (EF of
the rank-normalised map and of the map as is, each with its per-image Monte Carlo error, ΔEF,
deletion/insertion AUC, the map's relative Monte Carlo error, samples; each method's EF estimator in words;
bold only where a Welch t-test says a method beats every other); per-image panels (file name, class and
probability; image, SL², ArgLens shown as 1/(AL+1) with a σ scale, other maps, each with a colourbar); EF
histograms on common bins per recipe (corrected EF, the plug-in EF as an outline, mean ± se); how much the
plug-in EF was off (per method with halves); σ* distribution; inconsistency vs predictive entropy (ECCV24 Fig. 11); mean deletion/insertion
curves; failed images; the first rows of the table under grouped headers (with the clean top-5); the data
dictionary of the table's columns.
"""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import torch

from ..comparison import welch_best
from ..methods import label
from ..viz import _display, _matplotlib
from .mc import ESTIMATORS, plugin_bias, rms, run_kinds
from .store import SHARD_DIR, atomic_write, read_shard_tensors, shard_path, shard_plan

FIGURES = ("panels", "ef-histograms", "sigma-opt", "inconsistency-entropy", "deletion-insertion")
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1180px;
color:#222;line-height:1.45;padding:0 16px}
h1{font-size:1.6em;margin-bottom:0}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;margin-top:4px}table{border-collapse:collapse;font-size:0.88em;margin:8px 0}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right;white-space:nowrap}th{background:#f4f4f4}
td.l,th.l{text-align:left}
td.best{font-weight:bold;background:#eef7ee}figure{margin:12px 0}figcaption{color:#555;font-size:0.9em}
img{max-width:100%;height:auto}.kv td{text-align:left;white-space:normal}.note{color:#666;font-size:0.9em}
.scroll{overflow-x:auto}
tr.groups th{background:#e8ecf2;text-align:center}td.top5{font-size:0.82em;line-height:1.25}
td.wrap{white-space:normal}h3{margin-bottom:4px}#method-table th{white-space:normal}
"""


PAGE_WIDTH_IN = 11.4                                  # figures are drawn at most this wide (1140 px at 100 dpi)
DPI = 100
ALPHA = 0.05                                          # Welch test level for bold "best" cells


def _encoded(fig, fmt: str) -> str:
    """The figure as a base64 PNG, or JPEG (quality 80) for image-like panels."""
    buf = io.BytesIO()
    fig.tight_layout()
    extra = {"pil_kwargs": {"quality": 80, "optimize": True}} if fmt == "jpeg" else {}
    fig.savefig(buf, format=fmt, dpi=DPI, **extra)
    _matplotlib().close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(fig_id: str, fig, caption: str, fmt: str = "png", data: dict | None = None) -> str:
    """``<figure>`` with the embedded image; ``data`` (what the figure shows) goes into ``data-figure``."""
    attr = f" data-figure='{html.escape(json.dumps(data), quote=True)}'" if data is not None else ""
    return (f'<figure id="fig-{fig_id}"{attr}><img alt="{html.escape(caption)}" '
            f'src="data:image/{fmt};base64,{_encoded(fig, fmt)}"><figcaption>{html.escape(caption)}</figcaption>'
            "</figure>")


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


METHOD_MEASURES = (("ef", "EF, rank-normalised map (ICCV25 recipe)", None),
                   ("ef_unranked", "EF, map as is (no rank normalisation)", None),
                   ("gap", "ΔEF vs VG (rank-normalised)", None), ("deletion", "deletion AUC ↓", "min"),
                   ("insertion", "insertion AUC ↑", "max"),
                   ("rel_error", "relative MC error of the map", None), ("samples", "samples / image", None))
MC_ERROR_OF = {"ef": "ef_mc_error", "ef_unranked": "ef_unranked_mc_error"}   # EF column -> its per-image error


def _mc_line(err: np.ndarray | None) -> str:
    """The per-image Monte Carlo error line of an EF cell: rms over the images, 0, or not estimated."""
    if err is None:
        return ""
    finite = err[np.isfinite(err)]
    if finite.size == 0:
        return "<br><span class='note mc'>MC error not estimated</span>"
    if not finite.any():
        return "<br><span class='note mc'>MC error 0 (exact)</span>"
    return f"<br><span class='note mc'>MC error {_fmt(rms(finite), 2)} per image</span>"


def _method_cell(v: np.ndarray, bold: bool, count: bool, err: np.ndarray | None = None) -> str:
    """mean ± standard error (sd) of one method's values; a count shows its mean only; ``err``: the per-image
    Monte Carlo errors of the values (shown as their rms)."""
    if len(v) == 0:
        return "<td>–</td>"
    txt = _fmt(float(v.mean()))
    if len(v) > 1 and not count:
        sd = float(v.std(ddof=1))
        txt += f" ± {_fmt(sd / np.sqrt(len(v)), 2)}<br><span class='note'>sd {_fmt(sd, 2)}</span>"
    cls = ' class="best"' if bold else ""
    return f"<td{cls}>{txt}{_mc_line(err)}</td>"


def _method_table(table, methods, kinds: dict[str, str] | None = None) -> str:
    """Per-method means ± standard error across images (EF cells with their per-image Monte Carlo error),
    each method's EF estimator, and which method is better (Welch).  ``kinds``: {method: kind of
    :mod:`.mc`} (none: the estimator column is left out)."""
    present = [(k, t, b) for k, t, b in METHOD_MEASURES if any(f"{m}_{k}" in table for m in methods)]
    ok = table[table["status"] == "ok"]

    def col(m, k):
        return ok[f"{m}_{k}"].dropna().to_numpy(dtype=float) if f"{m}_{k}" in ok else np.empty(0)

    vals = {(m, k): col(m, k) for m in methods for k, _, _ in present}
    errs = {(m, k): ok[f"{m}_{e}"].to_numpy(dtype=float) for m in methods for k, e in MC_ERROR_OF.items()
            if f"{m}_{e}" in ok}
    best, notes = {}, []
    for k, title, rule in present:
        if rule:
            best[k], p = welch_best({m: vals[m, k] for m in methods}, rule, ALPHA)
            ps = ", ".join(f"{label(m)} {_fmt(q, 2)}" for m, q in p.items())
            notes.append(f"{title}: " + (f"{label(best[k])} is better than every other method (Welch p: {ps})"
                                         if best[k] else f"no method is better than all others at p < {ALPHA} "
                                         f"(Welch p of the best mean against: {ps or 'nothing to compare'})"))
    est_head = "<th class='l'>EF estimator</th>" if kinds else ""
    head = est_head + "".join(f"<th>{html.escape(t)}</th>" for _, t, _ in present)
    body = "".join(
        f'<tr><td class="l">{html.escape(label(m))}</td>'
        + (f"<td class='l wrap est'>{html.escape(ESTIMATORS[kinds[m]])}</td>" if kinds else "")
        + "".join(_method_cell(vals[m, k], best.get(k) == m, k == "samples", errs.get((m, k)))
                  for k, _, _ in present) + "</tr>" for m in methods)
    return (f'<div class="scroll"><table id="method-table"><tr><th class="l">method</th>{head}</tr>{body}</table>'
            "</div>"
            f'<p class="note">Mean ± standard error over {len(ok)} images (standard deviation below it): the '
            "error bar of the dataset mean, which contains the images' own Monte Carlo noise. "
            "EF (ICCV25): the power-weighted mean spatial frequency of the map, 0 = lowest, 1 = highest; the paper "
            "ranks the map's pixels first, which puts most power in the DC ring and compresses the differences "
            "between methods; the unranked EF of the map itself separates them better. ΔEF = |EF(method) − "
            f"EF(VanillaGrad)|, the explanation-gap proxy. AUCs over the actual removed fraction (ECCV24 §5).</p>"
            f"<p class='note' id='ef-estimators'>{_estimator_words()}</p>"
            f"<p class='note'>Bold: better than every other method by a Welch t-test at p &lt; {ALPHA}. "
            + html.escape("; ".join(notes)) + ".</p>")


def _estimator_words() -> str:
    """Which estimator each EF column uses, in words (docs/methods.md §11)."""
    return html.escape(
        "Estimators (docs/methods.md §11). Maps sampled with halves A, B (the even and odd samples: SG, SG², "
        "SL², SG²_opt at each image's σ*): EF column = bias-reduced rank EF 2·EF((A+B)/2) − (EF(A)+EF(B))/2 "
        "(the first-order jackknife, whose 1/n noise bias cancels); EF unranked column = cross-spectrum EF "
        "from Re(FFT(A)·conj FFT(B)), free of the plug-in's (noise power)/n bias; ΔEF from the bias-reduced "
        "EF. Deterministic maps (VG, IG, occlusion, …): plug-in EF, which is exact. ArgLens and RISE "
        "(sampled, no halves): plug-in EF, not corrected. The plug-in EFs of every map are in the table as "
        "<m>_ef_plugin, <m>_ef_unranked_plugin and <m>_gap_plugin. MC error: the per-image Monte Carlo "
        "error of the EF, half-split estimate |EF(A) − EF(B)|/2 (<m>_ef_mc_error), shown as the root mean "
        "square over the images (each image's estimate has one degree of freedom; its square is unbiased "
        "for the variance). Relative MC error of the map: ||se||₂/||map||₂ from the samples' variance.")


def _plugin_bias(table, methods, kinds) -> str:
    """The section "How much the plug-in EF was off": per method with halves, the plug-in and corrected
    means of EF, unranked EF and ΔEF, their paired difference ± se and its size relative to the corrected
    mean and to the per-image Monte Carlo error."""
    bias = plugin_bias(table, methods, kinds)
    others = [m for m in methods if kinds.get(m) != "halves"]
    rest = ("" if not others else " Maps without halves: " + "; ".join(
        f"{label(m)}: {'exact, no correction' if kinds.get(m) == 'deterministic' else 'not corrected'}"
        for m in others) + ".")
    if not bias:
        why = ("no map of this run has halves (one sample per σ, or no sampled method with statistics: SG, "
               "SG², SL², SG²_opt)")
        return f"<p class='note' id='plugin-bias-none'>Not measured: {html.escape(why)}.{html.escape(rest)}</p>"
    names = {"ef": "EF (rank)", "ef_unranked": "EF unranked", "gap": "ΔEF"}
    head = ("<tr><th class='l'>method</th><th class='l'>measure</th><th>plug-in mean</th><th>corrected mean</th>"
            "<th>plug-in − corrected ± se</th><th>relative to the corrected mean</th>"
            "<th>in per-image MC errors</th></tr>")
    rows = []
    for m, per in bias.items():
        for k, b in per.items():
            units = b["diff"] / b["mc"] if np.isfinite(b["mc"]) and b["mc"] > 0 else None
            rows.append(f"<tr><td class='l'>{html.escape(label(m))}</td><td class='l'>{names[k]}</td>"
                        f"<td>{_fmt(b['plugin'])}</td><td>{_fmt(b['corrected'])}</td>"
                        f"<td>{_fmt(b['diff'], 3)} ± {_fmt(b['diff_se'], 2)}</td>"
                        f"<td>{_pct(b['rel'])}</td><td>{_fmt(units, 3)}</td></tr>")
    return (f"<table id='plugin-bias'>{head}{''.join(rows)}</table><p class='note'>Means over the images with "
            "both values; the difference is paired per image (its standard error across images). The plug-in "
            "EF of a sampled map is biased by the map's Monte Carlo noise (noise adds power at every frequency, "
            "most visibly at high frequencies), so it overstates how grainy a map is, and more so with fewer "
            "samples; the corrected estimators remove the 1/n part of that bias. A difference of many "
            "per-image MC errors is a bias that averaging images does not remove." + html.escape(rest) + "</p>")


def _pct(v) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{100 * v:+.3g} %"


def _panel_data(run_dir, manifest, methods, plan) -> tuple[dict, dict]:
    """The first ``panels`` images {i: (C, S, S) uint8} and kept maps {m: {i: (S, S)}}."""
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
    return images, maps


def _draw_map(fig, ax, m: str, mp: torch.Tensor, sigmas) -> None:
    """One map with its colourbar: ArgLens as 1/(AL+1) with ticks labelled by σ, others clipped."""
    if m == "al":
        s = np.asarray(sorted(sigmas), dtype=float)
        im = ax.imshow((1 / (mp + 1)).numpy(), cmap="viridis", vmin=1 / (s.max() + 1), vmax=1 / (s.min() + 1))
        cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
        # 1/(σ+1) crowds the large σ together: label the ends and the middle only
        ticks = s if len(s) <= 3 else s[np.linspace(0, len(s) - 1, 3).round().astype(int)]
        cb.set_ticks(1 / (ticks + 1), labels=[f"σ={t:g}" for t in ticks])
    else:
        shown, kw = _display(mp, signed=bool((mp < 0).any()))
        im = ax.imshow(shown.numpy(), **kw)
        cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03, format="%.2g")
    cb.ax.tick_params(labelsize=7)


def _panels(run_dir, manifest, table, methods, plan) -> str:
    images, maps = _panel_data(run_dir, manifest, methods, plan)
    if not images:
        return _missing("panels", "No panel images (panels = 0, or every one of the first images failed).")
    plt = _matplotlib()
    ids, kept = sorted(images), list(maps)
    classes = manifest.get("output_classes")
    rows = table.set_index("index")
    cols = 1 + len(kept)
    w = min(2.4, PAGE_WIDTH_IN / cols)
    fig, axes = plt.subplots(len(ids), cols, figsize=(w * cols, 0.95 * w * len(ids)), squeeze=False)
    for r, i in enumerate(ids):
        img = images[i].float() / 255
        axes[r, 0].imshow(img.permute(1, 2, 0).numpy().squeeze(), cmap="gray" if img.shape[0] == 1 else None)
        row = rows.loc[i]
        name = str(row["name"])
        cls = _class_name(classes, row["target"])
        axes[r, 0].set_title(f"#{i} {name if len(name) <= 20 else '…' + name[-19:]}\n"
                             f"{cls if len(cls) <= 16 else cls[:15] + '…'} ({row['confidence']:.2f})", fontsize=8)
        for c, m in enumerate(kept, start=1):
            if i in maps[m]:
                _draw_map(fig, axes[r, c], m, maps[m][i], manifest["config"]["sigmas"])
            if r == 0:
                axes[r, c].set_title(label(m) + (" as 1/(AL+1)" if m == "al" else ""), fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    cbars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    return _figure("panels", fig, f"The first {len(ids)} images (file name; explained class and its probability) "
                                  "with their maps, each with its colour scale (clipped at the 99.5th percentile of "
                                  "|map|; signed maps in a diverging colour map; ArgLens: the σ that maximises the "
                                  "pixel's SG² across the grid).", fmt="jpeg",
                   data={"images": ids, "methods": kept, "colourbars": len(cbars),
                         "titles": [axes[r, 0].get_title() for r in range(len(ids))]})


EF_RECIPES = (("ef", "EF, ranked (ICCV25)"), ("ef_unranked", "EF, map as is"))


def histogram_data(values: dict[str, np.ndarray], n_bins: int | None = None, extra=()) -> dict:
    """Common bin edges over all methods' values (and the arrays of ``extra``, drawn on the same bins) and
    each method's integer counts in them."""
    allv = np.concatenate([v for v in values.values()] + [np.asarray(e, dtype=float) for e in extra])
    n_bins = n_bins or min(30, max(8, sum(len(v) for v in values.values()) // (2 * max(1, len(values)))))
    edges = np.histogram_bin_edges(allv, bins=n_bins)
    return {"edges": edges.tolist(), "counts": {m: np.histogram(v, bins=edges)[0].astype(int).tolist()
                                                for m, v in values.items()}}


def _column(table, name) -> np.ndarray:
    return table[name].dropna().to_numpy(dtype=float) if name in table else np.empty(0)


def _ef_histograms(table, methods, manifest, kinds: dict[str, str] | None = None) -> str:
    """One row per EF recipe, one histogram per method on the row's common bins: the corrected EF (bars),
    the plug-in EF of maps with halves (outline), the dataset mean ± standard error (line and band) and the
    rms per-image Monte Carlo error in the title."""
    from matplotlib.ticker import MaxNLocator

    kinds = kinds or {}
    ok = table[table["status"] == "ok"] if "status" in table else table
    recipes = [(k, t, {m: _column(ok, f"{m}_{k}") for m in methods if _column(ok, f"{m}_{k}").size})
               for k, t in EF_RECIPES]
    recipes = [r for r in recipes if r[2]]
    if not recipes:
        return _missing("ef-histograms", _why_missing(manifest, "ef"))
    plt = _matplotlib()
    ncols = max(len(v) for _, _, v in recipes)
    w = min(2.8, PAGE_WIDTH_IN / ncols)
    fig, axes = plt.subplots(len(recipes), ncols, figsize=(w * ncols, 2.9 * len(recipes)), squeeze=False)
    data = {}
    for row, (k, title, vals) in zip(axes, recipes):
        plugin = {m: _column(ok, f"{m}_{k}_plugin") for m in vals if kinds.get(m) == "halves"}
        plugin = {m: v for m, v in plugin.items() if v.size}
        d = data[k] = histogram_data(vals, extra=plugin.values())
        edges = np.asarray(d["edges"])
        d["plugin_counts"] = {m: np.histogram(v, bins=edges)[0].astype(int).tolist() for m, v in plugin.items()}
        d["mean"], d["se"], d["mc_error"] = {}, {}, {}
        top = max(max(c) for c in list(d["counts"].values()) + list(d["plugin_counts"].values()))
        for ax, m in zip(row, vals):
            v = vals[m]
            mean = float(v.mean())
            se = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
            mc = rms(ok[f"{m}_{k}_mc_error"]) if f"{m}_{k}_mc_error" in ok else float("nan")
            d["mean"][m], d["se"][m], d["mc_error"][m] = mean, se, mc
            ax.bar(edges[:-1], d["counts"][m], width=np.diff(edges), align="edge", color="#4c72b0",
                   edgecolor="white", linewidth=0.6, label="corrected" if m in plugin else None)
            if m in plugin:
                ax.stairs(d["plugin_counts"][m], edges, color="#c44e52", linewidth=1.2, label="plug-in")
                if m == next(iter(plugin)):
                    ax.legend(fontsize=6, loc="upper left", frameon=False)
            if np.isfinite(se):
                ax.axvspan(mean - se, mean + se, color="#222222", alpha=0.15, linewidth=0)
            ax.axvline(mean, color="#222222", linewidth=1)
            ax.set_xlim(edges[0], edges[-1])
            ax.set_ylim(0, top + 0.5)
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            err = f"MC error {mc:.2g}/image" if np.isfinite(mc) else (
                "MC error 0 (exact)" if kinds.get(m) == "deterministic" else "MC error not estimated")
            ax.set_title(f"{label(m)}\n{mean:.3g} ± {se:.2g}\n{err}", fontsize=7)
            ax.set_xlabel(title, fontsize=7)
            ax.set_ylabel("images", fontsize=7)
            ax.tick_params(labelsize=7)
            ax.locator_params(axis="x", nbins=4)
        for ax in row[len(vals):]:
            ax.axis("off")
    return _figure("ef-histograms", fig, "Expected Frequency per image: one row per recipe, one histogram per "
                                         "method on the row's common bins and x range. Bars: the corrected EF "
                                         "(bias-reduced rank EF / cross-spectrum EF where the map has halves, "
                                         "else the plug-in); red outline: the plug-in EF of the same maps; line "
                                         "and grey band: the mean over images ± its standard error; title: mean "
                                         "± se and the rms per-image Monte Carlo error.", data=data)


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


ROW_GROUPS = (("image", ("index", "name", "status", "label", "label_name")),
              ("prediction", ("target", "target_name", "confidence", "entropy", "top5")),
              ("SpectralLens grid", ("sigma_opt", "inconsistency")))
SHORT = {"ef": "EF", "ef_mc_error": "EF MC err", "ef_plugin": "EF plug-in", "ef_unranked": "EF unranked",
         "ef_unranked_mc_error": "EF unr. MC err", "ef_unranked_plugin": "EF unr. plug-in", "gap": "ΔEF",
         "gap_plugin": "ΔEF plug-in", "deletion": "del AUC", "insertion": "ins AUC", "rel_error": "rel MC err",
         "samples": "samples"}


def _row_groups(columns, methods) -> list[tuple[str, list[tuple[str, str]]]]:
    """[(group title, [(column, sub-header)])] of the per-image table: image, prediction, SpectralLens grid,
    then one group per method; columns in no group go last under "other"."""
    groups = [(g, [(c, c) for c in cs if c in columns]) for g, cs in ROW_GROUPS]
    for m in methods:
        groups.append((label(m), [(f"{m}_{k}", SHORT[k]) for k in SHORT if f"{m}_{k}" in columns]))
    placed = {c for _, cs in groups for c, _ in cs} | {"error", "top5_classes", "top5_probs"}
    groups.append(("other", [(c, c) for c in columns if c not in placed]))
    return [(g, cs) for g, cs in groups if cs]


def _top5(r, classes) -> str:
    ks, ps = r.get("top5_classes"), r.get("top5_probs")
    if ks is None or ps is None or len(ks) == 0:
        return "–"
    return "<br>".join(f"{html.escape(_class_name(classes, k))} {p:.2f}" for k, p in zip(ks, ps))


def _cell(r, c, classes) -> str:
    if c == "top5":
        return f"<td class='l top5'>{_top5(r, classes)}</td>"
    v = r[c]
    if isinstance(v, str):
        return f"<td class='l'>{html.escape(v)}</td>"
    return "<td>–</td>" if v is None else f"<td>{_fmt(v)}</td>"


def _rows_table(table, classes, methods, dictionary: dict, limit=200) -> str:
    show = table.head(limit).copy()
    if "top5_classes" in show:
        show["top5"] = None
    groups = _row_groups(list(show.columns), methods)
    top = "".join(f"<th colspan='{len(cs)}'>{html.escape(g)}</th>" for g, cs in groups)
    sub = "".join(f"<th title='{html.escape(dictionary.get(c, ''), quote=True)}'>{html.escape(t)}</th>"
                  for _, cs in groups for c, t in cs)
    cols = [c for _, cs in groups for c, _ in cs]
    body = "".join("<tr>" + "".join(_cell(r, c, classes) for c in cols) + "</tr>" for _, r in show.iterrows())
    more = f"<p class='note'>First {limit} of {len(table)} rows; all in metrics.parquet.</p>" \
        if len(table) > limit else ""
    return (f"<div class='scroll'><table id='rows-table'><thead><tr class='groups'>{top}</tr><tr>{sub}</tr>"
            f"</thead><tbody>{body}</tbody></table></div>{more}")


def _dictionary(tpath: Path, columns) -> dict[str, str]:
    """Column -> description, from the table's own metadata (else the current data dictionary)."""
    import pyarrow.parquet as pq

    from .store import _spec

    md = pq.read_schema(tpath).metadata or {}
    raw = md.get(b"spectral_xai.data_dictionary")
    found = json.loads(raw) if raw else {}
    out = {}
    for c in columns:
        try:
            out[c] = found.get(c) or _spec(c)[1]
        except (KeyError, ValueError):
            out[c] = ""
    if "top5_classes" in columns:
        out["top5"] = "the model's five most probable classes on the clean image with their softmax probabilities"
    return out


def _dictionary_table(dictionary: dict) -> str:
    return "<table id='data-dictionary' class='kv'><tr><th class='l'>column</th><th class='l'>meaning</th></tr>" \
        + "".join(f"<tr><td class='l'><code>{html.escape(c)}</code></td><td class='l wrap'>{html.escape(d)}</td>"
                  "</tr>" for c, d in dictionary.items() if c != "top5") + "</table>"


def _sessions_table(sessions: list[dict]) -> str:
    """Every recorded invocation of the run (a first run, then each resume), in order."""
    if not sessions:
        return "<p class='note'>No sessions recorded (sessions.json is missing).</p>"
    head = "".join(f"<th>{t}</th>" for t in ("#", "finished (UTC)", "images computed", "processes", "wall s",
                                             "images/s", "images/s computing"))
    rows = []
    for k, s in enumerate(sessions, start=1):
        ranks = s.get("ranks", [])
        wall = max((r.get("seconds", 0.0) for r in ranks), default=None)
        rows.append(f"<tr><td>{k}</td><td class='l'>{html.escape(str(s.get('finished', '')))}</td>"
                    f"<td>{s.get('images', 0)}</td><td>{len(ranks)}</td><td>{_fmt(wall)}</td>"
                    f"<td>{_fmt(s.get('images_per_s'))}</td><td>{_fmt(s.get('compute_images_per_s'))}</td></tr>")
    body = "".join(rows)
    return (f"<table id='sessions'><tr>{head}</tr>{body}</table><p class='note'>One row per invocation that "
            "finished (a resume that found every shard done computes 0 images).</p>")


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
        "methods": ", ".join(label(m) for m in cfg["methods"]), "measures": ", ".join(cfg["measures"]),
        "sampling": f"{cfg['samples']} samples per σ, σ ∈ {cfg['sigmas']}, noise scale {cfg['noise_scale']}, "
                    f"prior {cfg['prior']}; SG std {cfg['sg_sigma']}; seed {cfg['seed']}",
        "device": f"{manifest['key_fields']['device']} ({hardware}), "
                  f"{cfg['dtype']}, {manifest['world_size']} process(es), {env.get('threads')} threads each",
        "versions": f"spectral_xai {manifest['spectral_xai']}, torch {env['torch']}",
        "configuration key": manifest["key"], "created": manifest["created"],
    }


def _failed(table) -> str:
    failed = table[table["status"] != "ok"]
    if failed.empty:
        return "<p>None.</p>"
    return "<table><tr><th class='l'>image</th><th class='l'>reason</th></tr>" + "".join(
        f"<tr><td class='l'>{html.escape(str(r['name']))}</td><td class='l'>{html.escape(str(r['error']))}</td></tr>"
        for _, r in failed.iterrows()) + "</table>"


def _read_run(run_dir: Path):
    """(manifest, table, sessions) of a run directory; ValueError when the run has no manifest or table yet."""
    import pandas as pd

    mpath = run_dir / "manifest.json"
    if not mpath.exists():
        raise ValueError(f"spectral_xai report: argument 'run_dir': {run_dir} has no manifest.json")
    tpath = run_dir / "metrics.parquet"
    if not tpath.exists():
        raise ValueError(f"spectral_xai report: {run_dir} has no metrics.parquet yet (the audit is unfinished; "
                         "run it again with --resume)")
    spath = run_dir / "sessions.json"
    sessions = json.loads(spath.read_text()) if spath.exists() else []
    return json.loads(mpath.read_text()), pd.read_parquet(tpath), sessions


def build_report(run_dir: str | Path) -> Path:
    """Write RUN_DIR/report.html from the run's files; returns its path."""
    run_dir = Path(run_dir)
    manifest, table, sessions = _read_run(run_dir)
    cfg, source = manifest["config"], manifest["dataset"]["source"]
    methods, classes = cfg["methods"], manifest.get("output_classes")
    kinds = run_kinds(cfg, methods)
    plan = shard_plan(manifest["dataset"]["n_images"], cfg["shard_size"])
    dictionary = _dictionary(run_dir / "metrics.parquet", list(table.columns))
    ok = int((table["status"] == "ok").sum())
    title = f"spectral_xai audit of {cfg['model']} on {source} ({run_dir.name})"
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head><body>",
        f"<h1>Explanation audit: {html.escape(cfg['model'])} on {html.escape(source)}</h1><p class='sub'>"
        f"run {html.escape(run_dir.name)} · {ok} images · spectral_xai</p>",
        "<h2>Run</h2>", _kv(_summary(manifest, table, run_dir)), "<h3>Sessions</h3>", _sessions_table(sessions),
        "<h2>Methods</h2>", _method_table(table, methods, kinds),
        "<h2>Per-image maps</h2>", _panels(run_dir, manifest, table, methods, plan),
        "<h2>Expected Frequency</h2>", _ef_histograms(table, methods, manifest, kinds),
        "<h3 id='plugin-bias-title'>How much the plug-in EF was off</h3>", _plugin_bias(table, methods, kinds),
        "<h2>Optimal noise level</h2>", _sigma_hist(table, manifest),
        "<h2>Inconsistency and predictive entropy</h2>", _inconsistency(table, manifest),
        "<h2>Deletion and insertion</h2>", _curves(run_dir, manifest, methods, plan),
        "<h2>Failed images</h2>", _failed(table),
        "<h2>Per-image table</h2>", _rows_table(table, classes, methods, dictionary),
        "<h2>Columns of metrics.parquet</h2>", _dictionary_table(dictionary),
        f"<p class='note'>Files: manifest.json, metrics.parquet, sessions.json, {SHARD_DIR}/ ({len(plan)} "
        "safetensors shards).</p>",
        "</body></html>",
    ]
    return atomic_write(run_dir / "report.html", lambda tmp: Path(tmp).write_text("".join(parts), encoding="utf-8"))
