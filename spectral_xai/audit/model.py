"""Loading the audited model: the built-in EfficientNet-Lite0, ``module:factory`` (a dotted module or a
``.py`` file), a ``torch.export`` program (``.pt2``), a TorchScript file, a local Hugging Face model
directory or ``timm:NAME`` (:mod:`.hub_models`), or a model object given to ``run_audit``; optional
``--weights`` (a state dict) and input normalisation, so the explained input is always the image in [0, 1]."""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import importlib
import importlib.util
from pathlib import Path

import torch
from torch import nn

from ..model_calls import check_logits, input_channels, model_scope
from . import hub_models
from .config import NORMALIZATIONS, AuditConfig
from .errors import fail

DEFAULT_SIZE = 224          # the input size when neither --size nor the model gives one
PYTHON = "python:"          # cfg.model of a run whose model object was given to run_audit
BUILTIN_MODELS = {"efficientnet-lite0": {}, "fashion-cnn": {"size": 28, "grayscale": True}}   # name -> input


class Normalize(nn.Module):
    """(x − mean) / std per channel, in front of a model that expects normalised inputs."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ExportedModel(nn.Module):
    """A ``torch.export`` program as a module.  The program's graph module is held outside the module tree:
    it cannot switch train/eval mode (its mode is fixed at export), so ``eval()`` must not reach it."""

    def __init__(self, program_module, device: torch.device):
        super().__init__()
        object.__setattr__(self, "_program", program_module.to(device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._program(x)


def _factory(spec: str):
    module_name, _, attr = spec.rpartition(":")
    if module_name.endswith(".py"):
        path = Path(module_name).expanduser()
        if not path.is_file():
            fail("model", f"no file {module_name!r}")
        mod_spec = importlib.util.spec_from_file_location(f"_spectral_xai_model_{path.stem}", path)
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise ValueError(f"spectral_xai audit: option 'model': cannot import {module_name!r}: {err}") from err
    if not hasattr(module, attr):
        fail("model", f"{module_name!r} has no {attr!r}")
    return getattr(module, attr)


@contextlib.contextmanager
def _blame(option: str, what: str):
    """Any error but our own ValueErrors becomes a ValueError naming ``option``."""
    try:
        yield
    except ValueError as err:
        if str(err).startswith("spectral_xai"):
            raise
        raise ValueError(f"spectral_xai audit: option '{option}': {what}: {type(err).__name__}: {err}") from err
    except (Exception, SystemExit) as err:   # noqa: BLE001 - a user's factory or file can raise anything
        raise ValueError(f"spectral_xai audit: option '{option}': {what}: {type(err).__name__}: {err}") from err


@contextlib.contextmanager
def seeded_rng(seed: int, device: torch.device):
    """torch's global RNG seeded with ``seed`` inside the block and restored after it: the CPU generator, and
    every CUDA device's when ``device`` is CUDA or CUDA is already initialised (otherwise CUDA is not touched,
    so the block draws nothing from it that outlives the block)."""
    cuda = device.type == "cuda" or (torch.cuda.is_available() and torch.cuda.is_initialized())
    devices = list(range(torch.cuda.device_count())) if cuda else []
    with torch.random.fork_rng(devices=devices):
        torch.default_generator.manual_seed(seed)
        if devices:
            torch.cuda.manual_seed_all(seed)
        yield


def model_kind(spec: str) -> str:
    """What ``--model spec`` names: "builtin", "python" (a run of a model object), "timm", "factory",
    "hf_dir" (a directory), "pt2", "script" (another file) or "missing"."""
    if spec in BUILTIN_MODELS:
        return "builtin"
    if spec.startswith(PYTHON):
        return "python"
    if spec.startswith(hub_models.TIMM):
        return "timm"
    if _is_factory(spec):
        return "factory"
    path = Path(spec).expanduser()
    if path.is_dir():
        return "hf_dir"
    if path.is_file():
        return "pt2" if spec.endswith(".pt2") else "script"
    return "missing"


def with_model_defaults(cfg: AuditConfig, model: nn.Module | None = None) -> AuditConfig:
    """``cfg`` with ``size`` None and ``normalize`` "auto" made concrete: the input size and normalisation
    that the model declares (a built-in's, a Hugging Face directory's preprocessor config, timm's
    pretrained_cfg; a model object: only its declared input size, never a normalisation), else 224 px and
    none.  Values the user set are kept; the one-channel built-in (fashion-cnn) sets ``grayscale``.
    Idempotent."""
    if model is not None:
        declared = {"size": hub_models.object_input_size(model)}
    else:
        kind = model_kind(cfg.model)
        with _blame("model", f"cannot read the preprocessing of {cfg.model!r}"):
            declared = hub_models.declared_preprocessing(cfg.model, kind) if kind in ("timm", "hf_dir") else {}
        declared = {**declared, **BUILTIN_MODELS.get(cfg.model, {})} if kind == "builtin" else declared
    changes: dict = {}
    if declared.get("grayscale") and not cfg.grayscale:
        changes["grayscale"] = True
    if cfg.size is None:
        changes["size"] = declared.get("size") or DEFAULT_SIZE
    if cfg.normalize == "auto":
        changes["normalize"] = "none"
        if cfg.mean is None and declared.get("mean") is not None:
            channels = 1 if cfg.grayscale else 3
            if len(declared["mean"]) != channels:
                fail("normalize", f"{cfg.model!r} declares a normalisation "
                     f"of {len(declared['mean'])} channel(s), the images have {channels}; give "
                     "--mean/--std, or --normalize none")
            changes.update(mean=declared["mean"], std=declared["std"])
    return dataclasses.replace(cfg, **changes) if changes else cfg


def _normalized(cfg: AuditConfig, model: nn.Module) -> nn.Module:
    """``model`` behind the normalisation of ``cfg`` (--mean/--std or a preset), or ``model`` itself."""
    stats = (cfg.mean, cfg.std) if cfg.mean is not None else NORMALIZATIONS[cfg.normalize]
    return nn.Sequential(Normalize(*stats), model) if stats is not None else model


@contextlib.contextmanager
def given_model(cfg: AuditConfig, model: nn.Module, device: torch.device):
    """A model object given to ``run_audit``, ready for the audit: in eval mode with frozen parameters for the
    block (its modes restored after it), on ``device`` in ``cfg.dtype`` (a copy when it is elsewhere, so the
    object itself never moves), behind a normalisation only when ``cfg`` asks for one."""
    if not isinstance(model, nn.Module):
        fail("model", f"expected a torch.nn.Module, got "
             f"{type(model).__name__} (wrap a function in a module: the audit fingerprints its "
             "state_dict)", TypeError, scope="argument")
    if cfg.weights is not None:
        fail("weights", "a model object is audited as given; load the "
             "weights into it first, or drop weights")
    dtype = getattr(torch, cfg.dtype)
    tensors = list(model.parameters()) + list(model.buffers())
    moved = any(t.device != device or (t.is_floating_point() and t.dtype != dtype) for t in tensors)
    with model_scope(model):
        ready = copy.deepcopy(model).to(device=device, dtype=dtype) if moved else model
        with model_scope(ready):
            yield _normalized(cfg, ready).to(device=device, dtype=dtype)


def load_model(cfg: AuditConfig, device: torch.device) -> nn.Module:
    """The model of ``cfg`` in eval mode on ``device`` in ``cfg.dtype``: (B, C, S, S) in [0, 1] -> (B, K).
    It is built under torch's RNG seeded with ``cfg.seed`` (restored afterwards), so a factory that
    initialises weights at random builds the same model in every run and every process."""
    cfg = with_model_defaults(cfg)
    with _blame("model", f"cannot load {cfg.model!r}"), seeded_rng(cfg.seed, device):
        model = _load(cfg, device)
    if cfg.weights is not None and model_kind(cfg.model) != "timm":       # timm's are loaded with the model
        with _blame("weights", f"cannot load {cfg.weights!r} into the model"):
            state = torch.load(cfg.weights, map_location="cpu", weights_only=True)
            if isinstance(state, dict) and "state_dict" in state:
                state = state["state_dict"]
            model.load_state_dict(state)
    return _normalized(cfg, model).to(device=device, dtype=getattr(torch, cfg.dtype)).eval()


def _is_factory(spec: str) -> bool:
    return ":" in spec and not spec.endswith((".pt", ".pth", ".ts", ".pt2"))


def _load(cfg: AuditConfig, device: torch.device) -> nn.Module:
    spec = cfg.model
    kind = model_kind(spec)
    if kind == "builtin" and spec == "fashion-cnn":
        from ..zoo.pretrained import trained_fashion_cnn

        model = trained_fashion_cnn()
    elif kind == "builtin":
        from ..zoo import efficientnet_lite0

        model = efficientnet_lite0()
    elif kind == "python":
        fail("model", f"this run was started from Python with a model "
             f"object ({spec[len(PYTHON):]}); resume it from Python: run_audit(cfg, dataset=..., "
             "model=...)")
    elif kind == "timm":
        model = hub_models.load_timm(spec, cfg.weights)
    elif kind == "hf_dir":
        model = hub_models.load_hf_model(spec, quiet=cfg.quiet)
    elif kind == "factory":
        model = _factory(spec)()
        if not isinstance(model, nn.Module):
            fail("model", f"{spec!r} returned {type(model).__name__}, "
                 "not an nn.Module")
    elif kind == "pt2":
        if cfg.dtype != "float32" or cfg.weights is not None:
            fail("model", "an exported .pt2 program runs as exported "
                 "(float32, its own weights); drop --dtype/--weights")
        model = ExportedModel(torch.export.load(spec).module(), device)
    elif kind == "script":
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)       # torch.jit is deprecated, still supported
            model = torch.jit.load(spec, map_location="cpu")
    elif any(c in spec for c in "/\\") or spec.startswith((".", "~")):
        fail("model", f"no such file or directory {spec!r}")
    else:
        fail("model", f"expected 'efficientnet-lite0', 'fashion-cnn', 'module:factory', "
             f"'file.py:factory', a torch.export .pt2 file, a TorchScript file, a Hugging Face model "
             f"directory or 'timm:NAME', got {spec!r}")
    return model


def _inner(model: nn.Module) -> nn.Module:
    """The user's model, without the Normalize that load_model may put in front of it."""
    return model[-1] if isinstance(model, nn.Sequential) and isinstance(model[0], Normalize) else model


_CHUNK = 1 << 24          # bytes hashed per step: a CPU copy of at most 16 MiB at a time


def _hash_tensor(h, t: torch.Tensor) -> None:
    flat = t.detach().reshape(-1)
    step = max(1, _CHUNK // max(1, flat.element_size()))
    for a in range(0, flat.numel(), step):
        part = flat[a:a + step].to("cpu").contiguous().view(torch.uint8)
        h.update(memoryview(part.numpy()))


def model_fingerprint(cfg: AuditConfig | None, model: nn.Module) -> str:
    """sha256 hex digest of the loaded model: its class name; its code (:func:`_hash_code`: the module tree's
    structure, its classes' source, the factory's source file); then every state_dict entry in name order
    (name, dtype, shape, bytes); for a .pt2 or TorchScript file also the file's bytes (the program).  Equal
    digests: the same weights in the same code; any changed weight, layer or line of the model's code changes
    it.  ``cfg`` None: a model object (no file)."""
    h = hashlib.sha256()
    h.update(f"{type(model).__qualname__}/{type(_inner(model)).__qualname__}\n".encode())
    _hash_code(h, cfg, model)
    state = model.state_dict()
    for name in sorted(state):
        t = state[name]
        if not isinstance(t, torch.Tensor):                 # a module's extra state: its type and plain value
            plain = t if isinstance(t, (bool, int, float, str, type(None))) else "?"
            h.update(f"{name}|{type(t).__qualname__}|{plain!r}\n".encode())
            continue
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        _hash_tensor(h, t if t.layout == torch.strided else t.to_dense())
    if cfg is not None and model_kind(cfg.model) in ("pt2", "script"):       # a .pt2 / TorchScript file
        _hash_file(h, cfg.model)
    return h.hexdigest()


def _hash_file(h, path) -> None:
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)


def _hash_code(h, cfg: AuditConfig | None, model: nn.Module) -> None:
    """The model's code into ``h``: the module tree's ``repr`` (layers and their settings, memory addresses
    removed), the source of every class in the tree that is not torch's or this library's
    (``inspect.getsource``, where Python can find it), and for ``module:factory`` / ``file.py:factory`` the
    factory module's source file."""
    import inspect
    import re

    h.update(b"structure\n" + re.sub(r" at 0x[0-9a-fA-F]+", "", repr(model)).encode() + b"\n")
    for cls in sorted({type(m) for m in model.modules()}, key=lambda c: f"{c.__module__}.{c.__qualname__}"):
        if cls.__module__.split(".")[0] in ("torch", "spectral_xai"):      # the framework, this library
            continue
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):                # defined in a REPL, or its module is not importable by name
            source = "?"
        h.update(f"class {cls.__module__}.{cls.__qualname__}\n{source}\n".encode())
    path = _factory_file(cfg.model) if cfg is not None and model_kind(cfg.model) == "factory" else None
    if path is not None:
        h.update(b"factory file\n")
        _hash_file(h, path)


def _factory_file(spec: str) -> Path | None:
    """The source file of the module of ``module:factory`` / ``file.py:factory``, or None when not found."""
    module_name = spec.rpartition(":")[0]
    if module_name.endswith(".py"):
        path = Path(module_name).expanduser()
    else:
        try:
            found = importlib.util.find_spec(module_name)
        except (ImportError, ValueError):
            return None
        path = Path(found.origin) if found is not None and found.origin else None
    return path if path is not None and path.is_file() else None


def declared_classes(cfg: AuditConfig, model: nn.Module) -> list[str] | None:
    """The class names the model declares, in output order: ImageNet's for the built-in EfficientNet, a
    ``classes`` list on the model (its last module when normalised; the built-in fashion-cnn's), a Hugging
    Face model's ``id2label`` (not its LABEL_k placeholders); None when it declares none."""
    if cfg.model == "efficientnet-lite0":
        from ..zoo import imagenet_classes

        return imagenet_classes()
    inner = _inner(model)
    names = getattr(inner, "classes", None)
    if isinstance(names, (list, tuple)) and names and all(isinstance(c, str) for c in names):
        return list(names)
    return hub_models.hf_class_names(inner)


def model_classes(cfg: AuditConfig, model: nn.Module, dataset) -> list[str] | None:
    """The model's class names in output order: :func:`declared_classes`, else the classes of a labelled
    built-in or a user's dataset (ClassLabel), whose labels such a model is taken to predict."""
    names = declared_classes(cfg, model)
    if names is not None:
        return names
    return list(dataset.classes) if dataset.root is None and dataset.classes else None


PROBE_SIZES = (28, 32, 64, 96, 112, 128, 160, 192, 224, 256, 299, 384)   # sizes tried when one fails


def _working_size(model: nn.Module, x: torch.Tensor) -> int | None:
    """The first of PROBE_SIZES (other than x's) on which ``model`` gives (1, K) outputs for a blank (1, C, S, S)
    image of x's channels, dtype and device, or None."""
    for s in PROBE_SIZES:
        if s == x.shape[-1]:
            continue
        try:
            with torch.no_grad():
                out = model(torch.zeros(1, x.shape[1], s, s, dtype=x.dtype, device=x.device))
            with contextlib.suppress(TypeError, ValueError):
                out = check_logits(out, 1)
        except Exception:  # noqa: BLE001, S112 - a size the model refuses
            continue
        if isinstance(out, torch.Tensor) and out.dim() == 2 and out.shape[0] == 1:
            return s
    return None


def check_model(cfg: AuditConfig, model: nn.Module, x: torch.Tensor) -> int:
    """Run the model once on x (1, C, S, S), one image of the data, before anything is written; returns K,
    the number of outputs, or raises a ValueError that names the option to change."""
    c = x.shape[1]
    wants = input_channels(model)
    if wants is not None and wants != c:
        fix = "drop --grayscale" if cfg.grayscale else ("add --grayscale" if wants == 1 else "")
        fail("grayscale" if fix else "model", f"the model's first layer takes {wants} channel(s), the images have "
                                              f"{c}" + (f"; {fix}" if fix else ""))
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as err:  # noqa: BLE001 - a user's model can raise anything
        other = _working_size(model, x)
        if other is not None:
            fail("size", f"the model fails on one image of the data, shape {tuple(x.shape)} ({type(err).__name__}: "
                         f"{err}); the model expects another input size: try --size {other}")
        with _blame("model", f"the model fails on one image of the data, shape {tuple(x.shape)}"):
            raise
    with contextlib.suppress(TypeError, ValueError):
        out = check_logits(out, 1)          # a Hugging Face output object or a {"logits": ...} dict
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 1 or out.shape[1] < 2 \
            or not out.is_floating_point():
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        fail("model", f"expected class scores of shape (1, K), K >= 2, on "
             f"one image; got {got}")
    return int(out.shape[1])
