"""SpectralLens (SL²) and ArgLens (AL): squared gradients aggregated over noise scales (docs/methods.md §2).

G_σ = Σ_c E[g_c²] under convex mixing x̃ = (1 − σ) x + σ s ε, on a grid σ_1 < … < σ_S;
SL² = Σ_j w_j G_σj / Σ_j w_j (prior weights w), AL = σ_{argmax_j G_σj} per pixel (ties → smallest σ).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from . import _validation as V
from .engine import estimate
from .options import CHECK_EVERY, LENS_ESTIMATORS, MIN_SAMPLES, PRIORS, SIGMA_GRID, ExecutionOptions, SamplingOptions, accepts_options, output_dtype
from .ops._philox import philox4x32_10
from .mc_derived import arglens_agreement
from .mc_stats import check_even_groups, combine_sigmas, map_interval, relative_error, sigma_statistics

STRATIFY_STREAM = 0xFFFFFFFF  # sigma-index word reserved for the stratification uniforms
NEYMAN_DEFENSIVE = 0.25       # share of the passes split evenly over σ whatever the pilot says


@dataclass
class SpectralLensResult:
    """sl2 (B, H, W); arglens (B, H, W) with values from ``sigmas`` (None for the stratified
    estimator, which never sees a σ grid per pixel); sigmas (S,); weights (S,) normalised prior
    weights; per_sigma (B, S, H, W) or None; n_samples (B, S) samples per image and σ (grid, neyman:
    without the pilot) or (B, 1) samples in all (stratified); estimator "grid", "stratified" or
    "neyman"; notes: what is missing.  With ``return_stats=True`` (grid): stderr (B, H, W) per-pixel standard
    error of sl2 (se² = Σ_j w_j² se_j², the σ slots are independent), halves (A, B) the SL² of the even / odd
    sample indices, rel_error (B,) ||stderr||_2 / ||sl2||_2; with return_per_sigma also per_sigma_stderr and
    per_sigma_halves (B, S, H, W) and per_sigma_rel_error (B, S).  A noiseless σ has se 0 and both halves equal
    to its map.  Also groups (B, G, H, W) the SL² of the G interleaved sample groups, group_counts (B, G) (of
    the σ with most samples), third (B, H, W) the third central moment of sl2 (Σ_j w_j³ k3_j / n_j²), dof (B,)
    (Welch–Satterthwaite) and ``interval(level)``; with return_per_sigma per_sigma_groups (B, S, G, H, W),
    per_sigma_group_counts (B, S, G), per_sigma_third (B, S, H, W) and per_sigma_dof (B, S).  arglens_agreement
    (B, H, W) bool: where the ArgLens of the two halves agree (:func:`spectral_xai.mc_derived.arglens_agreement`;
    its mean over the pixels is the audit's al_mc_agreement)."""

    sl2: torch.Tensor
    arglens: torch.Tensor | None
    sigmas: torch.Tensor
    weights: torch.Tensor
    per_sigma: torch.Tensor | None
    n_samples: torch.Tensor
    estimator: str = "grid"
    notes: str = ""
    stderr: torch.Tensor | None = None
    halves: tuple | None = None
    rel_error: torch.Tensor | None = None
    per_sigma_stderr: torch.Tensor | None = None
    per_sigma_halves: tuple | None = None
    per_sigma_rel_error: torch.Tensor | None = None
    groups: torch.Tensor | None = None
    group_counts: torch.Tensor | None = None
    third: torch.Tensor | None = None
    dof: torch.Tensor | None = None
    per_sigma_groups: torch.Tensor | None = None
    per_sigma_group_counts: torch.Tensor | None = None
    per_sigma_third: torch.Tensor | None = None
    per_sigma_dof: torch.Tensor | None = None
    arglens_agreement: torch.Tensor | None = None

    def interval(self, level: float = 0.95, *, skewness: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(lo, hi) (B, H, W) for sl2: the skewness-corrected interval of docs/methods.md §11
        (``return_stats=True``; SL² averages squared gradients; ``skewness=False``: the Student-t interval)."""
        return map_interval(self.sl2, self.stderr, self.third, self.dof, level, skewness)


def prior_weights(sigmas: torch.Tensor, prior="uniform", *, beta=(2.0, 2.0), power=2.5) -> torch.Tensor:
    """Normalised weights of a prior over the σ grid (docs/methods.md §2).

    Args:
        sigmas: the grid (S,).
        prior: "uniform" (the paper's SL²), "beta" (density σ^(a−1)(1−σ)^(b−1); the authors used a = b = 2),
            "power" (σ^p; the authors' SLT² is p = 5/2), or S non-negative weights.
        beta: (a, b) of the beta prior.
        power: p of the power prior.

    Returns:
        (S,) float64 weights summing to 1.

    Example:
        >>> sx.prior_weights(torch.linspace(0, 1, 5), "power", power=1.0)
        tensor([0.0000, 0.1000, 0.2000, 0.3000, 0.4000], dtype=torch.float64)
    """
    s = sigmas.to(torch.float64).cpu()
    if isinstance(prior, str):
        if prior == "uniform":
            w = torch.ones_like(s)
        elif prior == "beta":
            a, b = (float(v) for v in beta)
            if a <= 0 or b <= 0:
                V.fail("beta", f"expected positive (a, b), got {beta}")
            w = s.clamp(min=0) ** (a - 1) * (1 - s).clamp(min=0) ** (b - 1)
        elif prior == "power":
            w = s.clamp(min=0) ** float(power)
        else:
            V.fail("prior", f"expected {', '.join(map(repr, PRIORS))} or weights, got {prior!r}")
    else:
        w = torch.as_tensor(prior, dtype=torch.float64).cpu().reshape(-1)
        if w.numel() != s.numel():
            V.fail("prior", f"expected {s.numel()} weights (one per sigma), got {w.numel()}")
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()) or float(w.sum()) <= 0:
        V.fail("prior", "weights must be finite, non-negative and not all zero")
    return w / w.sum()


def _stratified_sigma_indices(weights: torch.Tensor, n: int, seed: int, image_ids: torch.Tensor) -> torch.Tensor:
    """(B, n) σ indices: sample i of image b takes u = (i + U)/n, U ~ U(0, 1) keyed by (seed, image id, i),
    and the σ whose prior CDF bin contains u.  Every stratum of prior mass 1/n gets one sample."""
    B = image_ids.numel()
    i = torch.arange(n, dtype=torch.int64).repeat(B)
    ids = image_ids.cpu().repeat_interleave(n)
    words = philox4x32_10([i, torch.zeros_like(i), torch.full_like(i, STRATIFY_STREAM), ids],
                          (seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF))
    u01 = (words[0].to(torch.float64) + 0.5) / 2.0**32
    u = (i.to(torch.float64) + u01) / n
    cdf = torch.cumsum(weights, 0)
    cdf[-1] = 1.0
    idx = torch.searchsorted(cdf, u, right=True).clamp(max=weights.numel() - 1)
    return idx.view(B, n)


def neyman_counts(weights: torch.Tensor, sd: torch.Tensor, noisy: torch.Tensor, budget: torch.Tensor,
                  defensive: float = NEYMAN_DEFENSIVE) -> torch.Tensor:
    """Samples per (image, σ): Neyman allocation (minimising Σ_σ w_σ² sd_σ² / n_σ under Σ_σ n_σ = budget),
    mixed with the grid's even split for safety against a poor sd guess.

    weights (S,); sd (B, S) >= 0; noisy (B, S) bool (noiseless σ get 0); budget (B,) int >= noisy σ per image.
    n_σ ∝ (1 − defensive)·w_σ sd_σ / Σ w sd + defensive / (noisy σ), rounded by largest remainders, at least 1
    per noisy σ.  -> (B, S) int64."""
    B, S = sd.shape
    counts = torch.zeros(B, S, dtype=torch.int64)
    for b in range(B):
        idx = noisy[b].nonzero().view(-1)
        if idx.numel() == 0:
            continue
        total = int(budget[b])
        alloc = weights[idx].double() * sd[b, idx].double()
        if not bool(torch.isfinite(alloc).all()) or float(alloc.sum()) <= 0:
            alloc = torch.ones(idx.numel(), dtype=torch.float64)
        share = (1 - defensive) * alloc / alloc.sum() + defensive / idx.numel()
        want = share * total
        c = torch.floor(want).clamp(min=1).to(torch.int64)
        while int(c.sum()) < total:
            c[int(torch.argmax(want - c))] += 1
        while int(c.sum()) > total:
            c[int(torch.argmax(torch.where(c > 1, c - want, torch.full_like(want, -float("inf")))))] -= 1
        counts[b, idx] = c
    return counts


@accepts_options
def spectral_lens(model, x, sigmas=None, target=None, *, n_samples=32, prior="uniform", beta=(2.0, 2.0),
                  power=2.5, noise_scale=1.0, output="log_softmax", seed=0, image_ids=None, batch_size=None,
                  return_per_sigma=False, estimator="grid", tol=None, max_samples=None, check_every=CHECK_EVERY,
                  sampling="iid", fast=None, return_stats=False, target_error=None, min_samples=MIN_SAMPLES,
                  memory_budget=None, groups=2):
    """SpectralLens SL² and ArgLens on a σ grid under convex mixing (docs/methods.md §2).

    SL² = Σ_j w_j G_σj (prior weights w), G_σ = Σ_c E[g_c²] with x~ = (1 − σ) x + σ s ε; ArgLens = the σ of
    the grid where each pixel's G_σ is largest.  Estimators: ``"grid"`` (``n_samples`` per σ, all σ in the same
    passes); ``"stratified"`` (``n_samples`` in all, each sample's σ drawn from the prior by stratified sampling:
    S times fewer passes, no per-σ maps, no ArgLens); ``"neyman"`` (the grid's passes, one pilot per σ sets
    n_σ ∝ w_σ·sd_σ with 25 % split evenly, :func:`neyman_counts`; unbiased).

    Args:
        model: a classifier x (B, C, H, W) -> logits (B, K).
        x: images (B, C, H, W), floating point.
        sigmas: the σ grid in [0, 1] (default {0, 0.1, …, 1}; sorted).
        target: None (the clean arg-max), an int or (B,) class indices.
        n_samples: samples per σ (grid, neyman) or per image (stratified).
        prior, beta, power: the prior over σ, see :func:`prior_weights`.
        noise_scale: s, a number or (B,).
        output: "log_softmax", "logit" or "prob" of the target.
        seed, image_ids: the noise keys.
        return_per_sigma: keep the per-σ maps G_σ (B, S, H, W).
        estimator: "grid", "stratified" or "neyman".
        tol, check_every, max_samples, target_error, min_samples: adaptive stopping as in :func:`smooth_grad`
            (``target_error``, grid only: the relative error of each image's SL²).
        sampling: "iid" or "lhs" (grid, neyman), or a :class:`SamplingOptions` giving all sampling settings.
        batch_size, memory_budget, fast: how the passes run (or ``execution=``, an :class:`ExecutionOptions`).
        return_stats: (grid) the Monte Carlo error of SL² (and per σ) from the same passes.
        groups: interleaved sample groups of the statistics (even, 2 <= groups <= 64; docs/methods.md §11).

    Returns:
        A :class:`SpectralLensResult`: sl2 (B, H, W), arglens (B, H, W) or None, sigmas (S,), weights (S,),
        per_sigma (B, S, H, W) or None, n_samples, and with ``return_stats`` stderr, halves, rel_error.

    Example:
        >>> res = sx.spectral_lens(model, x, n_samples=4, **sx.preset("imagenet-resnet50"))
        >>> res.sl2.shape, res.arglens.shape, res.sigmas.shape
        (torch.Size([2, 8, 8]), torch.Size([2, 8, 8]), torch.Size([11]))
    """
    x = V.check_inputs(x)
    s, w = _grid_and_weights(sigmas, prior, beta, power)
    samp = SamplingOptions(n_samples=n_samples, seed=seed, image_ids=image_ids, tol=tol, max_samples=max_samples,
                           check_every=check_every, noise_design=sampling, target_error=target_error,
                           min_samples=min_samples, groups=groups).checked()
    if return_stats:
        check_even_groups(groups)
    if estimator != "grid" and (return_stats or target_error is not None):
        V.fail("return_stats" if return_stats else "target_error", "is only available for estimator='grid'")
    problem = LensProblem(model, x, s, target, output, noise_scale,
                          ExecutionOptions(batch_size=batch_size, memory_budget=memory_budget, fast=fast))
    if estimator == "grid":
        est = problem.estimate(samp, stats=bool(return_stats), error_weights=w)
        res = _grid_result(problem, w, est.mean2[:, :, 0], est.n_samples, return_per_sigma, "grid", "")
        return _with_stats(res, est, w, return_per_sigma) if return_stats else res
    if estimator == "neyman":
        per_sigma, used = _neyman(problem, w, samp)
        return _grid_result(problem, w, per_sigma, used, return_per_sigma, "neyman",
                            "neyman: one pilot sample per σ (not in the maps) set n_σ")
    if estimator == "stratified":
        return _stratified(problem, w, samp, return_per_sigma)
    V.fail("estimator", f"expected one of {LENS_ESTIMATORS}, got {estimator!r}")


def _grid_and_weights(sigmas, prior, beta, power) -> tuple[torch.Tensor, torch.Tensor]:
    """The sorted σ grid (S,) float64 (default :data:`~spectral_xai.options.SIGMA_GRID`) and its prior weights."""
    s = V.check_sigmas(SIGMA_GRID if sigmas is None else sigmas, "convex", torch.device("cpu"))
    s, order = torch.sort(s)
    if s.unique().numel() != s.numel():
        V.fail("sigmas", "contains duplicates")
    w = prior_weights(s, prior, beta=beta, power=power)
    if not isinstance(prior, str):
        w = w[order]
    return s, w


@dataclass(frozen=True)
class LensProblem:
    """What every SpectralLens estimator shares: the model, x (checked), the σ grid (S,), the target, the
    explained output, the noise scale and the execution options; convex mixing, k = 2, channels reduced."""

    model: object
    x: torch.Tensor
    sigmas: torch.Tensor
    target: object
    output: str
    noise_scale: object
    execution: ExecutionOptions

    def estimate(self, sampling: SamplingOptions, **plan):
        """The engine's estimate of E[Σ_c g_c²] on the grid with ``sampling`` (``plan``: slot_samples, ...)."""
        return estimate(self.model, self.x, sigmas=self.sigmas, mixing="convex", powers=(2,), target=self.target,
                        output=self.output, noise_scale=self.noise_scale, reduce_channels=True, sampling=sampling,
                        execution=self.execution, x_checked=True, **plan)


def _grid_result(problem: LensProblem, w, per_sigma, used, return_per_sigma, estimator, notes):
    """SL², ArgLens and the per-σ maps from G_σ (B, S, H, W) float64 -> :class:`SpectralLensResult`."""
    out_dtype, s = output_dtype(problem.x), problem.sigmas
    sl2 = combine_sigmas(per_sigma, w)
    arglens = s.to(per_sigma.device)[per_sigma.argmax(dim=1)]          # first max = smallest σ
    return SpectralLensResult(
        sl2=sl2.to(out_dtype), arglens=arglens.to(out_dtype), sigmas=s, weights=w,
        per_sigma=per_sigma.to(out_dtype) if return_per_sigma else None, n_samples=used, estimator=estimator,
        notes=notes)


def _with_stats(res: SpectralLensResult, est, w: torch.Tensor, per_sigma: bool) -> SpectralLensResult:
    """``res`` with the Monte Carlo error of SL² (and per σ) from an estimate with statistics."""
    out = res.sl2.dtype
    st = sigma_statistics(est, 2, w)   # per σ (B, S, 1, ...), then combined (B, 1, ...): channels reduced
    mean_s, var_s, a_s, b_s, third_s = (t[:, :, 0] for t in (st.mean_s, st.var_s, st.a_s, st.b_s, st.third_s))
    mean, var, a, b, third = (t[:, 0] for t in (st.mean, st.var, st.a, st.b, st.third))
    res.stderr, res.halves = var.sqrt().to(out), (a.to(out), b.to(out))
    res.rel_error = relative_error(mean, var).to(out)
    res.groups, res.group_counts = st.groups[:, :, 0].to(out), st.group_counts
    res.third, res.dof = third.to(out), st.dof
    res.arglens_agreement = arglens_agreement(a_s, b_s)
    if per_sigma:
        B, S = mean_s.shape[:2]
        res.per_sigma_stderr = var_s.sqrt().to(out)
        res.per_sigma_halves = (a_s.to(out), b_s.to(out))
        res.per_sigma_rel_error = relative_error(mean_s.flatten(0, 1), var_s.flatten(0, 1)).view(B, S).to(out)
        res.per_sigma_groups, res.per_sigma_group_counts = st.groups_s[:, :, :, 0].to(out), st.counts_s
        res.per_sigma_third, res.per_sigma_dof = third_s.to(out), st.dof_s
    return res


def _stratified(problem: LensProblem, w, samp: SamplingOptions, return_per_sigma: bool):
    """One pooled SL² estimate: every sample draws its σ from the prior by stratified sampling."""
    if samp.tol is not None:
        V.fail("tol", "adaptive stopping is only available for estimator='grid'")
    if samp.noise_design != "iid":
        V.fail("sampling", "the stratified estimator draws its noise i.i.d. (sampling='iid')")
    if return_per_sigma:
        V.fail("return_per_sigma", "the stratified estimator has no per-sigma maps")
    ids = V.check_image_ids(samp.image_ids, problem.x.shape[0], torch.device("cpu"))
    idx = _stratified_sigma_indices(w, samp.n_samples, samp.seed, ids)
    est = problem.estimate(samp, sample_sigma=idx)
    return SpectralLensResult(
        sl2=est.mean2[:, 0, 0].to(output_dtype(problem.x)), arglens=None, sigmas=problem.sigmas, weights=w,
        per_sigma=None, n_samples=est.n_samples, estimator="stratified",
        notes="stratified σ: one unbiased SL² estimate from n samples in all; no ArgLens (no per-σ maps)")


def _pilot_spread(l1: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
    """Guess of the per-σ spread of the maps from one pilot sample each: ||g²||₁ (less heavy-tailed than
    ||g²||₂), averaged with the neighbouring σ of the grid (the spread varies smoothly with σ).  (B, S) -> (B, S).
    On EfficientNet-Lite0 a single-sample ||g²||₂ guess did worse than the even split (simulated from
    128-sample runs: 0.7-0.9x); this one gave 1.1-2.1x (benchmarks/studies/samples_to_accuracy.py)."""
    out = torch.zeros_like(l1, dtype=torch.float64)
    for b in range(l1.shape[0]):
        idx = noisy[b].nonzero().view(-1)
        if idx.numel() == 0:
            continue
        v = l1[b, idx].double()
        pad = torch.cat([v[:1], v, v[-1:]])
        out[b, idx] = (pad[:-2] + pad[1:-1] + pad[2:]) / 3
    return out


def _neyman(problem: LensProblem, w, samp: SamplingOptions):
    """Pilot (sample 0 of every σ), Neyman allocation, then samples 1..n_σ.  -> per_sigma (B, S, H, W), n (B, S)."""
    if samp.tol is not None:
        V.fail("tol", "adaptive stopping is only available for estimator='grid'")
    if samp.max_samples is not None:
        V.fail("max_samples", "is only used with tol (estimator='grid')")
    if samp.n_samples < 2:
        V.fail("n_samples", f"estimator='neyman' needs >= 2 samples per sigma (one is the pilot), got {samp.n_samples}")
    B, s = problem.x.shape[0], problem.sigmas
    pilot = problem.estimate(samp.with_(n_samples=1, noise_design="iid")).mean2[:, :, 0]     # (B, S, H, W)
    scales = V.check_noise_scale(problem.noise_scale, B, torch.device("cpu"))
    noisy = (s.view(1, -1) * scales.view(B, 1)) != 0
    counts = neyman_counts(w, _pilot_spread(pilot.flatten(2).sum(2).cpu(), noisy), noisy,
                           (samp.n_samples - 1) * noisy.sum(1))
    if not bool(noisy.any()):
        return pilot, torch.ones_like(counts)
    main = problem.estimate(samp.with_(sample_offset=1), slot_samples=counts)
    noisy_maps = noisy.to(pilot.device).view(*noisy.shape, *([1] * (pilot.dim() - 2)))
    per_sigma = torch.where(noisy_maps, main.mean2[:, :, 0], pilot)
    return per_sigma, torch.where(noisy, counts, torch.ones_like(counts))
