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


def arglens_image(mp: torch.Tensor, sigmas) -> tuple[np.ndarray, np.ndarray]:
    """An ArgLens map (S', S') of σ values as (grid index per pixel (S', S') int, the sorted grid (S,))."""
    s = np.asarray(sorted(sigmas), dtype=float)
    idx = np.abs(mp.double().numpy()[..., None] - s).argmin(axis=-1)         # float16 maps: the nearest σ
    return idx, s


def _draw_map(fig, ax, m: str, mp: torch.Tensor, sigmas) -> None:
    """One map with its colourbar: ArgLens in the authors' colours of 1/(AL+1) (bright where a small σ wins),
    one evenly spaced colour slot per σ of the grid so that every label has room; others clipped."""
    if m == "al":
        from matplotlib.colors import BoundaryNorm, ListedColormap

        idx, s = arglens_image(mp, sigmas)
        shade = 1 / (s + 1)
        lo, hi = shade.min(), shade.max()
        cmap = ListedColormap(pyplot().get_cmap("viridis")((shade - lo) / (hi - lo) if hi > lo else shade * 0))
        im = ax.imshow(idx, cmap=cmap, norm=BoundaryNorm(np.arange(len(s) + 1) - 0.5, len(s)))
        cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
        ticks = np.arange(len(s)) if len(s) <= 5 else np.linspace(0, len(s) - 1, 4).round().astype(int)
        cb.set_ticks(ticks, labels=[f"σ={s[t]:g}" for t in ticks])
    else:
        shown, kw = display_map(mp, signed=bool((mp < 0).any()))
        im = ax.imshow(shown.numpy(), **kw)
        cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03, format="%.2g")
    cb.ax.tick_params(labelsize=7)


def _wrapped(text: str, width: int, lines: int) -> str:
    """``text`` wrapped at ``width`` characters, at most ``lines`` lines (the last one cut with …)."""
    import textwrap

    out = textwrap.wrap(text, width) or [""]
    if len(out) > lines:
        out = out[:lines]
        out[-1] = out[-1][:width - 1] + "…"
    return "\n".join(out)


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
        width = max(12, int(w * 9))                                # characters of 7-pt text over the panel
        short = name if len(name) <= width else "…" + name[-(width - 1):]
        said = f"{_wrapped(cls, width, 2)} ({row['confidence']:.2f})"
        axes[r, 0].set_title(f"#{i} {short}\n{said}", fontsize=7)
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


HIST_COLUMNS = 4                                      # histograms per figure row (each about 2.8 in wide)


def histogram_data(values: np.ndarray, extra: np.ndarray | None = None, n_bins: int | None = None) -> dict:
    """Bin edges over one method's values (and ``extra``, e.g. its plug-in values, drawn on the same bins) and
    the integer counts of both: {edges, counts, extra_counts (None without extra)}."""
    both = values if extra is None else np.concatenate([values, extra])
    n_bins = n_bins or min(20, max(6, len(values) // 3))
    edges = np.histogram_bin_edges(both, bins=n_bins)
    count = (lambda v: np.histogram(v, bins=edges)[0].astype(int).tolist())
    return {"edges": edges.tolist(), "counts": count(values), "extra_counts": None if extra is None else count(extra)}


def _column(table, name) -> np.ndarray:
    return table[name].dropna().to_numpy(dtype=float) if name in table else np.empty(0)


def _ticks(ax) -> None:
    """At most 3 short x tick labels (3 significant digits, an offset where the values share leading digits)."""
    from matplotlib.ticker import MaxNLocator, ScalarFormatter

    ax.xaxis.set_major_locator(MaxNLocator(3))
    fmt = ScalarFormatter(useOffset=True)
    fmt.set_powerlimits((-2, 3))
    ax.xaxis.set_major_formatter(fmt)
    ax.xaxis.get_offset_text().set_fontsize(6)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
    ax.tick_params(labelsize=7)


def ef_histograms(table, methods, manifest, kinds: dict[str, str] | None = None) -> str:
    """Per EF recipe, one histogram per method on its own bins and x range (methods' EFs can differ by more
    than their spread: a common range leaves single bars): the corrected EF (bars), the plug-in EF of maps
    with halves (outline, same bins), the dataset mean ± standard error (line and band) and the rms
    per-image Monte Carlo error in the title."""
    kinds = kinds or {}
    ok = table[table["status"] == "ok"] if "status" in table else table
    recipes = [(k, t, {m: _column(ok, f"{m}_{k}") for m in methods if _column(ok, f"{m}_{k}").size})
               for k, t in EF_RECIPES]
    recipes = [r for r in recipes if r[2]]
    if not recipes:
        return missing("ef-histograms", why_missing(manifest, "ef"))
    plt = pyplot()
    ncols = min(HIST_COLUMNS, max(len(v) for _, _, v in recipes))
    lines = [(k, t, list(vals)[j:j + ncols], vals) for k, t, vals in recipes for j in range(0, len(vals), ncols)]
    w = min(2.8, PAGE_WIDTH_IN / ncols)
    fig, axes = plt.subplots(len(lines), ncols, figsize=(w * ncols, 2.5 * len(lines)), squeeze=False)
    data = {k: {"edges": {}, "counts": {}, "plugin_counts": {}, "mean": {}, "se": {}, "mc_error": {}}
            for k, _, _ in recipes}
    for row, (k, title, line, vals) in zip(axes, lines):
        plugin_key, error_key = _TWINS_OF[k]
        d = data[k]
        for ax, m in zip(row, line):
            v = vals[m]
            plug = _column(ok, f"{m}_{plugin_key}") if kinds.get(m) == "halves" else np.empty(0)
            h = histogram_data(v, plug if plug.size else None)
            edges = np.asarray(h["edges"])
            d["edges"][m], d["counts"][m] = h["edges"], h["counts"]
            mean = float(v.mean())
            se = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
            mc = rms(ok[f"{m}_{error_key}"]) if f"{m}_{error_key}" in ok else float("nan")
            d["mean"][m], d["se"][m], d["mc_error"][m] = mean, se, mc
            ax.bar(edges[:-1], h["counts"], width=np.diff(edges), align="edge", color="#4c72b0",
                   edgecolor="white", linewidth=0.6, label="corrected" if plug.size else None)
            if plug.size:
                d["plugin_counts"][m] = h["extra_counts"]
                ax.stairs(h["extra_counts"], edges, color="#c44e52", linewidth=1.2, label="plug-in")
                ax.legend(fontsize=6, loc="upper right", frameon=False)
            if np.isfinite(se):
                ax.axvspan(mean - se, mean + se, color="#222222", alpha=0.15, linewidth=0)
            ax.axvline(mean, color="#222222", linewidth=1)
            ax.set_xlim(edges[0], edges[-1]) if edges[-1] > edges[0] else None
            err = f"MC error {mc:.2g}/image" if np.isfinite(mc) else (
                "MC error 0 (exact)" if kinds.get(m) == "deterministic" else "MC error not estimated")
            ax.set_title(f"{label(m)}: {mean:.3g} ± {se:.2g}\n{err}", fontsize=7)
            ax.set_xlabel(title, fontsize=7)
            ax.set_ylabel("images", fontsize=7)
            _ticks(ax)
        for ax in row[len(line):]:
            ax.axis("off")
    return figure("ef-histograms", fig, "Expected Frequency per image: per recipe (x label), one histogram per "
                                         "method, each on its own bins and x range (compare the methods' means "
                                         "in the Methods table). Bars: the corrected EF "
                                         "(bias-reduced rank EF / cross-spectrum EF where the map has halves, "
                                         "else the plug-in); red outline: the plug-in EF of the same maps on the "
                                         "same bins; line and grey band: the mean over images ± its standard "
                                         "error; title: mean ± se and the rms per-image Monte Carlo error.",
                  data=data)


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


def curve_stats(run_dir, spans) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    """{"curves/<m>/<kind>": (mean (Q,), standard error of the mean (Q,), images)} over every shard's curves."""
    sums, squares, counts = {}, {}, {}
    for span in spans:
        for k, v in read_shard_tensors(shard_path(run_dir, span), prefix="curves/").items():
            v = v.double()
            sums[k] = sums.get(k, 0) + v.sum(dim=0)
            squares[k] = squares.get(k, 0) + (v * v).sum(dim=0)
            counts[k] = counts.get(k, 0) + v.shape[0]
    out = {}
    for k, n in counts.items():
        mean = (sums[k] / n).numpy()
        var = ((squares[k] - n * torch.from_numpy(mean) ** 2) / (n - 1)).clamp_min(0).numpy() if n > 1 \
            else np.full_like(mean, np.nan)
        out[k] = (mean, np.sqrt(var / n), n)
    return out


def curves(run_dir, manifest, methods, spans) -> str:
    stats = curve_stats(run_dir, spans)
    if not stats:
        return missing("deletion-insertion", why_missing(manifest, "deletion"))
    plt = pyplot()
    q = np.linspace(0, 1, manifest["config"]["fractions"])
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, kind in zip(axes, ("deletion", "insertion")):
        for m in methods:
            k = f"curves/{m}/{kind}"
            if k in stats:
                mean, se, _ = stats[k]
                line, = ax.plot(q, mean, label=label(m))
                if np.isfinite(se).all():
                    ax.fill_between(q, mean - se, mean + se, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set_xlabel("fraction of pixels removed (MoRF)" if kind == "deletion" else "fraction of pixels inserted",
                      fontsize=8)
        ax.set_ylabel("mean target probability", fontsize=8)
        ax.set_title(kind, fontsize=9)
        ax.legend(fontsize=7)
    n = max(v[2] for v in stats.values())
    return figure("deletion-insertion", fig, f"Mean deletion (↓ better) and insertion (↑ better) curves over {n} "
                                              "images, each with a band of ± one standard error of the mean; "
                                              f"{manifest['config']['deletion_baseline']} baseline, erosion "
                                              f"{manifest['config']['erosion']}.",
                  data={k: {"mean": v[0].tolist(), "se": v[1].tolist(), "n": v[2]} for k, v in stats.items()})
