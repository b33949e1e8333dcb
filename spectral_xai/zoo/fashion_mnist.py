"""Fashion-MNIST from an IDX directory (Debian's ``dataset-fashion-mnist`` installs one), and the
small CNN of ICCV25 (Conv3x3 without bias - activation - MaxPool blocks, then FC - act - FC)."""
from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .._validation import fail

DEBIAN_ROOT = "/usr/share/datasets/fashion-mnist"
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot")
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An IDX file (optionally gzip-compressed) as a numpy array of its shape and type."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code not in _DTYPES:
        raise ValueError(f"spectral_xai: argument 'path': {path} is not an IDX file")
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=_DTYPES[dtype_code], offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise ValueError(f"spectral_xai: argument 'path': {path} is truncated ({arr.size} of {np.prod(shape)} values)")
    return arr.reshape(shape)


def _find(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (root / name).exists():
            return root / name
    raise FileNotFoundError(f"spectral_xai: no {stem}[.gz] in {root} (install Debian's dataset-fashion-mnist, or "
                            "pass root= / set SPECTRAL_XAI_FASHION_MNIST to an IDX directory)")


def fashion_mnist(split: str = "test", root: str | os.PathLike | None = None, limit: int | None = None):
    """(images (N, 1, 28, 28) float32 in [0, 1], labels (N,) int64) of the train or test split."""
    if split not in ("train", "test"):
        raise ValueError(f"spectral_xai: argument 'split': expected 'train' or 'test', got {split!r}")
    root = Path(root or os.environ.get("SPECTRAL_XAI_FASHION_MNIST", DEBIAN_ROOT))
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(_find(root, f"{prefix}-images-idx3-ubyte"))[:limit]
    labels = read_idx(_find(root, f"{prefix}-labels-idx1-ubyte"))[:limit]
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}


def fashion_cnn(beta: float | None = None, channels=(16, 32), hidden: int = 64, classes: int = 10,
                activation: str = "relu") -> nn.Sequential:
    """ICCV25's small CNN for (B, 1, 28, 28) inputs -> (B, classes) logits.

    ``activation="relu"``: ReLU (beta=None) or SoftPlus_beta (ICCV25, docs/methods.md §8).
    ``activation="gelu"`` / ``"silu"``: nn.GELU / nn.SiLU (beta=None) or their Gaussian smoothing
    a_beta(x) = E[a(x + Z/sqrt(beta))] (``smooth_activations(..., kind="gaussian")``, §12).
    With 10 classes the model's ``classes`` attribute holds the Fashion-MNIST class names (:data:`CLASSES`)."""
    model = small_cnn(beta, channels=channels, hidden=hidden, classes=classes, activation=activation)
    if classes == len(CLASSES):
        model.classes = list(CLASSES)
    return model


_CONV = {1: (nn.Conv1d, nn.MaxPool1d), 2: (nn.Conv2d, nn.MaxPool2d), 3: (nn.Conv3d, nn.MaxPool3d)}


def small_cnn(beta: float | None = None, *, ndim: int = 2, size: int = 28, in_channels: int = 1,
              channels=(16, 32), hidden: int = 64, classes: int = 10, activation: str = "relu") -> nn.Sequential:
    """The ICCV25 small CNN (Conv3 without bias - act - MaxPool2 blocks, then FC - act - FC) for signals
    (ndim=1, (B, in_channels, size)), images (ndim=2, (B, in_channels, size, size); ``fashion_cnn``) or
    volumes (ndim=3, (B, in_channels, size, size, size)) -> (B, classes) logits; activations as in
    :func:`fashion_cnn`."""
    if activation not in ACTIVATIONS:
        fail("activation", f"expected one of {tuple(ACTIVATIONS)}, got {activation!r}")
    if ndim not in _CONV:
        fail("ndim", f"expected 1, 2 or 3, got {ndim!r}")
    conv, pool = _CONV[ndim]

    def act():
        if beta is not None and activation == "relu":
            return nn.Softplus(beta=float(beta))
        return ACTIVATIONS[activation]()

    layers, c_in = [], in_channels
    for c in channels:
        layers += [conv(c_in, c, 3, padding=1, bias=False), act(), pool(2)]
        c_in, size = c, size // 2
    layers += [nn.Flatten(), nn.Linear(c_in * size ** ndim, hidden), act(), nn.Linear(hidden, classes)]
    model = nn.Sequential(*layers)
    if beta is None or activation == "relu":
        return model
    from ..activation_smoothing import smooth_activations
    return smooth_activations(model, float(beta), kind="gaussian")
