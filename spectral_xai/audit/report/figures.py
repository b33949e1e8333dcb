"""The report's figures: per-image panels, EF histograms, σ*, inconsistency against entropy, and the mean
deletion/insertion curves."""
from __future__ import annotations

import numpy as np
import torch

from ...methods import label
from ...viz import display_map, pyplot
from ..columns import METHOD_COLUMNS
from ..mc import rms
from ..store import read_shard_tensors, shard_path
from .page import PAGE_WIDTH_IN, class_name, figure, missing, why_missing

FIGURES = ("panels", "ef-histograms", "sigma-opt", "inconsistency-entropy", "deletion-insertion")


def _panel_data(run_dir, manifest, methods, spans) -> tuple[dict, dict]:
    """The first ``panels`` images {i: (C, S, S) uint8} and kept maps {m: {i: (S, S)}}."""
    n = manifest["config"]["panels"]
    kept = [m for m in (manifest["config"]["keep_maps"] or methods) if m in methods]
    images, maps = {}, {m: {} for m in kept}
    for span in spans:
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
        shown, kw = display_map(mp, signed=bool((mp < 0).any()))
        im = ax.imshow(shown.numpy(), **kw)
        cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03, format="%.2g")
    cb.ax.tick_params(labelsize=7)


def panels(run_dir, manifest, table, methods, spans) -> str:
    images, maps = _panel_data(run_dir, manifest, methods, spans)
    if not images:
        return missing("panels", "No panel images (panels = 0, or every one of the first images failed).")
    plt = pyplot()
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
        cls = class_name(classes, row["target"])
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
    return figure("panels", fig, f"The first {len(ids)} images (file name; explained class and its probability) "
                                  "with their maps, each with its colour scale (clipped at the 99.5th percentile of "
                                  "|map|; signed maps in a diverging colour map; ArgLens: the σ that maximises the "
                                  "pixel's SG² across the grid).", fmt="jpeg",
                   data={"images": ids, "methods": kept, "colourbars": len(cbars),
                         "titles": [axes[r, 0].get_title() for r in range(len(ids))]})


EF_RECIPES = tuple((c.key, c.histogram) for c in METHOD_COLUMNS if c.histogram)   # one histogram row each
_TWINS_OF = {c.key: (c.plugin, c.mc_error) for c in METHOD_COLUMNS if c.histogram}   # its plug-in, MC error


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


def ef_histograms(table, methods, manifest, kinds: dict[str, str] | None = None) -> str:
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
        return missing("ef-histograms", why_missing(manifest, "ef"))
    plt = pyplot()
    ncols = max(len(v) for _, _, v in recipes)
    w = min(2.8, PAGE_WIDTH_IN / ncols)
    fig, axes = plt.subplots(len(recipes), ncols, figsize=(w * ncols, 2.9 * len(recipes)), squeeze=False)
    data = {}
    for row, (k, title, vals) in zip(axes, recipes):
        plugin_key, error_key = _TWINS_OF[k]
        plugin = {m: _column(ok, f"{m}_{plugin_key}") for m in vals if kinds.get(m) == "halves"}
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
            mc = rms(ok[f"{m}_{error_key}"]) if f"{m}_{error_key}" in ok else float("nan")
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
    return figure("ef-histograms", fig, "Expected Frequency per image: one row per recipe, one histogram per "
                                         "method on the row's common bins and x range. Bars: the corrected EF "
                                         "(bias-reduced rank EF / cross-spectrum EF where the map has halves, "
                                         "else the plug-in); red outline: the plug-in EF of the same maps; line "
                                         "and grey band: the mean over images ± its standard error; title: mean "
                                         "± se and the rms per-image Monte Carlo error.", data=data)


def sigma_histogram(table, manifest) -> str:
    if "sigma_opt" not in table or not table["sigma_opt"].notna().any():
        return missing("sigma-opt", why_missing(manifest, "sigma_opt"))
    plt = pyplot()
    sig = np.asarray(manifest["config"]["sigmas"], dtype=float)
    v = table["sigma_opt"].dropna().to_numpy()
    counts = [(np.isclose(v, s)).sum() for s in sig]
    fig, ax = plt.subplots(figsize=(4.8, 2.6))
    ax.bar(sig, counts, width=0.8 * (np.diff(np.sort(sig)).min() if len(sig) > 1 else 0.1), color="#dd8452")
    ax.set_xlabel("σ* (argmax of CS(σ) = (σs)^2.5 ||E_σ[g²]||₁)", fontsize=8)
    ax.set_ylabel("images", fontsize=8)
    return figure("sigma-opt", fig, f"Distribution of the optimal noise level σ* over {len(v)} images "
                                     f"(grid of {len(sig)} σ, noise scale {manifest['config']['noise_scale']}).")


def inconsistency_figure(table, manifest) -> str:
    if "inconsistency" not in table or not table["inconsistency"].notna().any():
        return missing("inconsistency-entropy", why_missing(manifest, "inconsistency"))
    plt = pyplot()
    ok = table[table["inconsistency"].notna()]
    fig, ax = plt.subplots(figsize=(4.8, 3.2))
    ax.scatter(ok["entropy"], ok["inconsistency"], s=14, alpha=0.75, color="#55a868")
    if len(ok) > 2:
        from scipy.stats import spearmanr

        rho = spearmanr(ok["entropy"], ok["inconsistency"]).statistic
        ax.set_title(f"Spearman ρ = {rho:.2f} over {len(ok)} images", fontsize=9)
    ax.set_xlabel("predictive entropy of the clean input (nats)", fontsize=8)
    ax.set_ylabel("inconsistency across σ (1 − mean cos)", fontsize=8)
    return figure("inconsistency-entropy", fig, "Inconsistency of the per-σ SG² maps against predictive "
                                                 "entropy (ECCV24 Fig. 11).")


def curves(run_dir, manifest, methods, spans) -> str:
    sums, counts = {}, {}
    for span in spans:
        for k, v in read_shard_tensors(shard_path(run_dir, span), prefix="curves/").items():
            sums[k] = sums.get(k, 0) + v.double().sum(dim=0)
            counts[k] = counts.get(k, 0) + v.shape[0]
    if not sums:
        return missing("deletion-insertion", why_missing(manifest, "deletion"))
    plt = pyplot()
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
    return figure("deletion-insertion", fig, f"Mean deletion (↓ better) and insertion (↑ better) curves, "
                                              f"{manifest['config']['deletion_baseline']} baseline, erosion "
                                              f"{manifest['config']['erosion']}.")
