"""Argument checks shared by the public functions: clear errors that name the argument."""
from __future__ import annotations

import numbers
import os
from collections.abc import Sequence

import torch

from . import options as O   # option lists read at call time (options imports this module)


def fail(arg: str, message: str, kind: type[Exception] = ValueError) -> None:
    raise kind(f"spectral_xai: argument '{arg}': {message}")


def check_images(x) -> torch.Tensor:
    """x must be a finite, non-empty float tensor of shape (B, C, H, W)."""
    return check_inputs(x, dims=(4,))


_INPUT_SHAPES = {3: "(B, C, L)", 4: "(B, C, H, W)", 5: "(B, C, D, H, W)"}


def check_inputs(x, dims=(3, 4, 5)) -> torch.Tensor:
    """x must be a finite, non-empty float tensor with one of the ranks ``dims``: signals (B, C, L), images
    (B, C, H, W) or volumes (B, C, D, H, W)."""
    if not isinstance(x, torch.Tensor):
        fail("x", f"expected a torch.Tensor, got {type(x).__name__}", TypeError)
    if not x.is_floating_point():
        fail("x", f"expected a floating-point tensor, got {x.dtype}", TypeError)
    if x.dim() not in dims:
        shapes = " or ".join(f"a {d}-D tensor {_INPUT_SHAPES[d]}" for d in dims)
        fail("x", f"expected {shapes}, got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        fail("x", "the batch is empty (B = 0)")
    if x.numel() == 0:
        fail("x", f"an image has no elements (shape {tuple(x.shape)})")
    if not bool(torch.isfinite(x).all()):
        fail("x", "contains NaN or Inf values")
    return x


def check_sigmas(sigmas, mixing: str, device: torch.device) -> torch.Tensor:
    """sigmas: a number or a 1-D sequence/tensor of finite values in the family's range -> (S,) float64."""
    if mixing not in O.MIXINGS:
        fail("mixing", f"expected one of {O.MIXINGS}, got {mixing!r}")
    if isinstance(sigmas, (str, bytes, bool)):
        fail("sigma", f"expected a number or a sequence of numbers, got {type(sigmas).__name__}", TypeError)
    if isinstance(sigmas, torch.Tensor):
        s = sigmas.detach().to(device=device, dtype=torch.float64).reshape(-1)
    elif isinstance(sigmas, (int, float)):
        s = torch.tensor([float(sigmas)], dtype=torch.float64, device=device)
    elif isinstance(sigmas, Sequence):
        if any(isinstance(v, (str, bytes, bool)) for v in sigmas):
            fail("sigma", f"expected numbers, got {list(sigmas)!r}", TypeError)
        try:
            s = torch.tensor([float(v) for v in sigmas], dtype=torch.float64, device=device)
        except (TypeError, ValueError):
            fail("sigma", f"expected numbers, got {list(sigmas)!r}", TypeError)
    else:
        fail("sigma", f"expected a number or a sequence of numbers, got {type(sigmas).__name__}", TypeError)
    if s.numel() == 0:
        fail("sigma", "no noise scale given")
    if not bool(torch.isfinite(s).all()):
        fail("sigma", "contains NaN or Inf")
    if bool((s < 0).any()):
        fail("sigma", f"must be >= 0, got {s.min().item():g}")
    hi = O.MIXING_MAX_SIGMA[mixing]
    if hi is not None and bool((s > hi).any()):
        fail("sigma", f"must be <= {hi:g} for {mixing} mixing, got {s.max().item():g}")
    return s


def check_positive_int(value, arg: str, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        fail(arg, f"expected a positive int, got {value!r}", TypeError)
    if value <= 0:
        fail(arg, f"expected a positive int, got {value}")
    return value


def check_seed(seed) -> int:
    """seed: an integer (int, or an integral scalar such as numpy.int64; not bool) in [0, 2^64) -> int."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        fail("seed", f"expected an int, got {type(seed).__name__}", TypeError)
    seed = int(seed)
    if not 0 <= seed < 2**64:
        fail("seed", f"expected 0 <= seed < 2^64 (a uint64 Philox key), got {seed}")
    return seed


def check_image_ids(image_ids, batch: int, device: torch.device) -> torch.Tensor:
    if image_ids is None:
        return torch.arange(batch, dtype=torch.int64, device=device)
    ids = torch.as_tensor(image_ids)
    if ids.is_floating_point() or ids.dtype == torch.bool:
        fail("image_ids", f"expected integer ids, got {ids.dtype}", TypeError)
    ids = ids.to(device=device, dtype=torch.int64).reshape(-1)
    if ids.numel() != batch:
        fail("image_ids", f"expected {batch} ids (one per image), got {ids.numel()}")
    if bool((ids < 0).any()) or bool((ids >= 2**32).any()):
        fail("image_ids", "ids must lie in [0, 2^32)")
    return ids


def check_output(output: str) -> str:
    if output not in O.OUTPUTS:
        fail("output", f"expected {O.one_of(O.OUTPUTS)}, got {output!r}")
    return output


def check_noise_scale(noise_scale, batch: int, device: torch.device) -> torch.Tensor:
    """A positive number or a (B,) tensor of per-image scales -> (B,) float64."""
    if isinstance(noise_scale, torch.Tensor):
        s = noise_scale.detach().to(device=device, dtype=torch.float64).reshape(-1)
        if s.numel() == 1:
            s = s.expand(batch).clone()
    elif isinstance(noise_scale, (int, float)) and not isinstance(noise_scale, bool):
        s = torch.full((batch,), float(noise_scale), dtype=torch.float64, device=device)
    else:
        fail("noise_scale", f"expected a number or a tensor, got {type(noise_scale).__name__}", TypeError)
    if s.numel() != batch:
        fail("noise_scale", f"expected 1 or {batch} values, got {s.numel()}")
    if not bool(torch.isfinite(s).all()) or bool((s < 0).any()):
        fail("noise_scale", "must be finite and >= 0")
    return s


def available_memory(device: torch.device) -> int:
    """Bytes that may still be allocated on ``device``: free GPU memory, or the host's MemAvailable (Linux;
    elsewhere the free physical pages)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def check_memory(nbytes: int, arg: str, device: torch.device, what: str) -> None:
    """Refuses, naming ``arg``, a request whose ``what`` needs more than the memory ``device`` has available,
    before anything is allocated (instead of the allocator's error, or the machine swapping)."""
    free = available_memory(device)
    if nbytes > free:
        fail(arg, f"{what} need about {nbytes / 2**30:.3g} GiB but only {free / 2**30:.3g} GiB is available on "
                  f"{device.type}: use fewer, or fewer images per call")
