"""Executing an :class:`~.plan.EnginePlan`: rounds of rows, chunks of forward/backward passes, the fused
``perturb`` and ``accumulate_`` ops, adaptive stopping per slot.  Rows are ordered (image, σ, sample), so the
statistics do not depend on the chunk size."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import _validation as V
from ..fastpath import check_fast, fast_scope
from ..models import (auto_batch_size, check_logits, check_model_device, check_target_range, explained_output,
                      model_dtype_and_format, model_scope, resolve_targets)
from ..ops import accumulate_, perturb
from .plan import EnginePlan, plan_rows


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


class _Accumulators:
    """The per-slot float64 state of the fused accumulate op, (P, C', H, W) maps and (P,) scalars."""

    def __init__(self, plan: EnginePlan):
        P, (H, W), dev = plan.num_slots, plan.x.shape[-2:], plan.x.device
        f64 = dict(dtype=torch.float64, device=dev)
        empty = torch.empty(0, **f64)
        shape = (P, plan.acc_c, H, W)
        self.mean1 = torch.zeros(shape, **f64) if 1 in plan.powers else empty
        self.mean2 = torch.zeros(shape, **f64) if 2 in plan.powers else empty
        self.checkpoint = torch.zeros(shape, **f64) if plan.adaptive else empty
        self.delta = torch.zeros(P, **f64)
        self.scale = torch.zeros(P, **f64)
        self.counts = torch.zeros(P, dtype=torch.int64, device=dev)

    def add(self, g: torch.Tensor, slots: torch.Tensor, check_every: int) -> None:
        accumulate_(g, slots, self.mean1, self.mean2, self.counts, self.checkpoint, self.delta, self.scale,
                    check_every)


def _input_gradient(model_call, xt: torch.Tensor, targets: torch.Tensor, output: str,
                    num_classes_checked: bool) -> torch.Tensor:
    """d F(target) / d xt for a chunk of perturbed rows (xt requires grad).  -> g like xt."""
    with torch.enable_grad():
        logits = check_logits(model_call(xt), xt.shape[0])
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
            g = _input_gradient(self.model_call, xt, self.targets[chunk[:, 0]], p.output, self.classes_checked)
            self.classes_checked = True
            slots = chunk[:, 0] if p.sample_sigma is not None else chunk[:, 0] * p.sigmas.numel() + chunk[:, 1]
            self.acc.add(g, slots, p.sampling.check_every)


def _round_rows(plan: EnginePlan, active: torch.Tensor, counts_host: torch.Tensor) -> torch.Tensor:
    """The rows (N, 3) of the next round of the active slots; advances ``counts_host``."""
    rows = plan_rows(active, counts_host, plan.per_round, plan.limits, plan.s_slot)
    if plan.sample_sigma is not None:
        rows[:, 1] = plan.sample_sigma[rows[:, 0], rows[:, 2]]
    counts_host[active] = torch.minimum(counts_host[active] + plan.per_round, plan.limits[active])
    if plan.sampling.sample_offset:
        rows[:, 2] += plan.sampling.sample_offset
    return rows


def run_plan(model, plan: EnginePlan) -> Estimate:
    """Execute ``plan`` with ``model``: rounds until every slot is done or (with tol) converged."""
    check_model_device(model, plan.x)
    fast = check_fast(plan.execution.fast, plan.x.device)
    with model_scope(model), fast_scope(model, fast, plan.x.device) as model_call:
        runner = _Runner(model, plan, model_call, fast)
        acc, tol = runner.acc, plan.sampling.tol
        counts_host = torch.zeros(plan.num_slots, dtype=torch.int64)
        active = torch.arange(plan.num_slots, dtype=torch.int64)
        while active.numel() > 0:
            runner.run_rows(_round_rows(plan, active, counts_host))
            if tol is None:
                break
            done = counts_host[active] >= plan.limits[active]
            converged = (acc.delta[active] <= tol * acc.scale[active]).cpu() & (acc.scale[active] > 0).cpu()
            active = active[~(done | converged)]
    B, (H, W) = plan.x.shape[0], plan.x.shape[-2:]
    shape = (B, plan.s_slot, plan.acc_c, H, W)
    return Estimate(mean1=acc.mean1.view(shape) if 1 in plan.powers else None,
                    mean2=acc.mean2.view(shape) if 2 in plan.powers else None,
                    n_samples=acc.counts.view(B, plan.s_slot), targets=runner.targets, sigmas=plan.sigmas)
