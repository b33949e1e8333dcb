"""The demo: EfficientNet-Lite0 on scikit-image's photos, with VG, SG and SG² maps."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from .gradients import smooth_grad, vanilla_grad
from .options import DEFAULT_SG_SIGMA

# Deletion/insertion at 0, 0.1, ..., 1 removed: the curves keep their shape, and with the library's 21 fractions
# they were 44 % of the demo's audit (profiled on 2 photos at 128 px); the audit's default stays 21.
DEMO_FRACTIONS = 11


def run_demo(out_dir: str | Path = "demo_out", size: int = 128, n_samples: int = 16, figures: bool = False,
             quiet: bool = False) -> Path:
    """The embedded default: audit EfficientNet-Lite0 on scikit-image's bundled photos into OUT/audit
    (report.html, metrics.parquet, maps; the report and the printout show how far the plug-in EF of each
    sampled map was from the corrected EF), and with ``figures`` also :func:`method_figures` into OUT/figures.
    A finished audit in OUT/audit is resumed (nothing recomputed).  Returns OUT/audit."""
    from .audit import AuditConfig, run_audit

    out_dir = Path(out_dir)
    cfg = AuditConfig(data="skimage", out=str(out_dir / "audit"), model="efficientnet-lite0", size=size,
                      samples=n_samples, methods=["vg", "sg", "sg2", "ig2", "sl2", "al", "sg2opt"],
                      ig_steps=16, fractions=DEMO_FRACTIONS, shard_size=4, resume=True, quiet=quiet)
    t0 = time.perf_counter()
    summary = run_audit(cfg)
    table = summary["table"]
    if not quiet:
        cols = ["name", "target", "confidence", "sigma_opt"] + [f"{m}_ef" for m in ("vg", "sg2", "sl2")]
        print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print_plugin_bias(table, cfg)
        print(f"demo audit of {len(table)} photos in {time.perf_counter() - t0:.1f} s -> "
              f"{Path(cfg.out) / 'report.html'}")
    if figures:
        method_figures(out_dir / "figures", size=size)
    return Path(cfg.out)


def print_plugin_bias(table, cfg) -> None:
    """One line per sampled method: how far its plug-in EF was from the corrected EF (the report's section
    "How much the plug-in EF was off")."""
    from .audit.mc import plugin_bias, run_kinds
    from .methods import label

    bias = plugin_bias(table, cfg.methods, run_kinds(cfg.to_dict(), cfg.methods))
    if not bias:
        print("plug-in EF bias: not measured (one sample per σ gives no halves; use more samples)")
        return
    for m, per in bias.items():
        parts = [f"{name} {per[k]['plugin']:.4g} vs {per[k]['corrected']:.4g} ({100 * per[k]['rel']:+.1f} %)"
                 for k, name in (("ef", "EF"), ("ef_unranked", "unranked EF")) if k in per]
        print(f"plug-in vs corrected, {label(m)}: " + "; ".join(parts))


def method_figures(out_dir: str | Path = "demo_out/figures", size: int = 128, n_samples: int = 32,
                   sigma: float = DEFAULT_SG_SIGMA, seed: int = 0, lens_samples: int = 16) -> Path:
    """Print the top-1 classes of the four classic photos and write the figures; returns the output folder.

    explanations.png (VG, SG, SG²), spectra.png (their radial power spectra), spectral_lens.png
    (SL², ArgLens), bandpass.png, cs_curves.png
    (optimal σ, from the same passes as SpectralLens) and entropy.png (noise cutoff)."""
    from . import viz
    from .zoo import efficientnet_lite0, imagenet_classes, photos

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = efficientnet_lite0()
    x = photos(size)
    names = imagenet_classes()
    with torch.no_grad():
        prob = torch.softmax(model(x), dim=1)
    conf, top = prob.max(dim=1)
    titles = []
    for b in range(x.shape[0]):
        print(f"photo {b}: {names[top[b]]} ({conf[b]:.2f})")
        titles.append(f"{names[top[b]]} ({conf[b]:.2f})")
    t0 = time.perf_counter()
    maps = {
        "VG": vanilla_grad(model, x, target=top),
        f"SG (std {sigma})": smooth_grad(model, x, sigma, target=top, n_samples=n_samples, squared=False, seed=seed),
        f"SG² (std {sigma})": smooth_grad(model, x, sigma, target=top, n_samples=n_samples, seed=seed),
    }
    elapsed = time.perf_counter() - t0
    path = out_dir / "explanations.png"
    viz.maps_figure(x, maps, titles, path=path)
    viz.spectra_figure(maps, rank_normalize=False, path=out_dir / "spectra.png")
    print(f"explanations of {x.shape[0]} photos at {size} px ({n_samples} samples) in {elapsed:.1f} s -> {path}")

    from .lens import spectral_lens
    from .presets import preset
    from .noise_level import noise_cutoff, sigma_star

    t0 = time.perf_counter()
    kw = preset("imagenet-resnet50")  # convex mixing, noise scale 0.3, σ in {0, 0.1, ..., 1}
    lens = spectral_lens(model, x, target=top, n_samples=lens_samples, seed=seed, return_per_sigma=True, **kw)
    viz.spectral_lens_figure(x, lens, titles, path=out_dir / "spectral_lens.png")
    star = sigma_star(lens.per_sigma, lens.sigmas, kw["noise_scale"])
    curves, star = star.curves, star.sigma
    viz.cs_curves_figure(lens.sigmas, curves, [names[t] for t in top], path=out_dir / "cs_curves.png")
    print(f"SpectralLens ({lens.sigmas.numel()} σ x {lens_samples} samples, one batched call) in "
          f"{time.perf_counter() - t0:.1f} s; image-level σ* = {[round(float(v), 2) for v in star]}")
    cutoff = noise_cutoff(model, x, [0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 2.0], n_samples=4, seed=seed)
    viz.entropy_figure(cutoff, path=out_dir / "entropy.png")
    viz.bandpass_figure(path=out_dir / "bandpass.png")
    print(f"noise cutoff s* = {cutoff.scale:g} (entropy {[round(float(h), 2) for h in cutoff.entropy]})")
    print(f"figures in {out_dir}: explanations.png spectra.png spectral_lens.png cs_curves.png entropy.png "
          "bandpass.png")
    return out_dir
