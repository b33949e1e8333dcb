"""The report's warnings: numbers a reader could take for more than they are (docs/methods.md §2, §3).

- σ* at the end of the admissible grid (``sigma_opt_at_edge``): the grid's end, not an optimum.
- the share of SL² that is the same for every image (``sl2_image_independent``).
- ArgLens maps that pick one σ for most pixels: a flat colour, not an explanation of scale.
- σ* that the two halves of the samples choose differently (``sigma_opt_mc_change``, docs/methods.md §11).
"""
from __future__ import annotations

import html

import numpy as np

from ..store import read_shard_tensors, shard_path
from .figures import arglens_image
from .page import fmt

FLAT_SHARE = 0.6          # an ArgLens map whose most frequent σ covers at least this share of pixels is "flat"


def arglens_modal_share(run_dir, manifest, spans) -> dict[int, float]:
    """{image index: share of its pixels at the most frequent σ of its stored ArgLens map} (empty when the
    run kept no ArgLens maps)."""
    out = {}
    for span in spans:
        t = read_shard_tensors(shard_path(run_dir, span), names=("maps/al", "maps_index"))
        if "maps/al" not in t:
            continue
        for i, mp in zip(t["maps_index"].tolist(), t["maps/al"].float()):
            idx, s = arglens_image(mp, manifest["config"]["sigmas"])
            out[int(i)] = float(np.bincount(idx.ravel(), minlength=len(s)).max() / idx.size)
    return out


def _mean_se(v: np.ndarray) -> str:
    se = v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
    return f"{fmt(100 * float(v.mean()), 3)} ± {fmt(100 * se, 2)} %"


def sigma_edge_warning(table) -> str | None:
    """How many images have σ* at the end of the admissible grid (None when no image has)."""
    if "sigma_opt_at_edge" not in table:
        return None
    flags = table["sigma_opt_at_edge"].dropna().astype(bool)
    k = int(flags.sum())
    if k == 0:
        return None
    at = table.loc[flags[flags].index, "sigma_opt"].dropna()
    where = ", ".join(f"σ = {s:g} ({int(c)})" for s, c in at.value_counts().sort_index().items())
    return (f"σ* is at the end of the admissible grid for {k} of {len(flags)} images ({where}): CS(σ) has not "
            "turned inside the grid, so σ* there is the grid's end, not an optimum, and SG²_opt may show the model's "
            "response to the noise rather than to the image (docs/methods.md §3; column sigma_opt_at_edge).")


def sl2_share_note(table) -> str | None:
    """Mean ± se share of ‖SL²‖₁ that no longer depends on the image (None when not measured)."""
    if "sl2_image_independent" not in table:
        return None
    v = table["sl2_image_independent"].dropna().to_numpy(dtype=float)
    if v.size == 0:
        return None
    top = fmt(100 * float(v.max()), 3)
    return (f"{_mean_se(v)} of ‖SL²‖₁ (mean ± se over {v.size} images, largest {top} %) "
            "comes from the σ of the grid at which the perturbed input no longer depends on the image (σ = 1 "
            "of convex mixing): that part of SL² is the same map for every image (docs/methods.md §2; column "
            "sl2_image_independent).")


def arglens_warning(shares: dict[int, float], samples: int) -> str | None:
    """Which ArgLens maps are flat (one σ for at least :data:`FLAT_SHARE` of the pixels)."""
    if not shares:
        return None
    flat = sorted(i for i, s in shares.items() if s >= FLAT_SHARE)
    if not flat:
        return None
    shown = ", ".join(f"#{i}" for i in flat[:12]) + (" …" if len(flat) > 12 else "")
    return (f"ArgLens is not informative for {len(flat)} of {len(shares)} images ({shown}): one σ wins at "
            f"≥ {100 * FLAT_SHARE:.0f} % of their pixels (median over all images "
            f"{100 * float(np.median(list(shares.values()))):.0f} %), so their ArgLens panel is mostly one colour. "
            f"ArgLens is the arg-max of noisy per-σ estimates ({samples} samples per σ): where one σ's SG² "
            "dominates every pixel, it only repeats σ*; more samples make it stabler (docs/methods.md §2).")


def sigma_change_warning(table) -> str | None:
    """How often σ* changed between the halves of the samples (None when not measured or never)."""
    if "sigma_opt_mc_change" not in table:
        return None
    v = table["sigma_opt_mc_change"].dropna().to_numpy(dtype=float)
    if v.size == 0 or not (v > 0).any():
        return None
    return (f"σ* is not stable under the sampling noise for {int((v > 0).sum())} of {v.size} images: two halves "
            f"of their samples chose different σ* in {_mean_se(v)} of the splits (mean ± se over the images; "
            "each half has half the samples, so a full run changes less often). σ*, SG²_opt and the σ* "
            "histogram of those images depend on the noise draw; more samples make them stabler "
            "(docs/methods.md §11; column sigma_opt_mc_change).")


def warnings_html(table, run_dir, manifest, spans) -> str:
    """The report's warning block (an empty string when there is nothing to warn about)."""
    items = [sigma_edge_warning(table), sigma_change_warning(table), sl2_share_note(table),
             arglens_warning(arglens_modal_share(run_dir, manifest, spans), manifest["config"]["samples"])]
    items = [i for i in items if i]
    if not items:
        return ""
    return ("<div id='warnings' class='warn'><h3>Read with care</h3><ul>"
            + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul></div>")
