"""Choosing the noise scale: optimal σ by the cosine-similarity criterion (docs/methods.md §3) and the noise
cutoff from predictive entropy (docs/methods.md §4)."""
from __future__ import annotations

from typing import NamedTuple

import torch

from . import _validation as V
from .engine import estimate, plan_rows
from .mc_stats import check_even_groups, filled_groups
from .model_calls import batched_logits, check_model_device, model_scope, prepare_inference
from .ops import perturb
from .options import accepts_options, output_dtype, split_options


ADMISSIBLE_RULES = ("image-dependent", "all")


class OptimalSigma(NamedTuple):
    """sigma: (B,) for level="image", () for "dataset", (B, H, W) for "pixel", values from ``sigmas``;
    curves: CS(σ) as (B, S) (image/dataset, dataset normalised per image by its admissible max) or (B, S, H, W)
    (pixel); sigmas (S,) the grid; per_sigma (B, S, H, W) the SG² maps G_σ behind the curves;
    at_edge: bool, the shape of ``sigma``, True where σ* is the largest or smallest admissible σ (the curve
    has not turned there: the maximum may lie beyond the grid); admissible (S,) bool (or (B, S) for a
    per-image mask), the σ that could be chosen (docs/methods.md §3); mc_change (B,) float64 with
    ``return_stats=True``: how often σ* would change (see :class:`SigmaStar`), else None."""

    sigma: torch.Tensor
    curves: torch.Tensor
    sigmas: torch.Tensor
    per_sigma: torch.Tensor
    at_edge: torch.Tensor
    admissible: torch.Tensor
    mc_change: torch.Tensor | None = None


def admissible_sigmas(sigmas, mixing: str = "convex", rule="image-dependent", batch: int | None = None) -> torch.Tensor:
    """(S,) bool (or (B, S) for a per-image mask): the σ of the grid that σ* may take (docs/methods.md §3).

    ``rule="image-dependent"`` (default): every σ whose perturbed input still depends on the image, i.e.
    all but σ = 1 of the convex and damping families (x̃ = σ·s·ε resp. the baseline there, so the map is
    the same for every image).  ``rule="all"``: every σ of the grid (the behaviour before the rule).
    ``rule`` may also be a bool tensor (S,) or (batch, S) of the caller's own choice (e.g. σ whose map
    correlates with a blank's less than a threshold, :func:`map_correlation`); the image-dependent rule
    is applied on top of it."""
    s = V.check_sigmas(sigmas, mixing, torch.device("cpu"))
    exact = s < 1.0 if mixing != "additive" else torch.ones_like(s, dtype=torch.bool)
    if isinstance(rule, torch.Tensor):
        shapes = [(s.numel(),)] + ([(batch, s.numel())] if batch is not None else [])
        if rule.dtype != torch.bool or tuple(rule.shape) not in shapes:
            V.fail("admissible", f"expected a bool tensor of shape {' or '.join(map(str, shapes))}, got "
                                 f"{rule.dtype} {tuple(rule.shape)}")
        return rule.cpu() & exact
    if rule not in ADMISSIBLE_RULES:
        V.fail("admissible", f"expected one of {ADMISSIBLE_RULES} or a bool mask, got {rule!r}")
    return torch.ones_like(s, dtype=torch.bool) if rule == "all" else exact


def map_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of maps a, b (..., H, W) over their pixels -> (...) float64 (0 where a map is flat),
    e.g. of per-σ maps G_σ(x) (B, S, H, W) with those of a blank image, to find σ whose map no longer depends
    on the image (docs/methods.md §3)."""
    a, b = a.flatten(start_dim=-2).double(), b.flatten(start_dim=-2).double()
    a, b = a - a.mean(-1, keepdim=True), b - b.mean(-1, keepdim=True)
    den = (a.norm(dim=-1) * b.norm(dim=-1))
    return torch.where(den > 0, (a * b).sum(-1) / den.clamp_min(torch.finfo(torch.float64).tiny), 0.0)


def _argmax_admissible(curves: torch.Tensor, grid: torch.Tensor, mask: torch.Tensor):
    """Arg-max of ``curves`` (B, S, ...) along the σ axis (dim 1) over the admissible σ only (mask (S,) or
    (B, S); ties -> first) -> (index, at_edge): at_edge is True where the chosen σ is the largest or smallest
    admissible σ (of that image)."""
    if not bool(mask.any(dim=-1).all()):
        V.fail("sigmas", "no admissible noise scale on the grid (convex/damping σ = 1 makes the map the same for "
                         "every image; add smaller σ or pass admissible='all')")
    mask = mask.to(curves.device)
    m2 = mask.view(1, -1) if mask.dim() == 1 else mask                        # (1 or B, S)
    m = m2.view(*m2.shape, *([1] * (curves.dim() - 2)))
    index = curves.masked_fill(~m, -torch.inf).argmax(dim=1)
    vals = grid.to(curves.device, torch.float64)
    hi = vals.masked_fill(~m2, -torch.inf).amax(dim=1).view(-1, *([1] * (index.dim() - 1)))
    lo = vals.masked_fill(~m2, torch.inf).amin(dim=1).view(-1, *([1] * (index.dim() - 1)))
    chosen = vals[index]
    return index, (chosen == hi) | (chosen == lo)


def cs_curves(per_sigma: torch.Tensor, sigmas: torch.Tensor, noise_scale=1.0, exponent: float = 2.5):
    """The CS curves of docs/methods.md §3 from channel-summed SG² maps on a grid.

    CS(σ) = (σ s)^exponent · ||G_σ||_1, and per pixel (σ s)^exponent · G_σ(p); σ s is the effective noise std.

    Signals (B, S, L) and volumes (B, S, D, H, W) alike.

    Args:
        per_sigma: G_σ (B, S, H, W).
        sigmas: the grid (S,).
        noise_scale: s, a number or (B,).
        exponent: 2.5 (the paper); 1 reproduces the authors' code.

    Returns:
        (image curves (B, S), pixel curves (B, S, H, W)) in per_sigma's dtype.

    Example:
        >>> curves, pixel = sx.cs_curves(torch.rand(2, 3, 8, 8), torch.tensor([0.1, 0.2, 0.3]))
        >>> curves.shape, pixel.shape
        (torch.Size([2, 3]), torch.Size([2, 3, 8, 8]))
    """
    B = per_sigma.shape[0]
    scales = V.check_noise_scale(noise_scale, B, per_sigma.device).to(per_sigma.dtype)
    eff = sigmas.to(per_sigma.device, per_sigma.dtype).view(1, -1) * scales.view(-1, 1)
    weight = eff ** float(exponent)
    axes = tuple(range(2, per_sigma.dim()))                            # the map axes (any number)
    return weight * per_sigma.sum(dim=axes), weight.view(*weight.shape, *([1] * len(axes))) * per_sigma


class SigmaStar(NamedTuple):
    """index (B,) int64 of σ* on the grid; sigma (B,) float64 its value; maps (B, H, W) the SG² map G_σ* of
    each image (float64); curves (B, S) the CS curves behind the choice; at_edge (B,) bool: σ* is the
    largest or smallest admissible σ (the curve has not turned); admissible (S,) bool (docs/methods.md §3);
    mc_change (B,) float64 or None: with the per-σ sample groups, how often σ* would change (the fraction of
    balanced splits of the groups whose two halves choose different σ*, 0 = stable; docs/methods.md §11)."""

    index: torch.Tensor
    sigma: torch.Tensor
    maps: torch.Tensor
    curves: torch.Tensor
    at_edge: torch.Tensor
    admissible: torch.Tensor
    mc_change: torch.Tensor | None = None


def sigma_star(per_sigma: torch.Tensor, sigmas: torch.Tensor, noise_scale=1.0, exponent: float = 2.5, *,
               mixing: str = "convex", admissible: str = "image-dependent", groups: torch.Tensor | None = None,
               group_counts: torch.Tensor | None = None) -> SigmaStar:
    """Image-level σ* = argmax_σ CS(σ) over the admissible σ (ties -> smallest σ) and SG²_opt = G_σ* from per-σ
    maps of one grid (e.g. ``spectral_lens(..., return_per_sigma=True).per_sigma``): no extra passes.

    Args:
        per_sigma: G_σ (B, S, H, W).
        sigmas: the grid (S,).
        noise_scale: s, a number or (B,).
        exponent: the CS exponent, see :func:`cs_curves`.
        mixing: the family of the maps.
        admissible: which σ may be chosen, see :func:`admissible_sigmas`.
        groups, group_counts: the per-σ sample groups (B, S, G, H, W) and their counts (B, S, G) of the same
            run (``per_sigma_groups``, ``per_sigma_group_counts`` of ``spectral_lens(..., return_stats=True,
            return_per_sigma=True)``): fills ``mc_change``, see
            :func:`spectral_xai.mc_derived.sigma_star_change`.

    Returns:
        A :class:`SigmaStar`: index (B,) int64, sigma (B,) float64, maps (B, H, W) float64, curves (B, S),
        at_edge (B,) bool, admissible (S,) or (B, S) bool, mc_change (B,) float64 (None without groups).

    Example:
        >>> sx.sigma_star(torch.rand(2, 3, 8, 8), torch.tensor([0.1, 0.2, 0.3])).maps.shape
        torch.Size([2, 8, 8])
    """
    per_sigma = per_sigma.double()
    mask = admissible_sigmas(sigmas, mixing, admissible, per_sigma.shape[0])
    curves, _ = cs_curves(per_sigma, sigmas, noise_scale, exponent)
    j, at_edge = _argmax_admissible(curves, sigmas, mask)
    maps = per_sigma[torch.arange(per_sigma.shape[0], device=j.device), j]
    change = None
    if groups is not None or group_counts is not None:
        from .mc_derived import sigma_star_change      # it chooses σ* with this function

        change = sigma_star_change(groups, group_counts, sigmas, noise_scale, exponent, mixing=mixing,
                                   admissible=admissible)
    return SigmaStar(j, sigmas.to(device=j.device, dtype=torch.float64)[j], maps, curves, at_edge,
                     mask.to(j.device), change)


def _sigma_curves(model, x, sigmas, target, exponent, mixing, noise_scale, sampling: dict, stats: bool = False):
    """The SG² maps G_σ (B, S, H, W) on the grid and their CS curves; ``sampling``: the engine's options
    by name (n_samples, seed, image_ids, tol, batch_size, fast, output, ...); with ``stats`` also the per-σ
    sample groups (B, S, G, H, W) and their counts (B, S, G) (else None, None)."""
    s = V.check_sigmas(sigmas, mixing, torch.device("cpu"))
    samp, exe, rest = split_options(sampling)
    output = rest.pop("output", "log_softmax")
    if rest:
        V.fail(sorted(rest)[0], "unknown option (expected an option of the sampling engine)", TypeError)
    if stats:
        check_even_groups(samp.groups)
        if samp.n_samples < 2:
            V.fail("n_samples", f"return_stats needs at least 2 samples per σ, got {samp.n_samples}")
    est = estimate(model, x, sigmas=s, mixing=mixing, powers=(2,), target=target, output=output,
                   noise_scale=noise_scale, reduce_channels=True, sampling=samp, execution=exe, x_checked=True,
                   stats=stats)
    per_sigma = est.mean2[:, :, 0]                                     # (B, S, H, W): Σ_c E[g_c²]
    image_curves, pixel_curves = cs_curves(per_sigma, s, noise_scale, exponent)
    groups = filled_groups(est.group_mean2, est.group_counts, est.mean2)[:, :, :, 0] if stats else None
    return s, image_curves, pixel_curves, per_sigma, (groups, est.group_counts if stats else None)


@accepts_options
def optimal_sigma(model, x, sigmas, target=None, *, level="image", exponent=2.5, mixing="convex",
                  noise_scale=1.0, admissible="image-dependent", return_curves=False, return_stats=False,
                  **sampling):
    """σ* = argmax_σ CS(σ), CS(σ) = (σ·s)^exponent · ||E_σ[g²]||_1 (docs/methods.md §3), over the admissible σ;
    ties -> smallest σ.

    Args:
        model: a classifier x (B, C, H, W) -> logits (B, K).
        x: images (B, C, H, W), floating point.
        sigmas: the grid (S,).
        target: None (the clean arg-max), an int or (B,) class indices.
        level: "image" (per image), "dataset" (argmax of the mean over images of CS / (max of CS over the
            admissible σ)) or "pixel" (argmax of (σ s)^exponent · G_σ(p)).
        exponent: 2.5 (the paper); 1 reproduces the authors' code.
        mixing, noise_scale: the perturbation family (default convex) and s.
        admissible: "image-dependent" (default) leaves out σ = 1 of the convex family, where the map is the same
            for every image; "all" keeps every σ; a bool mask (S,) (or (B, S), not for "dataset") is the
            caller's own choice (see :func:`admissible_sigmas`).
        return_curves: return an :class:`OptimalSigma` with the curves, per-σ maps and ``at_edge``.
        return_stats: (level "image") return an :class:`OptimalSigma` whose ``mc_change`` says how often σ*
            would change, from the sample groups of the same passes (``groups=``, even; docs/methods.md §11).
        **sampling: the engine's options by name (n_samples, seed, image_ids, batch_size, output, tol, ...), or
            ``sampling=`` a :class:`SamplingOptions` and ``execution=`` an :class:`ExecutionOptions`.

    Returns:
        σ* of shape (B,), () or (B, H, W) by level (float32, float64 for float64 x), or an OptimalSigma.

    Example:
        >>> sx.optimal_sigma(model, x, [0.1, 0.3, 0.5], n_samples=4).shape
        torch.Size([2])
    """
    if level not in ("image", "dataset", "pixel"):
        V.fail("level", f"expected 'image', 'dataset' or 'pixel', got {level!r}")
    if return_stats and level != "image":
        V.fail("return_stats", f"is only available for level='image', got level={level!r}")
    x = V.check_inputs(x)
    mask = admissible_sigmas(sigmas, mixing, admissible, None if level == "dataset" else x.shape[0])
    s, image_curves, pixel_curves, per_sigma, (groups, counts) = _sigma_curves(
        model, x, sigmas, target, exponent, mixing, noise_scale, sampling, stats=bool(return_stats))
    grid = s.to(image_curves.device)
    if level == "image":
        curves = image_curves
        j, at_edge = _argmax_admissible(curves, grid, mask)
    elif level == "dataset":
        top = image_curves[:, mask.to(image_curves.device)].amax(dim=1, keepdim=True) if mask.any() else image_curves
        curves = image_curves / top.clamp_min(torch.finfo(torch.float64).tiny)
        j, at_edge = _argmax_admissible(curves.mean(dim=0, keepdim=True), grid, mask)
        j, at_edge = j[0], at_edge[0]
    else:
        curves = pixel_curves
        j, at_edge = _argmax_admissible(curves, grid, mask)
    sigma = grid[j]
    dt = output_dtype(x)
    if not (return_curves or return_stats):
        return sigma.to(dt)
    change = None
    if return_stats:
        from .mc_derived import sigma_star_change      # it chooses σ* with sigma_star

        change = sigma_star_change(groups, counts, s, noise_scale, exponent, mixing=mixing, admissible=admissible)
    return OptimalSigma(sigma.to(dt), curves.to(dt), s, per_sigma.to(dt), at_edge, mask.to(at_edge.device), change)


@accepts_options
def sg2_opt(model, x, sigmas, target=None, *, exponent=2.5, mixing="convex", noise_scale=1.0,
            admissible="image-dependent", **sampling):
    """SG²_opt: the SG² map of each image at its own σ* (image level, over the admissible σ), from the same
    passes as the CS curves.

    Args:
        model, x, sigmas, target, exponent, mixing, noise_scale, admissible, **sampling: as in
            :func:`optimal_sigma`.

    Returns:
        (maps (B, H, W), σ* (B,)); the edge flags are in ``optimal_sigma(..., return_curves=True).at_edge`` or
        :func:`sigma_star`.

    Example:
        >>> maps, sigma = sx.sg2_opt(model, x, [0.1, 0.3, 0.5], n_samples=4)
        >>> maps.shape, sigma.shape
        (torch.Size([2, 8, 8]), torch.Size([2]))
    """
    x = V.check_inputs(x)
    mask = admissible_sigmas(sigmas, mixing, admissible, x.shape[0])
    s, image_curves, _, per_sigma, _ = _sigma_curves(model, x, sigmas, target, exponent, mixing, noise_scale,
                                                     sampling)
    j, _ = _argmax_admissible(image_curves, s, mask)
    dt = output_dtype(x)
    maps = per_sigma[torch.arange(x.shape[0], device=j.device), j]
    return maps.to(dt), s.to(j.device)[j].to(dt)


class NoiseCutoff(NamedTuple):
    """scale: the chosen noise std s*; scales (S,) the grid; entropy (S,) the mean predictive entropy
    H(s) over images; per_image (B, S) the entropy of each image."""

    scale: float
    scales: torch.Tensor
    entropy: torch.Tensor
    per_image: torch.Tensor


@accepts_options
def noise_cutoff(model, x, scales, *, tau=0.05, n_samples=16, seed=0, image_ids=None, batch_size=None):
    """The noise cutoff of docs/methods.md §4: the smallest additive std s whose predictive entropy reaches
    (1 − tau) of its maximum over ``scales``.

    Per image lp(s) = E_ε[log_softmax f(x + s ε)] and H(s) = −Σ_k exp(lp_k) lp_k, averaged over images.  Forward
    passes only, the noise keyed as everywhere else.

    Args:
        model: a classifier x (B, C, H, W) -> logits (B, K).
        x: images (B, C, H, W), floating point.
        scales: the stds to sweep (S,), sorted here.
        tau: 0 <= tau < 1.
        n_samples, seed, image_ids: samples per (image, s) and the noise keys (or ``sampling=``).
        batch_size: rows per forward pass (or ``execution=``).

    Returns:
        A :class:`NoiseCutoff`: scale (float), scales (S,), entropy (S,), per_image (B, S).

    Example:
        >>> sx.noise_cutoff(model, x, [0.0, 0.5, 1.0], n_samples=4).per_image.shape
        torch.Size([2, 3])
    """
    x = V.check_images(x)
    check_model_device(model, x)
    s = V.check_sigmas(scales, "additive", torch.device("cpu"))
    s, _ = torch.sort(s)
    n_samples = V.check_positive_int(n_samples, "n_samples")
    if not (isinstance(tau, (int, float)) and 0 <= tau < 1):
        V.fail("tau", f"expected 0 <= tau < 1, got {tau!r}")
    seed = V.check_seed(seed)
    B, S = x.shape[0], s.numel()
    dev = x.device
    ids = V.check_image_ids(image_ids, B, dev)
    with model_scope(model):
        xm, batch_size = prepare_inference(model, x, batch_size)
        rows = plan_rows(torch.arange(B * S), torch.zeros(B * S, dtype=torch.int64), n_samples, n_samples, S)
        rows = rows.to(dev)
        ones = torch.ones(B, dtype=torch.float64, device=dev)
        lp_sum = None
        perturbed = lambda sl: perturb(xm, rows[sl], s.to(dev), ones, ids, None, seed, "additive")  # noqa: E731
        for sl, logits in batched_logits(model, rows.shape[0], batch_size, perturbed):
            lp = torch.log_softmax(logits.to(torch.float64), dim=1)
            if lp_sum is None:
                lp_sum = torch.zeros(B * S, lp.shape[1], dtype=torch.float64, device=dev)
            lp_sum.index_add_(0, rows[sl, 0] * S + rows[sl, 1], lp)
    lp_mean = (lp_sum / n_samples).view(B, S, -1)
    per_image = -(lp_mean.exp() * lp_mean).sum(dim=2)
    entropy = per_image.mean(dim=0).cpu()
    chosen = int(torch.nonzero(entropy >= (1 - tau) * entropy.max())[0])
    return NoiseCutoff(float(s[chosen]), s, entropy, per_image.cpu())
