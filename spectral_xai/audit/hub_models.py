"""Models as the hubs ship them, loaded offline: a local Hugging Face model directory
(``AutoModelForImageClassification.from_pretrained(path, local_files_only=True)``) and ``timm:NAME`` with a
state dict (``timm.create_model(NAME, pretrained=False, num_classes=<from the weights>)``).  Nothing is ever
downloaded.  ``transformers`` and ``timm`` are imported only here, when such a model is used.

Each declares its preprocessing, which the audit takes as defaults (:func:`declared_preprocessing`): a
Hugging Face directory's ``preprocessor_config.json`` (``crop_size`` or ``size``; ``image_mean`` /
``image_std`` when ``do_normalize``), else its ``config.json`` ``image_size``; timm's ``pretrained_cfg``
(``input_size``, ``mean``, ``std``).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from torch import nn

from .errors import fail as _fail

TIMM = "timm:"




def is_hf_dir(spec: str) -> bool:
    return Path(spec).expanduser().is_dir()


def _hf_dir(spec: str) -> Path:
    path = Path(spec).expanduser()
    if not (path / "config.json").is_file():
        _fail("model", f"{spec!r} is a directory but not a Hugging Face model directory (no config.json); save "
                       "the model there with model.save_pretrained(path)")
    return path


def load_hf_model(spec: str, quiet: bool = False) -> nn.Module:
    """The image classifier saved in directory ``spec`` (float32; its outputs carry ``.logits``); ``quiet``:
    without transformers' progress bar."""
    path = _hf_dir(spec)
    try:
        from transformers import AutoModelForImageClassification
        from transformers.utils import logging as hf_logging
    except ImportError:
        _fail("model", "a Hugging Face model directory needs the 'transformers' package (pip install transformers)")
    bar = hf_logging.is_progress_bar_enabled()
    if quiet:
        hf_logging.disable_progress_bar()
    try:
        model = AutoModelForImageClassification.from_pretrained(str(path), local_files_only=True,
                                                                dtype=torch.float32)
    except (OSError, ValueError, KeyError) as err:
        _fail("model", f"cannot load the Hugging Face model in {spec!r} as an image classifier: {err}")
    finally:
        if quiet and bar:
            hf_logging.enable_progress_bar()
    return model


def hf_class_names(model) -> list[str] | None:
    """The class names of a Hugging Face model's ``config.id2label`` in output order, or None when it has
    none or only the placeholders LABEL_0, LABEL_1, ...."""
    id2label = getattr(getattr(model, "config", None), "id2label", None)
    if not isinstance(id2label, dict) or not id2label:
        return None
    try:
        ordered = [id2label[k] for k in sorted(id2label, key=int)]
    except (TypeError, ValueError):
        return None
    if all(re.fullmatch(rf"LABEL_{i}", str(name)) for i, name in enumerate(ordered)):
        return None
    return [str(n) for n in ordered]


def _timm():
    try:
        import timm
    except ImportError:
        _fail("model", "timm:NAME needs the 'timm' package (pip install timm)")
    return timm


def _timm_name(spec: str) -> str:
    timm = _timm()
    name = spec[len(TIMM):]
    if not timm.is_model(name):
        import difflib

        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see timm.list_models()"
        _fail("model", f"timm has no model {name!r}{hint}")
    return name


def load_timm(spec: str, weights: str | None) -> nn.Module:
    """``timm:NAME`` with the state dict ``weights``: its classifier's rows give num_classes."""
    name = _timm_name(spec)
    if weights is None:
        _fail("weights", f"{spec} needs --weights FILE (a state dict): the audit never downloads weights")
    timm = _timm()
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as err:
        _fail("weights", f"cannot read {weights!r}: {err}")
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        _fail("weights", f"{weights!r} holds a {type(state).__name__}, not a state dict")
    pretrained = timm.models.get_pretrained_cfg(name)
    classifier = pretrained.classifier if pretrained is not None else None
    heads = [classifier] if isinstance(classifier, str) else list(classifier or ())
    rows = [state[f"{h}.weight"].shape[0] for h in heads if f"{h}.weight" in state]
    model = timm.create_model(name, pretrained=False, **({"num_classes": rows[0]} if rows else {}))
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        lines = [ln.strip() for ln in str(err).splitlines()[1:] if ln.strip()]
        shown = "; ".join(ln if len(ln) <= 160 else ln[:157] + "..." for ln in lines[:2])
        more = f" (and {len(lines) - 2} more)" if len(lines) > 2 else ""
        _fail("weights", f"{weights!r} does not fit timm's {name}: {shown}{more}; are these the weights of "
                         "another architecture?")
    return model


def declared_preprocessing(spec: str, kind: str) -> dict:
    """The input size and normalisation the model of ``--model spec`` (of kind "timm" or "hf_dir") declares:
    a dict with some of "size" (int), "mean", "std" (lists); empty for every other kind of model."""
    if kind == "timm":
        cfg = _timm().models.get_pretrained_cfg(_timm_name(spec))
        if cfg is None:
            return {}
        out = {"size": int(cfg.input_size[-1])} if cfg.input_size else {}
        if cfg.mean is not None and cfg.std is not None:
            out.update(mean=[float(v) for v in cfg.mean], std=[float(v) for v in cfg.std])
        return out
    if kind != "hf_dir":
        return {}
    path = _hf_dir(spec)
    out: dict = {}
    proc = path / "preprocessor_config.json"
    if proc.is_file():
        p = json.loads(proc.read_text())
        size = p.get("crop_size") if p.get("do_center_crop") and p.get("crop_size") else p.get("size")
        if isinstance(size, dict):
            size = size.get("height", size.get("shortest_edge"))
        if isinstance(size, int):
            out["size"] = size
        if p.get("do_normalize", True) and p.get("image_mean") is not None and p.get("image_std") is not None:
            out.update(mean=[float(v) for v in p["image_mean"]], std=[float(v) for v in p["image_std"]])
    if "size" not in out:
        size = json.loads((path / "config.json").read_text()).get("image_size")
        if isinstance(size, int):
            out["size"] = size
    return out


def object_input_size(model) -> int | None:
    """The input size a model object declares: a Hugging Face ``config.image_size`` or timm's
    ``pretrained_cfg["input_size"]``; None otherwise."""
    size = getattr(getattr(model, "config", None), "image_size", None)
    if isinstance(size, int):
        return size
    pre = getattr(model, "pretrained_cfg", None)
    if isinstance(pre, dict) and pre.get("input_size"):
        return int(pre["input_size"][-1])
    return None
