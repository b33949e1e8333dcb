"""The built-in ``fashion-cnn`` of the audit: :func:`~spectral_xai.zoo.fashion_cnn` (ReLU) trained on the
Fashion-MNIST training split with a fixed recipe and seed on first use, then cached under the user's cache
directory (``$XDG_CACHE_HOME/spectral_xai``, else ``~/.cache/spectral_xai``) with the sha256 of its weights
file, which every later load checks.  ``SPECTRAL_XAI_FASHION_CNN_STEPS`` sets the training steps (a smaller
model for quick trials; each step count is cached apart).

    python -m spectral_xai.zoo.pretrained        # train (or check) the cached model now
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

from .fashion_mnist import fashion_cnn, fashion_mnist

STEPS_ENV = "SPECTRAL_XAI_FASHION_CNN_STEPS"
RECIPE = {"model": "fashion_cnn(relu, channels=(16, 32), hidden=64)", "optimizer": "Adam", "lr": 1e-3,
          "batch": 128, "steps": 300, "seed": 0, "data": "Fashion-MNIST train"}
TRAIN_COMMAND = "python -m spectral_xai.zoo.pretrained"
CHECK_IMAGES = 2000         # test images whose accuracy is recorded with the model


def cache_dir() -> Path:
    """The user's cache directory of the library: $XDG_CACHE_HOME/spectral_xai or ~/.cache/spectral_xai."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "spectral_xai"


def recipe() -> dict:
    """The training recipe in use (RECIPE with the steps of $SPECTRAL_XAI_FASHION_CNN_STEPS, if set)."""
    steps = os.environ.get(STEPS_ENV)
    if steps is None:
        return dict(RECIPE)
    if not steps.isdigit() or int(steps) < 1:
        raise ValueError(f"spectral_xai: environment variable {STEPS_ENV}: expected a positive integer, got {steps!r}")
    return {**RECIPE, "steps": int(steps)}


def _paths(rec: dict) -> tuple[Path, Path]:
    tag = hashlib.sha256(json.dumps(rec, sort_keys=True).encode()).hexdigest()[:12]
    folder = cache_dir() / f"fashion-cnn-{tag}"
    return folder / "weights.pt", folder / "info.json"


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fashion_cnn_info(train: bool = True) -> dict:
    """The cached model's record: recipe, ``sha256`` of its weights file, ``test_accuracy`` on the first
    CHECK_IMAGES test images, ``train_seconds``, ``weights`` (its path).  Trains it first when it is not cached
    and ``train`` is True; else, or when the training files are missing, a ValueError that says how."""
    rec = recipe()
    weights, info_path = _paths(rec)
    if info_path.is_file() and weights.is_file():
        info = json.loads(info_path.read_text())
        if _file_digest(weights) != info.get("sha256"):
            raise ValueError(f"spectral_xai: the cached fashion-cnn weights {weights} do not match the sha256 recorded "
                             f"in {info_path} (edited or damaged); delete {weights.parent} and run {TRAIN_COMMAND}")
        return {**info, "weights": str(weights)}
    if not train:
        raise ValueError(f"spectral_xai: the built-in model 'fashion-cnn' is not trained yet; train it (once, a few "
                         f"minutes on a CPU) with: {TRAIN_COMMAND}")
    return {**_train(rec, weights, info_path), "weights": str(weights)}


def _train(rec: dict, weights: Path, info_path: Path) -> dict:
    from .training import train_to_cap

    try:
        x, y = fashion_mnist("train")
        xc, yc = fashion_mnist("test", limit=CHECK_IMAGES)
    except FileNotFoundError as err:
        raise ValueError(f"spectral_xai: the built-in model 'fashion-cnn' is not trained yet and cannot be: {err}; "
                         f"then run {TRAIN_COMMAND}") from None
    print(f"spectral_xai: training the built-in fashion-cnn once ({rec['steps']} Adam steps on Fashion-MNIST; "
          f"cached in {weights.parent})", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        model, fit = train_to_cap(None, x, y, xc, yc, cap=1.0, check_every=rec["steps"] + 1, max_epochs=10**6,
                                  batch=rec["batch"], lr=rec["lr"], seed=rec["seed"], max_steps=rec["steps"])
    seconds = time.perf_counter() - t0
    weights.parent.mkdir(parents=True, exist_ok=True)
    tmp = weights.with_suffix(f".tmp{os.getpid()}")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, weights)
    info = {"recipe": rec, "sha256": _file_digest(weights), "test_accuracy": fit["check_accuracy"],
            "check_images": CHECK_IMAGES, "train_seconds": round(seconds, 1)}
    tmp = info_path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, info_path)
    print(f"spectral_xai: fashion-cnn trained in {seconds:.0f} s, test accuracy {info['test_accuracy']:.3f} on "
          f"{CHECK_IMAGES} images", file=sys.stderr, flush=True)
    return info


def trained_fashion_cnn(train: bool = True) -> nn.Module:
    """The built-in ``fashion-cnn`` in eval mode: (B, 1, 28, 28) in [0, 1] -> (B, 10) logits, ``classes``
    the Fashion-MNIST class names; trained and cached on first use (see the module docstring)."""
    info = fashion_cnn_info(train)
    model = fashion_cnn()
    model.load_state_dict(torch.load(info["weights"], map_location="cpu", weights_only=True))
    return model.eval()


def main() -> None:
    info = fashion_cnn_info(train=True)
    print(f"fashion-cnn: {info['weights']} sha256 {info['sha256']} test accuracy {info['test_accuracy']:.3f}")


if __name__ == "__main__":
    main()
