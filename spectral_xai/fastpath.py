"""The fast path: autocast, channels_last and ``torch.compile`` for the model passes of the engine.

``FastPath(dtype=torch.bfloat16, channels_last=True, compile=False)`` is accepted by every sampling
function as ``fast=``.  What changes, and what does not:

- ``dtype`` (``torch.bfloat16`` / ``torch.float16`` / None): the model's forward (and so its backward)
  runs under ``torch.autocast(device_type, dtype)``.  The perturbed batch is still drawn by the fused
  op in the model's own dtype (the noise is identical to the fp32 path; autocast casts it at the first
  eligible layer), the logits are cast to float32 before the explained output, the input gradient comes
  back in the input's dtype and is accumulated in float64 as always.  ``grad_scale`` multiplies the
  explained output before the backward and divides the gradient after it (against float16 underflow;
  a power of two, so exact away from float16's subnormals); with float16 the input gradient is checked
  for overflow (one host synchronisation per chunk).  Targets (clean arg-max) are always taken in full
  precision.
- ``channels_last``: the model's 4-D parameters and buffers are viewed in channels_last for the call
  (scoped and restored, like eval mode; the copies live in buffers kept per parameter and refreshed on
  every call, so that addresses stay fixed across calls for CUDA graphs) and the batch is written in
  channels_last.
- ``compile``: ``True`` / ``"default"``, ``"reduce-overhead"`` (CUDA graphs on a GPU),
  ``"max-autotune"``, ``"max-autotune-no-cudagraphs"`` (inductor modes) or ``"cudagraphs"`` (CUDA graphs
  without inductor, GPU only): the model's forward (with its autocast) is compiled with
  ``dynamic=False``; its backward is compiled by AOTAutograd.  The last chunk of a round is padded to
  the chunk size (copies of its last row, detached) so that one shape is compiled per call pattern.
  The compiled callable is one module-level object per mode: torch's own cache keeps one graph per
  (model, shape, dtype, format), so repeated calls do not recompile, up to torch's recompile limit
  (``torch._dynamo.config.recompile_limit``, 8 graphs by default; beyond it torch runs eagerly).
  The user's model is not modified.

Rows of a batch must be independent (eval mode), which the engine already assumes.
"""
from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.weak import WeakIdKeyDictionary

from . import _validation as V

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs", "cudagraphs")
AUTOCAST_DTYPES = (torch.bfloat16, torch.float16)


@dataclass(frozen=True)
class FastPath:
    """Options of the fast path (see the module docstring).

    dtype: None, torch.bfloat16 or torch.float16 (autocast); channels_last: bool; compile: False, True
    or one of :data:`COMPILE_MODES`; grad_scale: positive float (power of two) applied around the
    backward (None = 1 for bfloat16 / no autocast, 1024 for float16)."""

    dtype: torch.dtype | None = None
    channels_last: bool = False
    compile: bool | str = False
    grad_scale: float | None = None

    @property
    def compile_mode(self) -> str | None:
        if self.compile is False:
            return None
        return "default" if self.compile is True else self.compile

    @property
    def scale(self) -> float:
        if self.grad_scale is not None:
            return float(self.grad_scale)
        return 1024.0 if self.dtype == torch.float16 else 1.0

    @property
    def active(self) -> bool:
        return self.dtype is not None or self.channels_last or self.compile_mode is not None


def check_fast(fast, device: torch.device) -> FastPath | None:
    """None, a :class:`FastPath` or a dict of its fields -> a validated FastPath (None when nothing is on)."""
    if fast is None:
        return None
    if isinstance(fast, dict):
        unknown = set(fast) - {"dtype", "channels_last", "compile", "grad_scale"}
        if unknown:
            V.fail("fast", f"unknown options {sorted(unknown)}; expected dtype, channels_last, compile, grad_scale")
        fast = FastPath(**fast)
    if not isinstance(fast, FastPath):
        V.fail("fast", f"expected None, a FastPath or a dict of its options, got {type(fast).__name__}", TypeError)
    if fast.dtype is not None and fast.dtype not in AUTOCAST_DTYPES:
        V.fail("fast", f"dtype must be None, torch.bfloat16 or torch.float16, got {fast.dtype!r}")
    if not isinstance(fast.channels_last, bool):
        V.fail("fast", f"channels_last must be a bool, got {fast.channels_last!r}", TypeError)
    if not isinstance(fast.compile, (bool, str)) or (isinstance(fast.compile, str)
                                                      and fast.compile not in COMPILE_MODES):
        V.fail("fast", f"compile must be a bool or one of {COMPILE_MODES}, got {fast.compile!r}")
    if fast.compile == "cudagraphs" and device.type != "cuda":
        V.fail("fast", f"compile='cudagraphs' needs a CUDA device, got {device}")
    gs = fast.grad_scale
    if gs is not None and (isinstance(gs, bool) or not isinstance(gs, (int, float)) or not 0 < gs < float("inf")):
        V.fail("fast", f"grad_scale must be a positive finite number or None, got {gs!r}")
    if fast.dtype is not None and device.type == "cuda" and fast.dtype == torch.bfloat16 \
            and not torch.cuda.is_bf16_supported():
        V.fail("fast", f"dtype torch.bfloat16 is not supported by {torch.cuda.get_device_name(device)}")
    return fast if fast.active else None


# channels_last ------------------------------------------------------------------------------------

_CL_CACHE = WeakIdKeyDictionary()  # tensor (by identity, weakly) -> its channels_last buffer


def _channels_last_copy(t: torch.Tensor) -> torch.Tensor:
    """t's current values in a channels_last buffer kept per tensor: refreshed on every call (never stale,
    whatever changed the weights), at a fixed address across calls (CUDA graphs see the same input)."""
    buf = _CL_CACHE.get(t)
    if buf is None or buf.shape != t.shape or buf.dtype != t.dtype or buf.device != t.device:
        buf = torch.empty_like(t, memory_format=torch.channels_last)
        _CL_CACHE[t] = buf
    with torch.no_grad():
        buf.copy_(t.detach())
    return buf


@contextlib.contextmanager
def channels_last_scope(model):
    """View the 4-D parameters and buffers of ``model`` in channels_last; restore the originals on exit."""
    saved = []
    if isinstance(model, nn.Module):
        try:
            for t in itertools.chain(model.parameters(), model.buffers()):
                if t.dim() == 4 and not t.is_contiguous(memory_format=torch.channels_last):
                    data = _channels_last_copy(t)
                    saved.append((t, t.data))
                    t.data = data
            yield
        finally:
            for t, data in saved:
                t.data = data
    else:
        yield


# the model call ----------------------------------------------------------------------------------

def _forward(model, x: torch.Tensor, dtype, device_type: str):
    """The model's logits for x, under autocast when dtype is set, cast to float32 then."""
    if dtype is None:
        return model(x)
    with torch.autocast(device_type, dtype=dtype):
        out = model(x)
    if isinstance(out, torch.Tensor) and out.is_floating_point() and out.dtype != torch.float32 \
            and out.dtype != torch.float64:
        out = out.float()
    return out


_COMPILED: dict[str, object] = {}


def compiled_forward(mode: str):
    """The module-level compiled :func:`_forward` for a mode (torch's cache holds the graphs)."""
    fn = _COMPILED.get(mode)
    if fn is None:
        if mode == "cudagraphs":
            fn = torch.compile(_forward, backend="cudagraphs", dynamic=False)
        else:
            fn = torch.compile(_forward, mode=mode, dynamic=False)
        _COMPILED[mode] = fn
    return fn


class _GradScale(torch.autograd.Function):
    """Identity forward; the backward multiplies the incoming gradient by ``s`` (exact for powers of two)."""

    @staticmethod
    def forward(ctx, x, s, check):
        ctx.s, ctx.check = s, check
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        if ctx.check and not bool(torch.isfinite(g).all()):
            V.fail("fast", "the float16 backward overflowed (non-finite input gradient): lower grad_scale or "
                   "use dtype=torch.bfloat16")
        return g * ctx.s, None, None


class ModelCall:
    """``call(xt) -> logits`` for the engine's chunks: autocast and/or compiled forward, padded to one shape.

    xt (N, C, H, W) -> (N, K); rows padded for the compiled forward are dropped from the logits."""

    def __init__(self, model, fast: FastPath, device: torch.device):
        self.model = model
        self.dtype = fast.dtype
        self.device_type = device.type
        mode = fast.compile_mode
        self.fn = _forward if mode is None else compiled_forward(mode)
        self.pad = mode is not None
        # CUDA graphs (cudagraph trees) own their outputs: tell them each chunk is a new step
        self.mark_step = device.type == "cuda" and mode in ("reduce-overhead", "max-autotune", "cudagraphs")
        self.scale = fast.scale
        self.rows = 0

    def __call__(self, xt: torch.Tensor):
        n = xt.shape[0]
        self.rows = max(self.rows, n)
        if self.pad and n < self.rows:
            fill = xt[-1:].detach().expand(self.rows - n, *xt.shape[1:])
            xt = torch.cat([xt, fill]).contiguous(memory_format=_format(xt))
        if self.scale != 1.0 or self.dtype == torch.float16:
            xt = _GradScale.apply(xt, 1.0 / self.scale, self.dtype == torch.float16)
        if self.mark_step:
            torch.compiler.cudagraph_mark_step_begin()
        out = self.fn(self.model, xt, self.dtype, self.device_type)
        if self.scale != 1.0 and isinstance(out, torch.Tensor) and out.requires_grad:
            out = _GradScale.apply(out, self.scale, False)
        return out[:n] if isinstance(out, torch.Tensor) and out.dim() > 0 and out.shape[0] != n else out


def _format(x: torch.Tensor) -> torch.memory_format:
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


@contextlib.contextmanager
def fast_scope(model, fast: FastPath | None, device: torch.device):
    """Inside :func:`engine.model_scope`: yields the callable the engine runs on its chunks (``model``
    itself when ``fast`` is None) with the model's 4-D weights in channels_last if asked."""
    if fast is None:
        yield model
        return
    with channels_last_scope(model) if fast.channels_last else contextlib.nullcontext():
        yield ModelCall(model, fast, device)
