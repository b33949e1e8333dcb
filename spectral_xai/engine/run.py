"""Executing an :class:`~.plan.EnginePlan`: rounds of rows, chunks of forward/backward passes, the fused
``perturb`` and ``accumulate_`` ops, adaptive stopping per slot (tol) or per image (target_error), and the
check that the model's outputs and gradients are finite (counted per slot on the device, read once per round).
Rows are ordered (image, σ, sample), so the statistics do not depend on the chunk size."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import _validation as V
from ..fastpath import check_fast, fast_scope
from ..model_calls import (auto_batch_size, check_logits, check_model_device, check_target_range, explained_output,
                           forward, model_dtype_and_format, model_scope, resolve_targets)
from ..ops import accumulate_, perturb
from ..mc_stats import combine_sigmas, mean_variance, relative_error
from .layout import NDInput, check_model_rank
from .plan import EnginePlan, plan_rows


@dataclass
class Estimate:
    """Running statistics of one call.

    mean1 / mean2: (B, S, C', *spatial) float64 means of g and g² (None if not requested), C' = 1
    when channels were reduced.  n_samples: (B, S) samples used.  targets: (B,) classes
    explained.  sigmas: (S,) float64.  With statistics (``stats=True``; sumsq_k also with ``target_error``):
    sumsq1 / sumsq2 (B, S, C', *spatial) Welford sums of squared deviations of the per-sample values;
    sumcube1 / sumcube2 (B, S, C', *spatial) sums of their cubed deviations (with ``stats``);
    group_mean1 / group_mean2 (B, S, G, C', *spatial) means over the G interleaved groups (sample i in group
    i mod G; G = 2: even / odd sample indices); group_counts (B, S, G).
    """

    mean1: torch.Tensor | None
    mean2: torch.Tensor | None
    n_samples: torch.Tensor
    targets: torch.Tensor
    sigmas: torch.Tensor
    sumsq1: torch.Tensor | None = None
    sumsq2: torch.Tensor | None = None
    sumcube1: torch.Tensor | None = None
    sumcube2: torch.Tensor | None = None
    group_mean1: torch.Tensor | None = None
    group_mean2: torch.Tensor | None = None
    group_counts: torch.Tensor | None = None


class _Accumulators:
    """The per-slot float64 state of the fused accumulate op, (P, C', H, W) maps and (P,) scalars, its
    optional statistics, and (P,) int64 counts of non-finite gradient elements and logit rows."""

    def __init__(self, plan: EnginePlan):
        P, (H, W), dev = plan.num_slots, plan.x.shape[-2:], plan.x.device
        f64 = dict(dtype=torch.float64, device=dev)
        empty = torch.empty(0, **f64)
        shape = (P, plan.acc_c, H, W)
        self.mean1 = torch.zeros(shape, **f64) if 1 in plan.powers else empty
        self.mean2 = torch.zeros(shape, **f64) if 2 in plan.powers else empty
        self.checkpoint = torch.zeros(shape, **f64) if plan.sampling.tol is not None else empty
        self.delta = torch.zeros(P, **f64)
        self.scale = torch.zeros(P, **f64)
        self.counts = torch.zeros(P, dtype=torch.int64, device=dev)
        self.nonfinite = torch.zeros(P, dtype=torch.int64, device=dev)
        self.bad_logits = torch.zeros(P, dtype=torch.int64, device=dev)
        var, st, G = plan.tracks_variance, plan.stats, plan.sampling.groups
        self.stats = dict(
            sumsq1=torch.zeros(shape, **f64) if var and 1 in plan.powers else None,
            sumsq2=torch.zeros(shape, **f64) if var and 2 in plan.powers else None,
            sumcube1=torch.zeros(shape, **f64) if st and 1 in plan.powers else None,
            sumcube2=torch.zeros(shape, **f64) if st and 2 in plan.powers else None,
            group_mean1=torch.zeros(P, G, *shape[1:], **f64) if st and 1 in plan.powers else None,
            group_mean2=torch.zeros(P, G, *shape[1:], **f64) if st and 2 in plan.powers else None,
            group_counts=torch.zeros(P, G, dtype=torch.int64, device=dev) if st else None)

    def add(self, g: torch.Tensor, slots: torch.Tensor, sample_index: torch.Tensor, check_every: int) -> None:
        accumulate_(g, slots, self.mean1, self.mean2, self.counts, self.checkpoint, self.delta, self.scale,
                    check_every, sample_index=sample_index, nonfinite=self.nonfinite, **self.stats)

    def count_bad_logits(self, logits: torch.Tensor, slots: torch.Tensor) -> None:
        """Adds, per slot, the rows of ``logits`` (N, K) with a NaN/Inf (no host sync)."""
        bad = (~torch.isfinite(logits.detach())).any(dim=1)
        self.bad_logits.index_add_(0, slots, bad.to(torch.int64))


def _input_gradient(model_call, xt: torch.Tensor, targets: torch.Tensor, output: str,
                    num_classes_checked: bool, on_logits) -> torch.Tensor:
    """d F(target) / d xt for a chunk of perturbed rows (xt requires grad); ``on_logits`` sees the checked
    logits (N, K).  -> g like xt."""
    with torch.enable_grad():
        logits = check_logits(forward(model_call, xt), xt.shape[0])
        on_logits(logits)
        if not num_classes_checked:
            check_target_range(targets, logits.shape[1])
        f = explained_output(logits, targets, output)
        if not f.requires_grad:
            V.fail("model", "its output is not differentiable with respect to x")
        (g,) = torch.autograd.grad(f.sum(), xt, allow_unused=True)
    if g is None:
        V.fail("model", "its output is not differentiable with respect to x")
    return g


class _Runner:
    """One call's state inside the model scope: the model in its dtype/format, targets, chunk size."""

    def __init__(self, model, plan: EnginePlan, model_call, fast):
        self.plan, self.model_call = plan, model_call
        x = plan.x
        dtype, fmt = model_dtype_and_format(model, x)
        fmt = torch.channels_last if fast is not None and fast.channels_last else fmt
        self.xm = x.detach().to(dtype=dtype).contiguous(memory_format=fmt)
        self.bm = plan.baseline.to(dtype=dtype) if plan.baseline is not None else None
        batch = plan.execution.batch_size
        self.batch_size = batch if batch is not None else auto_batch_size(model, self.xm,
                                                                          plan.execution.memory_budget)
        self.targets = resolve_targets(model, self.xm, plan.target, self.batch_size)
        self.sig_dev = plan.sigmas.to(x.device)
        self.acc = _Accumulators(plan)
        self.classes_checked = False

    def perturbed(self, chunk: torch.Tensor) -> torch.Tensor:
        p, s = self.plan, self.plan.sampling
        if p.lhs is not None:
            return p.lhs.perturb(self.xm, chunk, self.sig_dev, p.scales, p.mixing)
        return perturb(self.xm, chunk, self.sig_dev, p.scales, p.ids, self.bm, s.seed, p.mixing)

    def run_rows(self, rows: torch.Tensor) -> None:
        """Every row (N, 3) through the model in chunks, accumulated into its slot."""
        p = self.plan
        rows_dev = rows.to(p.x.device)
        for lo in range(0, rows.shape[0], self.batch_size):
            chunk = rows_dev[lo:lo + self.batch_size]
            xt = self.perturbed(chunk).requires_grad_(True)
            slots = chunk[:, 0] if p.sample_sigma is not None else chunk[:, 0] * p.sigmas.numel() + chunk[:, 1]
            g = _input_gradient(self.model_call, xt, self.targets[chunk[:, 0]], p.output, self.classes_checked,
                                lambda logits, slots=slots: self.acc.count_bad_logits(logits, slots))
            self.classes_checked = True
            self.acc.add(g, slots, chunk[:, 2], p.sampling.check_every)


def _round_rows(plan: EnginePlan, active: torch.Tensor, counts_host: torch.Tensor) -> torch.Tensor:
    """The rows (N, 3) of the next round of the active slots; advances ``counts_host``."""
    rows = plan_rows(active, counts_host, plan.per_round, plan.limits, plan.s_slot)
    if plan.sample_sigma is not None:
        rows[:, 1] = plan.sample_sigma[rows[:, 0], rows[:, 2]]
    counts_host[active] = torch.minimum(counts_host[active] + plan.per_round, plan.limits[active])
    if plan.sampling.sample_offset:
        rows[:, 2] += plan.sampling.sample_offset
    return rows


def _rel_errors(plan: EnginePlan, acc: _Accumulators) -> torch.Tensor:
    """(B,) relative Monte Carlo error ||se||_2 / ||m||_2 of each image's σ-weighted map (on the device)."""
    k = 2 if 2 in plan.powers else 1
    B, rest = plan.x.shape[0], (plan.s_slot, plan.acc_c, *plan.x.shape[-2:])
    mean = (acc.mean2 if k == 2 else acc.mean1).view(B, *rest)
    var = mean_variance(acc.stats[f"sumsq{k}"].view(B, *rest), acc.counts.view(B, plan.s_slot))
    return relative_error(combine_sigmas(mean, plan.error_weights), combine_sigmas(var, plan.error_weights, 2))


def _round_end(plan: EnginePlan, acc: _Accumulators, model, active: torch.Tensor,
               counts_host: torch.Tensor) -> torch.Tensor:
    """After a round: raise on non-finite outputs or gradients, then the slots still active.  One host sync
    (two with tol)."""
    bad = acc.nonfinite + acc.bad_logits
    te = plan.sampling.target_error
    host = torch.cat([bad.to(torch.float64), _rel_errors(plan, acc)] if te is not None else [bad.double()]).cpu()
    if bool((host[:plan.num_slots] > 0).any()):
        _raise_nonfinite(plan, model, host[:plan.num_slots])
    done = counts_host[active] >= plan.limits[active]
    if te is not None:
        B, S = plan.x.shape[0], plan.s_slot
        enough = counts_host.view(B, S).max(dim=1).values >= plan.sampling.min_samples
        stopped = (host[plan.num_slots:] <= te) & enough
        return active[~(done | stopped[active // S])]
    if plan.sampling.tol is None:
        return active[:0]
    tol = plan.sampling.tol
    converged = (acc.delta[active] <= tol * acc.scale[active]).cpu() & (acc.scale[active] > 0).cpu()
    return active[~(done | converged)]


def _raise_nonfinite(plan: EnginePlan, model, bad: torch.Tensor) -> None:
    """ValueError naming the model, the images (batch positions) and the σ whose outputs went NaN/Inf."""
    S = plan.s_slot
    per_sigma = []
    for j in range(S):
        images = (bad.view(-1, S)[:, j] > 0).nonzero().view(-1).tolist()
        if images:
            where = "sigma drawn per sample" if plan.sample_sigma is not None else f"sigma {plan.sigmas[j].item():g}"
            counts = [int(bad.view(-1, S)[b, j]) for b in images]
            per_sigma.append(f"image(s) {images} at {where} (non-finite gradient elements + logit rows: {counts})")
    V.fail("model", f"its output or gradient is NaN/Inf ({type(model).__name__}) for " + "; ".join(per_sigma)
           + "; check the model (an fp16 model may overflow: run it in float32)")


def run_plan(model, plan: EnginePlan) -> Estimate:
    """Execute ``plan`` with ``model``: rounds until every slot is done or (with tol / target_error) stopped."""
    check_model_device(model, plan.x)
    check_model_rank(model, plan.spatial)
    if plan.spatial != tuple(plan.x.shape[2:]):   # a signal or a volume in the 4-D layout
        model = NDInput(model, plan.spatial)
    fast = check_fast(plan.execution.fast, plan.x.device)
    with model_scope(model), fast_scope(model, fast, plan.x.device) as model_call:
        runner = _Runner(model, plan, model_call, fast)
        counts_host = torch.zeros(plan.num_slots, dtype=torch.int64)
        active = torch.arange(plan.num_slots, dtype=torch.int64)
        while active.numel() > 0:
            runner.run_rows(_round_rows(plan, active, counts_host))
            active = _round_end(plan, runner.acc, model, active, counts_host)
    return _estimate_of(plan, runner)


def _estimate_of(plan: EnginePlan, runner: _Runner) -> Estimate:
    """The accumulators viewed per (image, σ slot), in the caller's map axes."""
    acc, B, sp = runner.acc, plan.x.shape[0], plan.spatial
    shape = (B, plan.s_slot, plan.acc_c, *sp)

    def per_slot(v):
        """(P, ..., H', W) maps -> (B, S, ..., *spatial); (P, G) group counts -> (B, S, G)."""
        if v is None:
            return None
        return v.view(B, plan.s_slot, *((*v.shape[1:-2], *sp) if v.dim() >= 4 else v.shape[1:]))

    st = {k: per_slot(v) for k, v in acc.stats.items()}
    return Estimate(mean1=acc.mean1.view(shape) if 1 in plan.powers else None,
                    mean2=acc.mean2.view(shape) if 2 in plan.powers else None,
                    n_samples=acc.counts.view(B, plan.s_slot), targets=runner.targets, sigmas=plan.sigmas, **st)
