"""The spectrum of explanations (docs/methods.md §7, ICCV25 §3.2, §4): radial power spectra, Expected
Frequency (EF), the explanation gap.

A note on rank normalisation (the paper's recipe, ``rank_normalize=True``): ranks of a *signed*
gradient map have mean ≈ 0.5, so the DC ring dominates the spectrum and EF values are tiny and
hardly separate methods.  Measured on EfficientNet-Lite0 with real photos, VG and SG then both get
EF ≈ 6.6e-4, while without rank normalisation SG is clearly smoother (0.28 vs 0.39,
examples/reference/gap_table_efficientnet_lite0.md).  Use
``rank_normalize=False`` or ``exclude_dc=True`` for better-conditioned comparisons; keep the default
to reproduce the paper.
"""
from __future__ import annotations

import torch

from . import _validation as V
from .engine import estimate
from .options import ExecutionOptions, SamplingOptions, output_dtype
from .ops import spectrum as ops


_MAP_SHAPES = {1: "(B, L)", 2: "(B, H, W)", 3: "(B, D, H, W)"}


def _check_ndim(ndim) -> int:
    """ndim: 1 (signals), 2 (images) or 3 (volumes)."""
    if isinstance(ndim, bool) or not isinstance(ndim, int):
        V.fail("ndim", f"expected 1, 2 or 3, got {ndim!r}", TypeError)
    if ndim not in _MAP_SHAPES:
        V.fail("ndim", f"expected 1, 2 or 3, got {ndim}")
    return ndim


def _check_maps(maps, arg: str = "maps", ndim: int = 2) -> torch.Tensor:
    """Type and shape checks: (B, L), (B, H, W) or (B, D, H, W) maps for ndim = 1, 2, 3.  Non-finite
    values are caught by the ops / on the (small) spectra."""
    if not isinstance(maps, torch.Tensor):
        V.fail(arg, f"expected a torch.Tensor, got {type(maps).__name__}", TypeError)
    if not maps.is_floating_point():
        V.fail(arg, f"expected floating maps, got {maps.dtype}", TypeError)
    if maps.dim() != _check_ndim(ndim) + 1:
        V.fail(arg, f"expected {_MAP_SHAPES[ndim]} maps for ndim={ndim}, got shape {tuple(maps.shape)}")
    # float16 / bfloat16 maps are ranked and transformed in float32: ranks / N stored in 11 or 8 bits of
    # mantissa collapse for maps of more than a few thousand elements (EF off by up to 0.5 %).
    return maps.float() if maps.dtype in (torch.float16, torch.bfloat16) else maps


def rank_normalize(maps: torch.Tensor, *, ndim: int = 2) -> torch.Tensor:
    """Average ranks divided by N (the elements of one map) per map (ties averaged), values in (0, 1].
    (B, L) / (B, H, W) / (B, D, H, W) for ndim = 1 / 2 / 3 -> the same shape, in the maps' dtype (float32 for
    float16 / bfloat16 maps, whose mantissa cannot hold the ranks)."""
    return ops.rank_normalize(_check_maps(maps, ndim=ndim).detach())


def _check_pair(maps, b, arg: str = "b", ndim: int = 2) -> torch.Tensor:
    """b must be a second estimate of the same maps: same shape, floating, on the same device."""
    _check_maps(b, arg, ndim)
    if b.shape != maps.shape:
        V.fail(arg, f"shape {tuple(b.shape)} differs from the first maps' {tuple(maps.shape)}")
    if b.device != maps.device:
        V.fail(arg, f"is on {b.device}, the first maps on {maps.device}")
    return b.detach()


def _pair_dtype(a: torch.Tensor, b: torch.Tensor | None) -> torch.dtype:
    """float64 if every input is float64, else float32."""
    return torch.float64 if a.dtype == torch.float64 and (b is None or b.dtype == torch.float64) \
        else torch.float32


def _power(maps: torch.Tensor, arg: str = "maps") -> torch.Tensor | None:
    """The op's ring means of checked maps, or None where finite maps overflow their dtype's range (e.g. float32
    maps with values near 3e38: |FFT|² exceeds 3.4e38); NaN / Inf in the maps raise."""
    spec = ops.radial_power_spectrum(maps)
    if bool(torch.isfinite(spec).all()):
        return spec
    if not bool(torch.isfinite(maps).all()):
        V.fail(arg, "contains NaN or Inf values (the power spectrum is not finite)")
    return None


def radial_power_spectrum(maps: torch.Tensor, b: torch.Tensor | None = None, *, ndim: int = 2,
                          rank_normalize: bool = False) -> torch.Tensor:
    """Ring means S_k of |FFT2(m)|² over centred integer radii k = 0..K−1.  (B, H, W) -> (B, K), float64
    for float64 maps, else float32.

    ``ndim=1``: signals (B, L), S_k the mean power at frequencies ±k, K = L//2 + 1; ``ndim=3``: volumes
    (B, D, H, W), spherical shells k = floor(‖c‖₂) of the centred 3-D frequency c (docs/methods.md §7,
    "Signals and volumes").

    With ``b``, a second estimate of the same maps whose noise is independent of ``maps``' (e.g. the
    two halves of a sampled map, ``stats.halves``), the ring means of the cross spectrum
    C = Re(FFT2(maps)·conj(FFT2(b))) instead (docs/methods.md §11): its expectation is the power
    spectrum of the true mean map, without the plug-in's (noise power)/n bias.  A ring can be
    negative at small n; it is kept as it is.  Computed by the same fused op, in float64, through
    C = P((a + b)/2) − P((a − b)/2).  Ranks are not linear, so there is no cross spectrum of
    rank-normalised maps: ``rank_normalize=True`` with ``b`` raises (``expected_frequency(a, b)``
    gives the bias-reduced EF of the rank recipe).
    """
    maps = _check_maps(maps, ndim=ndim).detach()
    if b is not None:
        b = _check_pair(maps, b, ndim=ndim)
        if rank_normalize:
            V.fail("rank_normalize", "a cross spectrum of rank-normalised maps has no unbiased form (ranks "
                                     "are not linear); use expected_frequency(a, b, rank_normalize=True) "
                                     "for the bias-reduced EF, or rank_normalize=False")
        return cross_spectrum(maps, b).to(_pair_dtype(maps, b))
    if rank_normalize:
        maps = ops.rank_normalize(maps)   # raises on NaN; ranks of ±Inf are finite
    spec = _power(maps)
    if spec is None:
        V.fail("maps", f"the power spectrum of these finite {maps.dtype} maps (largest |value| "
                       f"{float(maps.abs().max()):.3g}) overflows {maps.dtype}: pass float64 maps (maps.double())")
    return spec


def cross_spectrum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Ring means of Re(FFTn(a)·conj(FFTn(b))), float64.  (B, ...) twice -> (B, K).  Checked inputs."""
    for m, arg in ((a, "maps"), (b, "b")):
        if not bool(torch.isfinite(m).all()):
            V.fail(arg, "contains NaN or Inf values (the cross spectrum is not finite)")
    a64, b64 = a.to(torch.float64), b.to(torch.float64)
    return ops.radial_power_spectrum((a64 + b64) * 0.5) - ops.radial_power_spectrum((a64 - b64) * 0.5)


def _ef_of_spectrum(spec: torch.Tensor, reduction: str, exclude_dc: bool) -> torch.Tensor:
    """EF = Σ_k ω_k S_k / Σ_k S_k, ω_k = k/(K−1), of ring means (B, K) -> (B,), float64."""
    spec = spec.to(torch.float64)
    K = spec.shape[1]
    if K < 2:
        V.fail("maps", "needs at least 2 frequency rings (maps with an axis of at least 2 elements)")
    omega = torch.arange(K, dtype=torch.float64, device=spec.device) / (K - 1)
    if exclude_dc:
        spec, omega = spec[:, 1:], omega[1:]
    total = spec.sum(dim=1)
    # A cross spectrum's total power can be ≤ 0 when the map is all noise; its EF is then undefined.
    tiny = torch.finfo(torch.float64).tiny
    ef = (spec * omega).sum(dim=1) / torch.where(total.abs() < tiny, torch.full_like(total, tiny), total)
    return ef / K if reduction == "authors" else ef


def expected_frequency(maps: torch.Tensor, b: torch.Tensor | None = None, *, ndim: int = 2,
                       rank_normalize: bool = True, reduction: str = "mean", exclude_dc: bool = False) -> torch.Tensor:
    """EF = Σ_k ω_k S_k / Σ_k S_k with ω_k = k/(K−1), per map.  (B, H, W) -> (B,), computed in float64,
    returned in the maps' precision (float64 for float64 maps, else float32).  ``ndim=1`` / ``ndim=3``:
    (B, L) signals / (B, D, H, W) volumes, with the shells of :func:`radial_power_spectrum`.

    ``reduction="authors"`` also divides by K, as the ICCV25 code does (its tables print EF×1e5).
    ``exclude_dc=True`` drops ring 0 before normalising (see the module note on rank normalisation).

    With ``b``, the two halves (a, b) of a sampled map (docs/methods.md §11; for an even sample count
    the map is (a + b)/2): ``rank_normalize=False`` gives the EF of the cross spectrum (free of the
    1/n noise bias of the plug-in EF); ``rank_normalize=True`` gives the *bias-reduced* EF of the rank
    recipe, the first-order jackknife 2·EF((a + b)/2) − (EF(a) + EF(b))/2 (ranks have no unbiased form).
    A cross-spectrum EF is undefined where the cross spectrum's total power is ≤ 0 (a map that is all
    noise); it is then returned as computed and can lie outside [0, 1].

    A constant map has all its power at DC: EF 0.  An all-zero map (no power at all) also gets EF 0, the limit of
    constant maps, not NaN (a dead explanation is as smooth as one can be; check for it separately if it matters).
    float16 / bfloat16 maps are ranked and transformed in float32; finite float32 maps whose power overflows
    float32 (values near 3e38) are transformed in float64 (EF does not depend on the maps' scale).
    """
    if reduction not in ("mean", "authors"):
        V.fail("reduction", f"expected 'mean' or 'authors', got {reduction!r}")
    maps = _check_maps(maps, ndim=ndim)
    if b is None:
        ranked = ops.rank_normalize(maps.detach()) if rank_normalize else maps.detach()
        spec = _power(ranked)
        if spec is None:                   # EF is scale-free: the float64 spectrum of huge float32 maps
            spec = ops.radial_power_spectrum(ranked.to(torch.float64))
        return _ef_of_spectrum(spec, reduction, exclude_dc).to(output_dtype(maps))
    b = _check_pair(maps, b, ndim=ndim)
    dtype = _pair_dtype(maps, b)
    if not rank_normalize:
        return _ef_of_spectrum(cross_spectrum(maps, b), reduction, exclude_dc).to(dtype)
    full = (maps.to(torch.float64) + b.to(torch.float64)) * 0.5

    def ef(m):
        return _ef_of_spectrum(radial_power_spectrum(m, ndim=ndim, rank_normalize=True), reduction, exclude_dc)

    return (2.0 * ef(full) - 0.5 * (ef(maps) + ef(b))).to(dtype)


def explanation_gap(reference_maps: torch.Tensor, method_maps: torch.Tensor, *,
                    reference_b: torch.Tensor | None = None, method_b: torch.Tensor | None = None,
                    ndim: int = 2, return_error: bool = False, **ef_options):
    """ΔEF = |EF(method) − EF(reference)| per image (reference: usually VanillaGrad).  -> (B,), float64 if
    all maps are float64, else float32.

    ``method_b`` / ``reference_b``: the second half of a sampled map (``method_maps`` is then its first
    half), so that its EF is the cross-spectrum (or, ranked, bias-reduced) EF of ``expected_frequency(a,
    b)``.  A deterministic map (VanillaGrad) needs none.  ``ndim`` as in :func:`expected_frequency`.
    ``return_error=True``: (ΔEF, its Monte Carlo standard error (B,) float64), sqrt(se_m² + se_ref²) with each
    map's half-split EF error |EF(a) − EF(b)|/2 (0 for a map given without a second half, taken as
    deterministic; docs/methods.md §11).
    """
    _check_maps(reference_maps, "reference_maps", ndim)
    _check_maps(method_maps, "method_maps", ndim)
    if reference_maps.shape != method_maps.shape:
        V.fail("method_maps", f"shape {tuple(method_maps.shape)} differs from reference_maps "
                              f"{tuple(reference_maps.shape)}")
    if method_b is not None:
        _check_pair(method_maps, method_b, "method_b", ndim)
    if reference_b is not None:
        _check_pair(reference_maps, reference_b, "reference_b", ndim)
    gap = expected_frequency(method_maps, method_b, ndim=ndim, **ef_options).double() \
        - expected_frequency(reference_maps, reference_b, ndim=ndim, **ef_options)
    dtypes = {m.dtype for m in (reference_maps, method_maps, reference_b, method_b) if m is not None}
    gap = gap.abs().to(torch.float64 if dtypes == {torch.float64} else torch.float32)
    if not return_error:
        return gap
    from .mc_derived import gap_mc_error, half_split_error

    def error(a, b):
        if b is None:
            return torch.zeros(a.shape[0], dtype=torch.float64, device=a.device)
        return half_split_error(*(expected_frequency(h, ndim=ndim, **ef_options) for h in (a, b)))

    return gap, gap_mc_error(error(method_maps, method_b), error(reference_maps, reference_b))


def exact_gap(model, x, *, surrogate="smoothgrad", sigma: float | None = None, n_samples: int = 64, target=None,
              output: str = "log_softmax", seed: int = 0, image_ids=None, batch_size=None) -> torch.Tensor:
    """G(f, f̃) = ||∇f(x) − ∇f̃(x)||² per image (ICCV25 eq. 2), where the surrogate f̃ is explicit.

    ``surrogate="smoothgrad"``: f̃ = f * N(0, σ²) (additive noise of std ``sigma``), whose gradient is
    SmoothGrad's mean map.  Two independent halves A, B of Monte Carlo samples (seeds ``seed`` and
    ``(seed + 1) mod 2^64``) give the unbiased estimate <∇f − SG_A, ∇f − SG_B> (no 1/n variance inflation).
    ``surrogate=<model>``: a model with the same inputs and classes, e.g. ``smooth_activations(model, β)``;
    the gap is then exact.  Both explain the target class of ``model``.  x (B, C, H, W) -> (B,).
    """
    x = V.check_inputs(x)
    exe = ExecutionOptions(batch_size=batch_size)

    def gradient_mean(m, sigma_, samp, target_):
        est = estimate(m, x, sigmas=sigma_, mixing="additive", powers=(1,), target=target_, output=output,
                       reduce_channels=False, sampling=samp, execution=exe, x_checked=True)
        return est.mean1[:, 0], est.targets

    grad_f, targets = gradient_mean(model, 0.0, SamplingOptions(n_samples=1, image_ids=image_ids), target)
    if isinstance(surrogate, str):
        if surrogate != "smoothgrad":
            V.fail("surrogate", f"expected 'smoothgrad' or a model, got {surrogate!r}")
        if sigma is None:
            V.fail("sigma", "the smoothgrad surrogate needs the noise std sigma")
        seed = V.check_seed(seed)
        halves = [gradient_mean(model, sigma, SamplingOptions(n_samples=n_samples, seed=(seed + k) % 2**64,
                                                              image_ids=image_ids), targets)[0] for k in (0, 1)]
        gap = ((grad_f - halves[0]) * (grad_f - halves[1])).flatten(1).sum(1)
    else:
        grad_s, _ = gradient_mean(surrogate, 0.0, SamplingOptions(n_samples=1, image_ids=image_ids), targets)
        gap = (grad_f - grad_s).pow(2).flatten(1).sum(1)
    return gap.to(output_dtype(x))
