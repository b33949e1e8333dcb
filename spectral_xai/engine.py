"""The sampling engine behind every gradient method (SPEC §1, §5).

``estimate`` computes, for each image b and noise scale sigma_j, Monte Carlo running means of
g = d F / d x~ (k=1) and/or g² (k=2) with x~ drawn by the fused ``perturb`` op, where F is the
explained output of the target class.  All sigmas of a call go through the same chunks of
forward/backward passes; rows are ordered (image, sigma, sample), so the statistics do not
depend on the chunk size.  Noise is keyed by (seed, image id, sigma index, sample index).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from . import _validation as V
from .fastpath import check_fast, fast_scope
from .ops import accumulate_, perturb
from .sampling import LatinHypercubeNoise

DEFAULT_CPU_BUDGET = 2 * 1024**3
SAMPLINGS = ("iid", "lhs")
MAX_AUTO_ROWS = 256


@dataclass
class Estimate:
    """Running statistics of one call.

    mean1 / mean2: (B, S, C', H, W) float64 means of g and g² (None if not requested), C' = 1
    when channels were reduced.  n_samples: (B, S) samples used.  targets: (B,) classes
    explained.  sigmas: (S,) float64.
    """

    mean1: torch.Tensor | None
    mean2: torch.Tensor | None
    n_samples: torch.Tensor
    targets: torch.Tensor
    sigmas: torch.Tensor


@contextlib.contextmanager
def model_scope(model):
    """Evaluate ``model`` in eval mode with parameters frozen; restore both on exit."""
    if not isinstance(model, nn.Module):
        yield
        return
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for m, mode in modes:
            m.training = mode
        for p, flag in flags:
            p.requires_grad_(flag)


def model_dtype_and_format(model, x: torch.Tensor) -> tuple[torch.dtype, torch.memory_format]:
    """The dtype and memory format the model expects: those of its first floating 4-D weight."""
    dtype, fmt = x.dtype, torch.contiguous_format
    if isinstance(model, nn.Module):
        for p in model.parameters():
            if p.is_floating_point():
                dtype = p.dtype
                break
        for p in model.parameters():
            if p.dim() == 4:
                if p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous():
                    fmt = torch.channels_last
                break
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        fmt = torch.channels_last
    return dtype, fmt


def check_model_device(model, x: torch.Tensor) -> None:
    if isinstance(model, nn.Module):
        for p in model.parameters():
            if p.device != x.device:
                V.fail("x", f"is on {x.device} but the model's parameters are on {p.device}")
            return
    elif not callable(model):
        V.fail("model", f"expected an nn.Module or a callable, got {type(model).__name__}", TypeError)


def explained_output(logits: torch.Tensor, targets: torch.Tensor, output: str) -> torch.Tensor:
    """F per row: log_softmax (default), logit or prob of the target class.  (N, K) -> (N,)."""
    if output == "log_softmax":
        logits = torch.log_softmax(logits, dim=1)
    elif output == "prob":
        logits = torch.softmax(logits, dim=1)
    return logits.gather(1, targets.view(-1, 1)).squeeze(1)


def check_logits(logits, rows: int) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor):
        V.fail("model", f"must return a tensor of logits, got {type(logits).__name__}", TypeError)
    if logits.dim() != 2 or logits.shape[0] != rows:
        V.fail("model", f"output must have shape (B, K) = ({rows}, K), got {tuple(logits.shape)}")
    return logits


def resolve_targets(model, x: torch.Tensor, target, batch_size: int) -> torch.Tensor:
    """Targets (B,) int64: the clean arg-max when ``target`` is None, else int / sequence / tensor."""
    B = x.shape[0]
    if target is None:
        with torch.no_grad():
            outs = [check_logits(model(x[i:i + batch_size]), min(batch_size, B - i)) for i in range(0, B, batch_size)]
        logits = torch.cat(outs)
        return logits.argmax(dim=1)
    if isinstance(target, bool):
        V.fail("target", "expected an int, a sequence of ints or an integer tensor, got bool", TypeError)
    if isinstance(target, int):
        t = torch.full((B,), target, dtype=torch.int64, device=x.device)
    else:
        t = torch.as_tensor(target)
        if t.is_floating_point() or t.dtype == torch.bool:
            V.fail("target", f"expected integer classes, got {t.dtype}", TypeError)
        t = t.to(device=x.device, dtype=torch.int64).reshape(-1)
        if t.numel() == 1:
            t = t.expand(B).clone()
        if t.numel() != B:
            V.fail("target", f"expected 1 or {B} classes, got {t.numel()}")
    if bool((t < 0).any()):
        V.fail("target", f"classes must be >= 0, got {t.min().item()}")
    return t


def check_target_range(targets: torch.Tensor, num_classes: int) -> None:
    if bool((targets >= num_classes).any()):
        V.fail("target", f"class {targets.max().item()} is out of range for a model with {num_classes} outputs")


def auto_batch_size(model, x: torch.Tensor, budget: int | None) -> int:
    """Rows per chunk from a memory budget: activation bytes of one row (forward hooks) x 3."""
    if budget is None:
        if x.is_cuda:
            free, _ = torch.cuda.mem_get_info(x.device)
            budget = free // 2
        else:
            budget = DEFAULT_CPU_BUDGET
    per_row = x[0].numel() * x.element_size() * 4
    if isinstance(model, nn.Module) and not isinstance(model, torch.jit.ScriptModule):   # no hooks on scripts
        total = [0]

        def hook(_module, _inputs, out):
            if isinstance(out, torch.Tensor):
                total[0] += out.numel() * out.element_size()

        leaves = [m for m in model.modules() if not list(m.children())]
        handles = [m.register_forward_hook(hook) for m in leaves]
        try:
            with torch.no_grad():
                model(x[:1])
        finally:
            for h in handles:
                h.remove()
        per_row += 3 * total[0]
    else:
        per_row *= 64
    return int(max(1, min(MAX_AUTO_ROWS, budget // max(per_row, 1))))


def prepare_inference(model, x: torch.Tensor, batch_size: int | None) -> tuple[torch.Tensor, int]:
    """For forward passes without gradients (inside :func:`model_scope`): x in the model's dtype and
    memory format, and the rows per chunk (``batch_size``, or 3x the automatic size: no backward)."""
    dtype, fmt = model_dtype_and_format(model, x)
    xm = x.detach().to(dtype=dtype).contiguous(memory_format=fmt)
    if batch_size is None:
        return xm, 3 * auto_batch_size(model, xm, None)
    return xm, V.check_positive_int(batch_size, "batch_size")


def plan_rows(active: torch.Tensor, counts: torch.Tensor, per_round: int, limit, S: int) -> torch.Tensor:
    """Rows (N, 3) int64 = (image slot, sigma index, sample index) for one round of the active slots.

    active (A,), counts (P,) and limit (the samples cap, an int or a (P,) tensor) are CPU int64."""
    start = counts[active]
    cap = limit[active] if isinstance(limit, torch.Tensor) else limit
    lengths = torch.minimum(start + per_round, torch.as_tensor(cap)) - start
    # In numpy: torch.repeat_interleave with tensor repeats (like searchsorted) opens an intra-op parallel
    # region on CPU even for a few elements, which costs milliseconds per call on a busy machine.
    lengths = lengths.numpy()
    slot = np.repeat(active.numpy(), lengths)
    first = np.repeat(start.numpy() - np.cumsum(lengths) + lengths, lengths)
    sample = np.arange(slot.size, dtype=np.int64) + first
    return torch.from_numpy(np.stack([slot // S, slot % S, sample], axis=1))


def estimate(model, x: torch.Tensor, *, sigmas, mixing: str, n_samples: int, powers=(2,), target=None,
             output: str = "log_softmax", noise_scale=1.0, baseline: torch.Tensor | None = None, seed: int = 0,
             image_ids=None, batch_size: int | None = None, reduce_channels: bool = True,
             tol: float | None = None, max_samples: int | None = None, check_every: int = 8,
             memory_budget: int | None = None, sample_sigma: torch.Tensor | None = None, sampling: str = "iid",
             slot_samples: torch.Tensor | None = None, sample_offset: int = 0, fast=None) -> Estimate:
    """Monte Carlo means of g^k for every image and sigma (see the module docstring).

    x (B, C, H, W); sigmas: number or (S,); powers: a subset of {1, 2}.  Without ``tol`` every
    (image, sigma) gets ``n_samples`` samples.  With ``tol`` samples come in rounds of
    ``check_every`` until ``max|m_n - m_{n-check_every}| <= tol * max|m_n|`` (on the k=2 mean if
    requested, else k=1) or ``max_samples`` (default ``n_samples``) is reached.

    ``sample_sigma`` (B, n_samples) int64, optional: the sigma index of every sample.  Then the
    samples of an image are pooled into one statistic (S' = 1 in the result), e.g. to estimate a
    prior-weighted mean over sigma with sigma drawn per sample (no adaptive stopping then).

    ``fast``: None or a :class:`~spectral_xai.fastpath.FastPath` (autocast dtype, channels_last,
    torch.compile) for the model passes; noise, targets and accumulation are unchanged.
    ``sampling``: ``"iid"`` (default; noise of the fused ``perturb`` op) or ``"lhs"`` (Latin hypercube noise
    over the samples of each (image, sigma), see :mod:`spectral_xai.sampling`; every sample is still exactly
    N(0, I); not with ``tol`` or ``sample_sigma``).  ``slot_samples`` (B, S) int64 >= 0, optional: the samples
    of every (image, sigma) instead of ``n_samples`` (noiseless slots take at most one).  ``sample_offset``:
    the sample index of the first sample (the noise of sample i is keyed by offset + i).
    """
    x = V.check_images(x)
    check_model_device(model, x)
    V.check_output(output)
    sig = V.check_sigmas(sigmas, mixing, torch.device("cpu"))
    n_samples = V.check_positive_int(n_samples, "n_samples")
    V.check_positive_int(check_every, "check_every")
    batch_size = V.check_positive_int(batch_size, "batch_size", allow_none=True)
    max_samples = V.check_positive_int(max_samples, "max_samples", allow_none=True)
    seed = V.check_seed(seed)
    fast = check_fast(fast, x.device)
    if sampling not in SAMPLINGS:
        V.fail("sampling", f"expected one of {SAMPLINGS}, got {sampling!r}")
    if isinstance(sample_offset, bool) or not isinstance(sample_offset, int) or sample_offset < 0:
        V.fail("sample_offset", f"expected an int >= 0, got {sample_offset!r}")
    if tol is not None and not (isinstance(tol, (int, float)) and tol >= 0):
        V.fail("tol", f"expected a number >= 0 or None, got {tol!r}")
    powers = tuple(sorted(set(powers)))
    if not powers or any(k not in (1, 2) for k in powers):
        V.fail("powers", f"expected a subset of (1, 2), got {powers}")
    B, C, H, W = x.shape
    S = sig.numel()
    dev = x.device
    ids = V.check_image_ids(image_ids, B, dev)
    scales = V.check_noise_scale(noise_scale, B, dev)
    if baseline is not None:
        if not isinstance(baseline, torch.Tensor):
            V.fail("baseline", f"expected a tensor, got {type(baseline).__name__}", TypeError)
        if baseline.device != dev:
            V.fail("baseline", f"is on {baseline.device} but x is on {dev}")
        try:
            baseline = baseline.to(x.dtype).expand(B, C, H, W)
        except RuntimeError:
            V.fail("baseline", f"shape {tuple(baseline.shape)} does not broadcast to {tuple(x.shape)}")
        if not bool(torch.isfinite(baseline).all()):
            V.fail("baseline", "contains NaN or Inf values")
        if mixing != "damping":
            V.fail("baseline", "is only used by damping mixing")

    if sample_sigma is not None:
        if tol is not None:
            V.fail("tol", "adaptive stopping is not available when the sigma is drawn per sample")
        if max_samples is not None and max_samples != n_samples:
            V.fail("max_samples", "must be None (or n_samples) when the sigma is drawn per sample")
        sample_sigma = torch.as_tensor(sample_sigma, dtype=torch.int64).cpu()
        if sample_sigma.shape != (B, n_samples):
            V.fail("sample_sigma", f"expected shape ({B}, {n_samples}), got {tuple(sample_sigma.shape)}")
        if bool((sample_sigma < 0).any()) or bool((sample_sigma >= S).any()):
            V.fail("sample_sigma", f"indices must lie in [0, {S})")
    if sampling == "lhs" and tol is not None:
        V.fail("sampling", "'lhs' fixes the samples of every (image, sigma) in advance: no adaptive stopping (tol)")
    if sampling == "lhs" and sample_sigma is not None:
        V.fail("sampling", "'lhs' is not available when the sigma is drawn per sample")
    if slot_samples is not None:
        if tol is not None or sample_sigma is not None:
            V.fail("slot_samples", "cannot be combined with tol or sample_sigma")
        if not isinstance(slot_samples, torch.Tensor) or slot_samples.is_floating_point():
            V.fail("slot_samples", "expected an integer tensor of shape (B, S)", TypeError)
        slot_samples = slot_samples.to(device="cpu", dtype=torch.int64)
        if slot_samples.shape != (B, S):
            V.fail("slot_samples", f"expected shape ({B}, {S}), got {tuple(slot_samples.shape)}")
        if bool((slot_samples < 0).any()):
            V.fail("slot_samples", "counts must be >= 0")
    limit = n_samples if max_samples is None else max_samples
    top = int(slot_samples.max()) if slot_samples is not None and slot_samples.numel() else limit
    if sample_offset + top > 2**32:
        V.fail("sample_offset", f"offset + samples must stay <= 2^32, got {sample_offset} + {top}")
    acc_c = 1 if reduce_channels else C
    S_slot = 1 if sample_sigma is not None else S
    P = B * S_slot
    # Slots without noise (damping, or sigma * noise_scale == 0) see the same input in every sample:
    # one sample gives their mean exactly, so they are not sampled again.
    limits = torch.full((P,), limit, dtype=torch.int64) if slot_samples is None else slot_samples.reshape(-1).clone()
    if sample_sigma is None:
        if mixing == "damping":
            limits.clamp_(max=1)
        else:
            noiseless = (sig.view(1, S) * scales.cpu().view(B, 1)) == 0
            limits[noiseless.reshape(-1)] = limits[noiseless.reshape(-1)].clamp(max=1)
    per_round = check_every if tol is not None else max(int(limits.max()), 1)
    lhs = (LatinHypercubeNoise(seed, ids, limits, S_slot, sample_offset)
           if sampling == "lhs" and mixing != "damping" else None)

    with model_scope(model), fast_scope(model, fast, dev) as model_call:
        dtype, fmt = model_dtype_and_format(model, x)
        fmt = torch.channels_last if fast is not None and fast.channels_last else fmt
        xm = x.detach().to(dtype=dtype).contiguous(memory_format=fmt)
        bm = baseline.to(dtype=dtype) if baseline is not None else None
        if batch_size is None:
            batch_size = auto_batch_size(model, xm, memory_budget)
        targets = resolve_targets(model, xm, target, batch_size)
        f64 = dict(dtype=torch.float64, device=dev)
        empty = torch.empty(0, **f64)
        mean1 = torch.zeros(P, acc_c, H, W, **f64) if 1 in powers else empty
        mean2 = torch.zeros(P, acc_c, H, W, **f64) if 2 in powers else empty
        checkpoint = torch.zeros(P, acc_c, H, W, **f64) if tol is not None else empty
        delta = torch.zeros(P, **f64)
        scale = torch.zeros(P, **f64)
        counts = torch.zeros(P, dtype=torch.int64, device=dev)
        sig_dev = sig.to(dev)
        counts_host = torch.zeros(P, dtype=torch.int64)
        active = torch.arange(P, dtype=torch.int64)
        num_classes_checked = False
        while active.numel() > 0:
            rows = plan_rows(active, counts_host, per_round, limits, S_slot)
            if sample_sigma is not None:
                rows[:, 1] = sample_sigma[rows[:, 0], rows[:, 2]]
            counts_host[active] = torch.minimum(counts_host[active] + per_round, limits[active])
            if sample_offset:
                rows[:, 2] += sample_offset
            rows_dev = rows.to(dev)
            for lo in range(0, rows.shape[0], batch_size):
                chunk = rows_dev[lo:lo + batch_size]
                if lhs is not None:
                    xt = lhs.perturb(xm, chunk, sig_dev, scales, mixing)
                else:
                    xt = perturb(xm, chunk, sig_dev, scales, ids, bm, seed, mixing)
                xt.requires_grad_(True)
                with torch.enable_grad():
                    logits = check_logits(model_call(xt), chunk.shape[0])
                    if not num_classes_checked:
                        check_target_range(targets, logits.shape[1])
                        num_classes_checked = True
                    f = explained_output(logits, targets[chunk[:, 0]], output)
                    if not f.requires_grad:
                        V.fail("model", "its output is not differentiable with respect to x")
                    (g,) = torch.autograd.grad(f.sum(), xt, allow_unused=True)
                if g is None:
                    V.fail("model", "its output is not differentiable with respect to x")
                slots = chunk[:, 0] if sample_sigma is not None else chunk[:, 0] * S + chunk[:, 1]
                accumulate_(g, slots, mean1, mean2, counts, checkpoint, delta, scale, check_every)
            if tol is None:
                break
            done = counts_host[active] >= limits[active]
            converged = (delta[active] <= tol * scale[active]).cpu() & (scale[active] > 0).cpu()
            active = active[~(done | converged)]

    shape = (B, S_slot, acc_c, H, W)
    return Estimate(
        mean1=mean1.view(shape) if 1 in powers else None,
        mean2=mean2.view(shape) if 2 in powers else None,
        n_samples=counts.view(B, S_slot),
        targets=targets,
        sigmas=sig,
    )
