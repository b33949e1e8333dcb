"""The report's tables: per-method means with their Monte Carlo errors and Welch tests, the plug-in bias,
the per-image rows under grouped headers, the data dictionary, the sessions and the failed images."""
from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from ...comparison import welch_best
from ...methods import label
from ..columns import COLUMNS, IMAGE_COLUMNS, METHOD_COLUMNS, PER_METHOD, spec
from ..mc import ESTIMATORS, plugin_bias, rms
from .page import class_name, fmt, pct

ALPHA = 0.05                                          # Welch test level for bold "best" cells
METHOD_MEASURES = tuple((c.key, c.summary, c.better) for c in METHOD_COLUMNS if c.summary)
MC_ERROR_OF = {c.key: c.mc_error for c in METHOD_COLUMNS if c.mc_error}


def _mc_line(err: np.ndarray | None) -> str:
    """The per-image Monte Carlo error line of an EF cell: rms over the images, 0, or not estimated."""
    if err is None:
        return ""
    finite = err[np.isfinite(err)]
    if finite.size == 0:
        return "<br><span class='note mc'>MC error not estimated</span>"
    if not finite.any():
        return "<br><span class='note mc'>MC error 0 (exact)</span>"
    return f"<br><span class='note mc'>MC error {fmt(rms(finite), 2)} per image</span>"


def _method_cell(v: np.ndarray, bold: bool, count: bool, err: np.ndarray | None = None) -> str:
    """mean ± standard error (sd) of one method's values; a count shows its mean only; ``err``: the per-image
    Monte Carlo errors of the values (shown as their rms)."""
    if len(v) == 0:
        return "<td>–</td>"
    txt = fmt(float(v.mean()))
    if len(v) > 1 and not count:
        sd = float(v.std(ddof=1))
        txt += f" ± {fmt(sd / np.sqrt(len(v)), 2)}<br><span class='note'>sd {fmt(sd, 2)}</span>"
    cls = ' class="best"' if bold else ""
    return f"<td{cls}>{txt}{_mc_line(err)}</td>"


def method_table(table, methods, kinds: dict[str, str] | None = None) -> str:
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
            ps = ", ".join(f"{label(m)} {fmt(q, 2)}" for m, q in p.items())
            notes.append(f"{title}: " + (f"{label(best[k])} is better than every other method (Welch p: {ps})"
                                         if best[k] else f"no method is better than all others at p < {ALPHA} "
                                         f"(Welch p of the best mean against: {ps or 'nothing to compare'})"))
    est_head = "<th class='l'>EF estimator</th>" if kinds else ""
    head = est_head + "".join(f"<th>{html.escape(t)}</th>" for _, t, _ in present)
    body = "".join(
        f'<tr><td class="l">{html.escape(label(m))}</td>'
        + (f"<td class='l wrap est'>{html.escape(ESTIMATORS[kinds[m]])}</td>" if kinds else "")
        + "".join(_method_cell(vals[m, k], best.get(k) == m, COLUMNS[f"{PER_METHOD}_{k}"].count,
                               errs.get((m, k)))
                  for k, _, _ in present) + "</tr>" for m in methods)
    return (f'<div class="scroll"><table id="method-table"><tr><th class="l">method</th>{head}</tr>{body}</table>'
            "</div>"
            f'<p class="note">Mean ± standard error over {len(ok)} images (standard deviation below it): the '
            "error bar of the dataset mean, which contains the images' own Monte Carlo noise. "
            "EF (ICCV25): the power-weighted mean spatial frequency of the map, 0 = lowest, 1 = highest; the paper "
            "ranks the map's pixels first, which puts most power in the DC ring and compresses the differences "
            "between methods; the unranked EF of the map itself separates them better. ΔEF = |EF(method) − "
            "EF(VanillaGrad)|, the explanation-gap proxy, of the rank-normalised maps (ΔEF) and of the maps as "
            "they are (ΔEF unranked, which separates methods better); with --gap-exclude-dc both leave out the DC "
            "ring. AUCs over the actual removed fraction (ECCV24 §5).</p>"
            f"<p class='note' id='ef-estimators'>{estimator_words()}</p>"
            f"<p class='note'>Bold: better than every other method by a Welch t-test at p &lt; {ALPHA}. "
            + html.escape("; ".join(notes)) + ".</p>")


def estimator_words() -> str:
    """Which estimator each EF column uses, in words (docs/methods.md §11)."""
    return html.escape(
        "Estimators (docs/methods.md §11). Maps sampled with halves A, B (the even and odd samples: SG, SG², "
        "SL², SG²_opt at each image's σ*): EF column = bias-reduced rank EF 2·EF((A+B)/2) − (EF(A)+EF(B))/2 "
        "(the first-order jackknife, whose 1/n noise bias cancels); EF unranked column = cross-spectrum EF "
        "from Re(FFT(A)·conj FFT(B)), free of the plug-in's (noise power)/n bias; ΔEF from the bias-reduced "
        "EF. Deterministic maps (VG, IG, occlusion, …): plug-in EF, which is exact. ArgLens and RISE "
        "(sampled, no halves): plug-in EF, not corrected. The plug-in EFs of every map are in the table as "
        "<m>_ef_plugin, <m>_ef_unranked_plugin, <m>_gap_plugin and <m>_gap_unranked_plugin. MC error: the "
        "per-image Monte Carlo "
        "error of the EF, half-split estimate |EF(A) − EF(B)|/2 (<m>_ef_mc_error), shown as the root mean "
        "square over the images (each image's estimate has one degree of freedom; its square is unbiased "
        "for the variance). Relative MC error of the map: ||se||₂/||map||₂ from the samples' variance. "
        + DERIVED_ESTIMATORS)


DERIVED_ESTIMATORS = (
    "ΔEF MC error (<m>_gap_mc_error, <m>_gap_unranked_mc_error): error propagation sqrt(se_EF(m)² + "
    "se_EF(VG)²), VG's 0 (an upper bound where ΔEF is near 0, which it also biases upwards). σ* stability "
    "(sigma_opt_mc_change): the fraction of balanced splits of the sample groups into two halves whose halves "
    "choose different σ* (0 = stable; n/2 samples each, so on the high side). ArgLens agreement "
    "(al_mc_agreement): the fraction of pixels whose ArgLens is the same in the two halves (a lower bound). "
    "Inconsistency MC error (inconsistency_mc_error): the delete-a-group jackknife over the per-σ sample "
    "groups. Deletion/insertion AUC MC error (<m>_deletion_mc_error, <m>_insertion_mc_error, with "
    "--auc-mc-error): |AUC(A) − AUC(B)|/2 of the halves' maps.")


def plugin_bias_table(table, methods, kinds) -> str:
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
    names = {"ef": "EF (rank)", "ef_unranked": "EF unranked", "gap": "ΔEF", "gap_unranked": "ΔEF unranked"}
    head = ("<tr><th class='l'>method</th><th class='l'>measure</th><th>plug-in mean</th><th>corrected mean</th>"
            "<th>plug-in − corrected ± se</th><th>relative to the corrected mean</th>"
            "<th>in per-image MC errors</th></tr>")
    rows = []
    for m, per in bias.items():
        for k, b in per.items():
            units = b["diff"] / b["mc"] if np.isfinite(b["mc"]) and b["mc"] > 0 else None
            rows.append(f"<tr><td class='l'>{html.escape(label(m))}</td><td class='l'>{names[k]}</td>"
                        f"<td>{fmt(b['plugin'])}</td><td>{fmt(b['corrected'])}</td>"
                        f"<td>{fmt(b['diff'], 3)} ± {fmt(b['diff_se'], 2)}</td>"
                        f"<td>{pct(b['rel'])}</td><td>{fmt(units, 3)}</td></tr>")
    return (f"<table id='plugin-bias'>{head}{''.join(rows)}</table><p class='note'>Means over the images with "
            "both values; the difference is paired per image (its standard error across images). The plug-in "
            "EF of a sampled map is biased by the map's Monte Carlo noise (noise adds power at every frequency, "
            "most visibly at high frequencies), so it overstates how grainy a map is, and more so with fewer "
            "samples; the corrected estimators remove the 1/n part of that bias. A difference of many "
            "per-image MC errors is a bias that averaging images does not remove." + html.escape(rest) + "</p>")


SHOWN_AS = {"top5_classes": "top5"}          # a column shown as another cell (the classes with their probabilities)
ROW_GROUPS = tuple((g, tuple(SHOWN_AS.get(c.key, c.key) for c in IMAGE_COLUMNS if c.group == g))
                   for g in dict.fromkeys(c.group for c in IMAGE_COLUMNS if c.group))
_TWINS = {t for c in METHOD_COLUMNS for t in (c.mc_error, c.plugin) if t}


def _twin_order() -> list[str]:
    """The per-method keys as the rows table shows them: each value followed by its MC error and plug-in twins."""
    keys = []
    for c in METHOD_COLUMNS:
        if c.key not in _TWINS:
            keys += [k for k in (c.key, c.mc_error, c.plugin) if k]
    return keys


SHORT = {k: COLUMNS[f"{PER_METHOD}_{k}"].short for k in _twin_order() if COLUMNS[f"{PER_METHOD}_{k}"].short}


def _row_groups(columns) -> list[tuple[str, list[tuple[str, str]]]]:
    """[(group title, [(column, sub-header)])] of the per-image table: image, prediction, SpectralLens grid;
    columns of neither an image group nor a method go last under "other"."""
    groups = [(g, [(c, c) for c in cs if c in columns]) for g, cs in ROW_GROUPS]
    placed = {c for _, cs in groups for c, _ in cs} | {"error", "top5_classes", "top5_probs"}
    groups.append(("other", [(c, c) for c in columns if c not in placed and not _per_method(c)]))
    return [(g, cs) for g, cs in groups if cs]


def _per_method(column: str) -> bool:
    try:
        return spec(column).per_method
    except KeyError:
        return False


def _top5(r, classes) -> str:
    ks, ps = r.get("top5_classes"), r.get("top5_probs")
    if ks is None or ps is None or len(ks) == 0:
        return "–"
    return "<br>".join(f"{html.escape(class_name(classes, k))} {p:.2f}" for k, p in zip(ks, ps))


def _cell(r, c, classes) -> str:
    if c == "top5":
        return f"<td class='l top5'>{_top5(r, classes)}</td>"
    v = r[c]
    if isinstance(v, str):
        return f"<td class='l'>{html.escape(v)}</td>"
    if isinstance(v, (bool, np.bool_)):
        return f"<td>{'yes' if v else 'no'}</td>"
    return "<td>–</td>" if v is None else f"<td>{fmt(v)}</td>"


def rows_table(table, classes, methods, dictionary: dict, limit=200) -> str:
    """The first ``limit`` rows: the per-image columns under grouped headers, then one images × methods table
    per per-method measure (the first open, the others folded), each a page wide."""
    show = table.head(limit).copy()
    if "top5_classes" in show:
        show["top5"] = None
    groups = _row_groups(list(show.columns))
    top = "".join(f"<th colspan='{len(cs)}'>{html.escape(g)}</th>" for g, cs in groups)
    sub = "".join(f"<th title='{html.escape(dictionary.get(c, ''), quote=True)}'>"
                  f"{html.escape(t).replace('_', '_<wbr>')}</th>" for _, cs in groups for c, t in cs)
    cols = [c for _, cs in groups for c, _ in cs]
    body = "".join("<tr>" + "".join(_cell(r, c, classes) for c in cols) + "</tr>" for _, r in show.iterrows())
    more = f"<p class='note'>First {limit} of {len(table)} rows; all in metrics.parquet.</p>" \
        if len(table) > limit else ""
    parts = [f"<div class='scroll'><table id='rows-table'><thead><tr class='groups'>{top}</tr><tr>{sub}</tr>"
             f"</thead><tbody>{body}</tbody></table></div>{more}"]
    for n, key in enumerate(k for k in SHORT if any(f"{m}_{k}" in show for m in methods)):
        shown = [m for m in methods if f"{m}_{key}" in show]
        head = "<th class='l'>#</th><th class='l'>name</th>" + "".join(
            f"<th title='{html.escape(dictionary.get(f'{m}_{key}', ''), quote=True)}'>{html.escape(label(m))}</th>"
            for m in shown)
        rows = "".join(f"<tr><td>{int(r['index'])}</td>{_cell(r, 'name', classes)}"
                       + "".join(_cell(r, f"{m}_{key}", classes) for m in shown) + "</tr>"
                       for _, r in show.iterrows())
        parts.append(f"<details{' open' if n == 0 else ''}><summary>{html.escape(SHORT[key])} "
                     f"(<code>&lt;method&gt;_{key}</code>) per image</summary><div class='scroll'>"
                     f"<table id='rows-{key}' class='per-method'><tr>{head}</tr>{rows}</table></div></details>")
    return "".join(parts)


def dictionary(tpath: Path, columns) -> dict[str, str]:
    """Column -> description, from the table's own metadata (else the current data dictionary)."""
    import pyarrow.parquet as pq

    md = pq.read_schema(tpath).metadata or {}
    raw = md.get(b"spectral_xai.data_dictionary")
    found = json.loads(raw) if raw else {}
    out = {}
    for c in columns:
        try:
            out[c] = found.get(c) or spec(c).description
        except (KeyError, ValueError):
            out[c] = ""
    if "top5_classes" in columns:
        out["top5"] = "the model's five most probable classes on the clean image with their softmax probabilities"
    return out


def dictionary_table(dictionary: dict) -> str:
    """The data dictionary: one row per column, per-method columns once as ``<method>_<key>`` with the
    methods that have it."""
    rows: dict[str, list] = {}
    for c, d in dictionary.items():
        if c == "top5":
            continue
        if _per_method(c):
            col = spec(c)
            rows.setdefault(col.name, [d, []])[1].append(c[:-len(col.key) - 1])
        else:
            rows[c] = [d, None]
    cells = "".join(
        f"<tr><td class='l'><code>{html.escape(c)}</code>"
        + (f"<br><span class='note'>{html.escape(', '.join(ms))}</span>" if ms else "")
        + f"</td><td class='l wrap'>{html.escape(d)}</td></tr>" for c, (d, ms) in rows.items())
    return ("<table id='data-dictionary' class='kv'><tr><th class='l'>column</th><th class='l'>meaning</th></tr>"
            + cells + "</table><p class='note'>&lt;method&gt;_&lt;key&gt;: one column per method listed under "
            "it (e.g. sg2_ef).</p>")


def sessions_table(sessions: list[dict]) -> str:
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
                    f"<td>{s.get('images', 0)}</td><td>{len(ranks)}</td><td>{fmt(wall)}</td>"
                    f"<td>{fmt(s.get('images_per_s'))}</td><td>{fmt(s.get('compute_images_per_s'))}</td></tr>")
    body = "".join(rows)
    return (f"<table id='sessions'><tr>{head}</tr>{body}</table><p class='note'>One row per invocation that "
            "finished (a resume that found every shard done computes 0 images).</p>")


def failed_table(table) -> str:
    failed = table[table["status"] != "ok"]
    if failed.empty:
        return "<p>None.</p>"
    return "<table><tr><th class='l'>image</th><th class='l'>reason</th></tr>" + "".join(
        f"<tr><td class='l'>{html.escape(str(r['name']))}</td><td class='l'>{html.escape(str(r['error']))}</td></tr>"
        for _, r in failed.iterrows()) + "</table>"
