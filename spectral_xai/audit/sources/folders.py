"""The audit's datasets: an image folder (recursive, labels optionally from sub-folder names) or a built-in
(``skimage``: scikit-image's bundled photos; ``fashion-mnist[:train|test]``: the Debian IDX files).

Every item is an :class:`~spectral_xai.audit.sources.AuditItem`; an unreadable or corrupt file gives a zero
image and the reason in ``error`` (the audit records it as a failed row, it does not crash).
Images are centre-cropped to a square and resized with antialiasing, as :func:`spectral_xai.zoo.photos`.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from ...zoo.photos import to_square
from ..errors import fail
from . import AuditItem
from .labels import class_key

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm")
SKIMAGE_PHOTOS = ("astronaut", "camera", "chelsea", "clock", "coffee", "coins", "moon", "rocket")


class FolderDataset(torch.utils.data.Dataset):
    """Items of a folder or built-in; ``names`` (N,) relative paths or built-in names, ``labels`` (N,) or None."""

    option = None            # given by --data, not by a Python argument
    dataset_id = None
    checks_items = False      # identified by file names, sizes and labels (or the built-in's content)

    def __init__(self, data: str, size: int, channels: int, labels: str = "none", limit: int | None = None):
        self.size, self.channels = size, channels
        self.source = data
        self.classes: list[str] | None = None
        self._arrays = None
        if data == "skimage":
            self.root = None
            self.names = list(SKIMAGE_PHOTOS)
            self.labels = None
        elif data == "fashion-mnist" or data.startswith("fashion-mnist:"):
            from ...zoo.fashion_mnist import CLASSES, fashion_mnist

            split = data.split(":", 1)[1] if ":" in data else "test"
            x, y = fashion_mnist(split, limit=limit)
            self.root, self._arrays = None, x
            self.names = [f"fashion-mnist/{split}/{i:05d}" for i in range(x.shape[0])]
            self.labels = y.tolist()
            self.classes = list(CLASSES)
        else:
            root = Path(data).expanduser()
            if not root.is_dir():
                fail("data", f"{data!r} is neither a folder nor a built-in "
                     "('skimage', 'fashion-mnist', 'fashion-mnist:train')", scope="argument")
            self.root = root
            files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            self.names = [p.relative_to(root).as_posix() for p in files]
            if not self.names:
                fail("data", f"no images ({', '.join(IMAGE_SUFFIXES)}) "
                     f"under {data!r}", scope="argument")
            self.labels = None
        if limit is not None:
            self.names = self.names[:limit]
            self.labels = None if self.labels is None else self.labels[:limit]
        self.folders: list[str] | None = None       # with labels="folders": each image's class folder
        self.label_map: dict[str, int | None] | None = None
        if labels == "folders" and self.root is not None:
            self.folders = [Path(n).parent.as_posix() for n in self.names]
            if any(p == "." for p in self.folders):
                fail("labels", "'folders' needs every image inside a "
                     "class sub-folder")
            self.classes = sorted(set(self.folders))

    def resolve_labels(self, class_names: list[str] | None, n_outputs: int, required: bool) -> list[str]:
        """Turn class folders into the model's class indices: a folder named like one of ``class_names``
        (:func:`.labels.class_key`: case, '_', '-' and '/' ignored) or a class index 0..n_outputs-1.  Images of
        any other folder get no label; when ``required`` (--target label) such folders are refused.  When most
        folders name no class of the model, the few that do are another label space's homonyms (Fashion's
        'Sandal' is not ImageNet's 'sandal'): no folder is mapped.  Returns the folders without a label."""
        if self.folders is None:
            return []
        lookup: dict[str, int] = {}
        for i, c in enumerate(class_names or []):
            lookup.setdefault(class_key(c), i)
        self.label_map = {}
        for f in self.classes:
            k = class_key(Path(f).name)
            idx = lookup.get(k, int(k) if k.isdigit() and int(k) < n_outputs else None)
            self.label_map[f] = idx
        unmatched = [f for f, i in self.label_map.items() if i is None]
        if unmatched and 2 * len(unmatched) > len(self.label_map) and not required:
            self.label_map = dict.fromkeys(self.label_map)        # a foreign label space: no homonym is mapped
            unmatched = list(self.label_map)
        if unmatched and required:
            example = f" such as {', '.join(repr(c) for c in class_names[:3])}" if class_names else ""
            raise ValueError(
                f"spectral_xai audit: option 'labels': the class folders {unmatched} are neither class names of "
                f"the model{example} nor class indices 0..{n_outputs - 1}, so --target label cannot explain "
                "them; rename the folders, or use --target pred")
        self.labels = [self.label_map[f] for f in self.folders]
        return unmatched

    def has_labels(self) -> bool:
        return self.labels is not None and any(lab is not None for lab in self.labels)

    def __len__(self) -> int:
        return len(self.names)

    def fingerprint(self) -> str:
        """sha256 over (name, byte size or built-in content hash, label) of every item, in order."""
        h = hashlib.sha256(f"{self.source if self.root is None else 'folder'}|{self.size}|{self.channels}".encode())
        for i, name in enumerate(self.names):
            if self.root is not None:
                try:
                    size = (self.root / name).stat().st_size
                except OSError:
                    size = -1
            elif self._arrays is not None:
                size = hashlib.sha256(self._arrays[i].numpy().tobytes()).hexdigest()[:16]
            else:
                size = 0
            label = None if self.labels is None else self.labels[i]
            h.update(f"\n{name}|{size}|{label}".encode())
        return h.hexdigest()

    def _load(self, i: int) -> torch.Tensor:
        if self._arrays is not None:
            return to_square(self._arrays[i, 0].numpy(), self.size, self.channels)
        if self.root is None:
            from skimage import data as skdata

            return to_square(getattr(skdata, self.names[i])(), self.size, self.channels)
        from PIL import Image

        with Image.open(self.root / self.names[i]) as im:
            im.load()
            return square_image(im, self.size, self.channels)

    def __getitem__(self, i: int) -> AuditItem:
        label = None if self.labels is None or self.labels[i] is None else int(self.labels[i])
        try:
            img, error = self._load(i), ""
            if not bool(torch.isfinite(img).all()):
                raise ValueError("non-finite pixel values")
        except Exception as err:  # noqa: BLE001 - any decoding failure becomes a failed row
            img, error = torch.zeros(self.channels, self.size, self.size), f"{type(err).__name__}: {err}"
        return AuditItem(i, img, label, error)


AuditDataset = FolderDataset      # the name it had before the sources were split by kind


def square_image(im, size: int, channels: int) -> torch.Tensor:
    """A PIL image -> (channels, size, size) float32 in [0, 1]: converted to L or RGB, then :func:`to_square`
    (the folder path's decoding, also used for the images of a user's dataset).  A one-channel image of more
    than 8 bits (modes I;16*, I, F) is scaled by its bit depth instead (:func:`wide_gray`), not clipped."""
    if im.mode.startswith("I") or im.mode == "F":
        return to_square(wide_gray(im), size, channels)
    return to_square(np.asarray(im.convert("L" if channels == 1 else "RGB")), size, channels)


def wide_gray(im) -> np.ndarray:
    """A PIL image of mode I;16* (16 bits), I (32-bit integers) or F (floats) -> (H, W) float32 in [0, 1].

    I;16*: divided by 65535.  I: divided by 65535 when every value is in [0, 65535] (16-bit data, as Pillow
    decodes a 16-bit PNG or TIFF), else by 2**31 - 1; negative values are refused.  F: kept when in [0, 1],
    else refused (normalised data cannot be told from pixel values)."""
    a = np.asarray(im)
    if im.mode.startswith("I;16"):
        return a.astype(np.float32) / np.float32(65535.0)
    if im.mode == "F":
        a = a.astype(np.float32)
        if not np.isfinite(a).all() or a.size and (a.min() < 0 or a.max() > 1):
            raise ValueError(f"a float (mode F) image must hold values in [0, 1], got "
                             f"[{np.nanmin(a):.3g}, {np.nanmax(a):.3g}]")
        return a
    a = a.astype(np.int64)
    if a.size and a.min() < 0:
        raise ValueError(f"a 32-bit integer (mode I) image with negative values (min {a.min()}) has no "
                         "pixel scale")
    scale = 65535.0 if not a.size or a.max() <= 65535 else float(2**31 - 1)
    return (a / scale).astype(np.float32)


