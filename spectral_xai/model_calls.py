"""Calling the user's model: scoped eval mode, its dtype and memory format, targets, the explained output,
checked logits, chunk sizes and one batched forward loop.  Used by the sampling engine and by every
forward-only path (deletion/insertion, RISE, occlusion, the noise cutoff, the audit)."""
from __future__ import annotations

import contextlib
import numbers
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from . import _validation as V

DEFAULT_CPU_BUDGET = 2 * 1024**3
MAX_AUTO_ROWS = 256


_SCOPE_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()   # nn.Module -> its RLock
_SCOPE_LOCKS_GUARD = threading.Lock()


def _scope_lock(model: nn.Module) -> threading.RLock:
    with _SCOPE_LOCKS_GUARD:
        lock = _SCOPE_LOCKS.get(model)
        if lock is None:
            lock = _SCOPE_LOCKS[model] = threading.RLock()
        return lock


@contextlib.contextmanager
def model_scope(model):
    """Evaluate ``model`` in eval mode with parameters frozen; restore both on exit.

    The scope holds a re-entrant lock of the model for its whole duration: calls from several threads on one
    model (a web service, a thread pool) run one after the other instead of saving and restoring each other's
    ``training`` / ``requires_grad`` flags half-way (which left parameters frozen and train-mode BatchNorm
    updating its running statistics).  Calls on different models still run in parallel."""
    if not isinstance(model, nn.Module):
        yield
        return
    with _scope_lock(model):
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


def input_channels(model) -> int | None:
    """The channels the model's input layer takes: ``in_channels`` of its first convolution when that comes before
    any Linear layer; None otherwise (no convolution first, or not an nn.Module)."""
    if isinstance(model, nn.Module):
        first = next((m for m in model.modules() if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))), None)
        if isinstance(first, nn.modules.conv._ConvNd):
            return first.in_channels
    return None


def check_model_device(model, x: torch.Tensor) -> None:
    """``model`` is an nn.Module on x's device, or a callable."""
    if isinstance(model, nn.Module):
        for p in model.parameters():
            if p.device != x.device:
                V.fail("x", f"is on {x.device} but the model's parameters are on {p.device}")
            return
    elif not callable(model):
        V.fail("model", f"expected an nn.Module or a callable, got {type(model).__name__}", TypeError)


def forward(model, x: torch.Tensor):
    """``model(x)``; a RuntimeError of a model whose first convolution takes other channels than x has becomes a
    ValueError naming x and both channel counts (instead of the convolution's shape message)."""
    try:
        return model(x)
    except RuntimeError:
        expected = input_channels(model)
        if expected is not None and x.dim() >= 2 and x.shape[1] != expected:
            V.fail("x", f"has {x.shape[1]} channels (shape {tuple(x.shape)}) but the model's first convolution "
                        f"takes {expected}: convert the input (e.g. RGB for an RGB model) or drop channels")
        raise


def explained_output(logits: torch.Tensor, targets: torch.Tensor, output: str) -> torch.Tensor:
    """F per row: log_softmax (default), logit or prob of the target class.  (N, K) -> (N,)."""
    if output == "log_softmax":
        logits = torch.log_softmax(logits, dim=1)
    elif output == "prob":
        logits = torch.softmax(logits, dim=1)
    return logits.gather(1, targets.view(-1, 1)).squeeze(1)


def check_logits(logits, rows: int) -> torch.Tensor:
    """The model's output for ``rows`` inputs as a (rows, K) tensor: a tensor, an object with a ``.logits``
    tensor (Hugging Face's ModelOutput) or a dict with a ``"logits"`` tensor."""
    if not isinstance(logits, torch.Tensor):
        inner = logits.get("logits") if isinstance(logits, dict) else getattr(logits, "logits", None)
        if not isinstance(inner, torch.Tensor):
            V.fail("model", f"must return a tensor of logits (or an object / dict with a 'logits' tensor), got "
                            f"{type(logits).__name__}; wrap it, e.g. `lambda x: model(x)[0]`", TypeError)
        logits = inner
    if logits.dim() != 2 or logits.shape[0] != rows:
        V.fail("model", f"output must have shape (B, K) = ({rows}, K), got {tuple(logits.shape)}")
    return logits


def batched_logits(model, n_rows: int, batch_size: int, inputs_of: Callable[[slice], torch.Tensor],
                   targets: torch.Tensor | None = None) -> Iterator[tuple[slice, torch.Tensor]]:
    """The batched forward loop without gradients: for each chunk ``s`` of range(n_rows) of at most
    ``batch_size`` rows, yields (s, checked logits (len(s), K)) of ``model(inputs_of(s))``.  With
    ``targets``, the first chunk's K checks that every target class exists.  Rows whose logits are NaN/Inf are
    collected on the device and raise once the loop is done (one host read per call, not per chunk)."""
    finite = []
    with torch.no_grad():
        for lo in range(0, n_rows, batch_size):
            s = slice(lo, min(lo + batch_size, n_rows))
            logits = check_logits(forward(model, inputs_of(s)), s.stop - s.start)
            finite.append(torch.isfinite(logits).all(dim=1))
            if targets is not None and lo == 0:
                check_target_range(targets, logits.shape[1])
            yield s, logits
    if finite:
        ok = torch.cat(finite)
        if not bool(ok.all()):
            bad = torch.nonzero(~ok).view(-1).cpu().tolist()[:8]
            V.fail("model", f"its output is NaN/Inf ({type(model).__name__}) for input row(s) {bad} of a forward "
                            "pass; a broken model, or a low-precision model that overflows")


def clean_logits(model, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Logits (B, K) of the clean inputs, in chunks of ``batch_size``, without gradients."""
    return torch.cat([lg for _, lg in batched_logits(model, x.shape[0], batch_size, lambda s: x[s])])


def resolve_targets(model, x: torch.Tensor, target, batch_size: int) -> torch.Tensor:
    """Targets (B,) int64: the clean arg-max when ``target`` is None, else int / sequence / tensor."""
    B = x.shape[0]
    if target is None:
        return clean_logits(model, x, batch_size).argmax(dim=1)
    if isinstance(target, (bool, np.bool_, str, bytes, float)) or not isinstance(
            target, (numbers.Integral, torch.Tensor, np.ndarray, Sequence)):
        V.fail("target", f"expected an int, a sequence of ints or an integer tensor, got {type(target).__name__}",
               TypeError)
    if isinstance(target, numbers.Integral):                    # int, numpy.int64, ...
        target = int(target)
        t = torch.full((B,), target, dtype=torch.int64, device=x.device)
    else:
        try:
            t = torch.as_tensor(target)
        except (TypeError, ValueError, RuntimeError):
            V.fail("target", f"expected integer classes, got {target!r}", TypeError)
        if t.is_floating_point() or t.dtype == torch.bool or t.is_complex():
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


def _activation_bytes(model, x1: torch.Tensor) -> int:
    """Bytes of every leaf module's output for one input row (forward hooks)."""
    total = [0]

    def hook(_module, _inputs, out):
        if isinstance(out, torch.Tensor):
            total[0] += out.numel() * out.element_size()

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.no_grad():
            forward(model, x1)
    finally:
        for h in handles:
            h.remove()
    return total[0]


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
        per_row += 3 * _activation_bytes(model, x[:1])
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
