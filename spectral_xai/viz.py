"""Figures (matplotlib, headless): explanation maps next to their images."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch


def pyplot():
    """matplotlib.pyplot on the headless Agg backend (unless a backend was chosen already)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    """Lay the figure out, write it as PNG when ``path`` is given, and return it."""
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def _curve_axes(ax, xlabel: str, ylabel: str, title: str, legend_size: int = 8) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=legend_size)


def display_map(m: torch.Tensor, signed: bool) -> tuple[torch.Tensor, dict]:
    """Clip a map at its 99.5th percentile of |m| for display; signed maps use a diverging map."""
    m = m.detach().float().cpu()
    hi = float(torch.quantile(m.abs().flatten(), 0.995)) or 1.0
    if signed:
        return m.clamp(-hi, hi), dict(cmap="coolwarm", vmin=-hi, vmax=hi)
    return m.clamp(0, hi), dict(cmap="inferno", vmin=0, vmax=hi)


def maps_figure(images: torch.Tensor, maps: Mapping[str, torch.Tensor], titles: Sequence[str] | None = None,
                path=None):
    """One row per image: the image (B, 3, H, W) in [0, 1], then each (B, H, W) map.

    Signed maps (with negative values) are drawn with a diverging colour map.  Returns the
    Figure; saves a PNG when ``path`` is given.
    """
    plt = pyplot()
    B = images.shape[0]
    cols = 1 + len(maps)
    fig, axes = plt.subplots(B, cols, figsize=(2.2 * cols, 2.2 * B), squeeze=False)
    for b in range(B):
        axes[b, 0].imshow(images[b].detach().float().cpu().permute(1, 2, 0).clamp(0, 1).numpy())
        axes[b, 0].set_title(titles[b] if titles else f"image {b}", fontsize=8)
        for c, (name, m) in enumerate(maps.items(), start=1):
            shown, kw = display_map(m[b], signed=bool((m < 0).any()))
            axes[b, c].imshow(shown.numpy(), **kw)
            axes[b, c].set_title(name, fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    return _save(fig, path)


def spectral_lens_figure(images: torch.Tensor, result, titles: Sequence[str] | None = None, path=None):
    """ECCV24 Fig. 5 style: image | SL² | ArgLens shown as 1/(AL + 1) (bright = small σ wins).

    images (B, 3, H, W) in [0, 1]; result: a SpectralLensResult from the grid estimator."""
    if result.arglens is None:
        raise ValueError("spectral_xai: argument 'result': ArgLens needs estimator='grid'")
    plt = pyplot()
    B = images.shape[0]
    fig, axes = plt.subplots(B, 3, figsize=(6.6, 2.2 * B), squeeze=False)
    for b in range(B):
        axes[b, 0].imshow(images[b].detach().float().cpu().permute(1, 2, 0).clamp(0, 1).numpy())
        axes[b, 0].set_title(titles[b] if titles else f"image {b}", fontsize=8)
        shown, kw = display_map(result.sl2[b], signed=False)
        axes[b, 1].imshow(shown.numpy(), **kw)
        axes[b, 1].set_title("SL²", fontsize=8)
        im = axes[b, 2].imshow((1.0 / (result.arglens[b].float().cpu() + 1)).numpy(), cmap="viridis", vmin=0.5,
                               vmax=1.0)
        axes[b, 2].set_title("ArgLens 1/(AL+1)", fontsize=8)
        fig.colorbar(im, ax=axes[b, 2], fraction=0.046, pad=0.02)
    for ax in axes.flat:
        ax.axis("off")
    return _save(fig, path)


def bandpass_figure(sigmas: Sequence[float] = (0.05, 0.1, 0.2, 0.4), max_frequency: float = 3.0, path=None):
    """ECCV24 Fig. 2: the kernel K_σ(ω) = ω²·exp(−8π²σ²ω²) that squared gradients see under Gaussian
    noise of std σ, for several σ (each curve scaled to peak 1; its peak is at ω = 1/(2πσ√2))."""
    import math

    plt = pyplot()
    w = torch.linspace(0, max_frequency, 600, dtype=torch.float64)
    fig, ax = plt.subplots(figsize=(4.8, 3.2))
    for s in sigmas:
        k = w**2 * torch.exp(-8 * math.pi**2 * s**2 * w**2)
        ax.plot(w.numpy(), (k / k.max()).numpy(), label=f"σ = {s:g}")
    _curve_axes(ax, "frequency ω", "K_σ(ω) / max", "band-pass of squared gradients")
    return _save(fig, path)


def cs_curves_figure(sigmas: torch.Tensor, curves: torch.Tensor, labels: Sequence[str] | None = None, path=None):
    """ECCV24 Fig. 4: CS(σ) per image (each scaled to max 1) with its arg-max σ* marked.  curves (B, S)."""
    plt = pyplot()
    s = sigmas.detach().double().cpu()
    c = curves.detach().double().cpu()
    c = c / c.amax(dim=1, keepdim=True).clamp_min(1e-300)
    fig, ax = plt.subplots(figsize=(4.8, 3.2))
    for b in range(c.shape[0]):
        (line,) = ax.plot(s.numpy(), c[b].numpy(), marker=".", label=labels[b] if labels else f"image {b}")
        j = int(c[b].argmax())
        ax.plot([float(s[j])], [1.0], marker="*", markersize=12, color=line.get_color())
    _curve_axes(ax, "σ", "CS(σ) / max", "optimal σ: CS(σ) = (σs)^e ||E[g²]||₁", legend_size=7)
    return _save(fig, path)


def entropy_figure(cutoff, tau: float = 0.05, path=None):
    """ECCV24 Fig. 6: mean predictive entropy H(s) over the noise std sweep, the cutoff s* marked."""
    plt = pyplot()
    s = cutoff.scales.double().numpy()
    h = cutoff.entropy.double().numpy()
    fig, ax = plt.subplots(figsize=(4.8, 3.2))
    ax.plot(s, h, marker=".", label="H(s)")
    ax.axhline((1 - tau) * h.max(), color="gray", linestyle=":", label=f"(1 − {tau:g})·max H")
    ax.axvline(cutoff.scale, color="red", linestyle="--", label=f"s* = {cutoff.scale:g}")
    _curve_axes(ax, "noise std s", "predictive entropy (nats)", "noise cutoff from predictive entropy")
    return _save(fig, path)


def spectra_figure(maps: Mapping[str, torch.Tensor], *, rank_normalize: bool = True, path=None):
    """ICCV25 Fig. 2 style: mean radial power spectrum of each method's (B, H, W) maps, each normalised to
    unit total power (the distribution whose centroid is EF), log scale."""
    from .spectrum import radial_power_spectrum

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 3.2))
    for name, m in maps.items():
        spec = radial_power_spectrum(m, rank_normalize=rank_normalize).double()
        spec = (spec / spec.sum(dim=1, keepdim=True)).mean(0)
        k = torch.arange(spec.numel(), dtype=torch.float64) / max(1, spec.numel() - 1)
        ax.semilogy(k.numpy(), spec.cpu().numpy(), label=name)
    _curve_axes(ax, "frequency ω_k = k/(K−1)", "share of the ring means of |FFT|²",
                "radial power spectra" + (" (rank-normalised maps)" if rank_normalize else ""))
    return _save(fig, path)


def ef_vs_beta_figure(betas: Sequence[float | None], ef_mean: Sequence[float], ef_std: Sequence[float], path=None,
                      *, unsmoothed: str = "ReLU", xlabel: str = "SoftPlus β"):
    """ICCV25 Fig. 3: EF of VanillaGrad (mean, error bar ``ef_std``) against the smoothing β of the model's
    activation (None = the unsmoothed activation, labelled ``unsmoothed`` and drawn at the right)."""
    plt = pyplot()
    finite = [b for b in betas if b is not None]
    relu_x = max(finite) * 2 if finite else 1.0
    xs = [relu_x if b is None else b for b in betas]
    fig, ax = plt.subplots(figsize=(4.8, 3.2))
    ax.errorbar(xs, ef_mean, yerr=ef_std, marker="o", capsize=3, linestyle="-")
    ax.set_xscale("log")
    ax.set_xticks(xs)
    ax.set_xticklabels([unsmoothed if b is None else f"{b:g}" for b in betas])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("EF of VanillaGrad")
    ax.set_title("smoother activations → lower Expected Frequency", fontsize=9)
    return _save(fig, path)
