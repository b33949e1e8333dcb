"""A user's own dataset in the audit: any map-style dataset (``len`` and ``[i]``) whose items are an image,
``(image, label)`` or a dict with an image (``"image"``, ``"img"`` or ``"pixel_values"``) and a label
(``"label"``, ``"labels"`` or ``"fine_label"``).

An image is a PIL image, an (H, W[, C]) uint8/uint16/float numpy array, a (C, H, W) float tensor in [0, 1]
or a (C, H, W) uint8 tensor; it is centre-cropped and resized exactly as a folder's files are
(:func:`spectral_xai.zoo.photos.to_square`).  Float images outside [0, 1] (already normalised) are refused:
the audit explains the image in [0, 1] and puts the normalisation in front of the model.

Identity: the dataset cannot be hashed up front without reading it all, so its fingerprint is its length
and the preprocessing (or an id the user passes), and every item's *content digest* (sha256 of the item as
the dataset returns it: image bytes, shape, dtype, and its label) is computed as the item streams and
stored in its shard; a resume re-reads the finished shards' items and refuses when one differs.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch

from ...zoo.photos import to_square
from ..errors import fail
from . import AuditItem
from .folders import square_image

IMAGE_KEYS = ("image", "img", "pixel_values")
LABEL_KEYS = ("label", "labels", "fine_label")


def as_square(image, size: int, channels: int) -> torch.Tensor:
    """One image of a user's dataset -> (channels, size, size) float32 in [0, 1] (see the module docstring)."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return square_image(image, size, channels)
    if isinstance(image, torch.Tensor):
        a = image.detach().cpu()
        if a.dim() == 3 and a.shape[0] in (1, 3, 4):
            a = a.permute(1, 2, 0)
        elif a.dim() != 2:
            raise ValueError(f"expected a (C, H, W) image tensor with C in 1, 3, 4, got shape {tuple(a.shape)}")
        a = a.numpy() if a.dtype != torch.bfloat16 else a.float().numpy()
    else:
        a = np.asarray(image)
        if a.dtype == object or not (a.dtype.kind in "fub"):
            raise TypeError(f"expected a PIL image, a numpy array or a tensor, got {type(image).__name__}")
        if a.ndim == 3 and a.shape[-1] not in (1, 3, 4) and a.shape[0] in (1, 3, 4):
            a = np.moveaxis(a, 0, -1)                                  # (C, H, W) array, e.g. pixel_values
        if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (1, 3, 4)):
            raise ValueError(f"expected an (H, W) or (H, W, C) image array with C in 1, 3, 4, got shape {a.shape}")
    if a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise ValueError("non-finite pixel values")
        lo, hi = float(a.min()), float(a.max())
        if lo < 0 or hi > 1:
            raise ValueError(f"float pixel values must be in [0, 1], got [{lo:.3g}, {hi:.3g}]: pass the images "
                             "before normalisation and give the audit normalize/mean/std instead")
    return to_square(a, size, channels)


def item_label(value) -> int | None:
    """A label as the audit stores it: an int >= 0, or None for none (None, or a negative label)."""
    if value is None:
        return None
    if isinstance(value, (torch.Tensor, np.ndarray, np.generic)) and np.asarray(value).size == 1:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"expected an integer class label, got {value!r}")
    return int(value) if value >= 0 else None


def _hash_image(h, image) -> None:
    from PIL import Image

    if isinstance(image, Image.Image):
        h.update(f"pil|{image.mode}|{image.size}|".encode())
        h.update(image.tobytes())
        return
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        h.update(f"tensor|{image.dtype}|{tuple(image.shape)}|".encode())
        h.update(memoryview(image.contiguous().reshape(-1).view(torch.uint8).numpy()))
        return
    a = np.ascontiguousarray(np.asarray(image))
    h.update(f"array|{a.dtype.str}|{a.shape}|".encode())
    h.update(a.tobytes() if a.dtype != object else repr(a.tolist()).encode())


class ItemDataset(torch.utils.data.Dataset):
    """The audit's view of a user's dataset: :class:`~spectral_xai.audit.sources.AuditItem` with a digest;
    ``names`` (N,) the items' positions as strings.

    ``labels`` (N,) when known without reading the images (a Hugging Face label column), else None: then
    each label comes with its item.  ``classes``: the labels' class names (a ``ClassLabel``), or None.
    ``dataset_id``: the user's id of the data; it replaces the per-item check on resume."""

    root = None          # not a folder (the runner's defaults for workers, labels and class names)
    folders = None
    label_map = None

    def __init__(self, items, size: int, channels: int, *, limit: int | None = None, source: str = "python",
                 option: str = "dataset", image_key: str | None = None, label_key: str | None = None,
                 classes: list[str] | None = None, labels: list[int] | None = None,
                 dataset_id: str | None = None):
        if not (hasattr(items, "__len__") and hasattr(items, "__getitem__")):
            fail(option, f"expected a map-style dataset (with len() and [i]), got {type(items).__name__}",
                 TypeError, scope="argument")
        n = len(items) if limit is None else min(len(items), limit)
        if n == 0:
            fail(option, "the dataset is empty", scope="argument")
        if dataset_id is not None and (not isinstance(dataset_id, str) or not dataset_id):
            fail("dataset_id", f"expected a non-empty string, got {dataset_id!r}", TypeError, scope="argument")
        self.items, self.size, self.channels = items, size, channels
        self.source, self.option, self.dataset_id = source, option, dataset_id
        self.image_key, self.label_key = image_key, label_key
        self.names = [str(i) for i in range(n)]
        self.labels = None if labels is None else [item_label(v) for v in list(labels)[:n]]
        self.classes = list(classes) if classes else None

    def __len__(self) -> int:
        return len(self.names)

    @property
    def checks_items(self) -> bool:
        """True when a resume must check the finished shards' item digests (no dataset_id given)."""
        return self.dataset_id is None

    def fingerprint(self) -> str:
        """sha256 over the source kind, the length, the preprocessing, the item keys and the dataset id (the
        items' content is checked shard by shard, see :meth:`digest`)."""
        kind = self.source.split(":", 1)[0]
        return hashlib.sha256(f"items|{kind}|{len(self)}|{self.size}|{self.channels}|{self.image_key}|"
                              f"{self.label_key}|{self.dataset_id}".encode()).hexdigest()

    def has_labels(self) -> bool:
        if self.labels is not None:
            return any(lab is not None for lab in self.labels)
        return self[0].label is not None

    def resolve_labels(self, class_names, n_outputs: int, required: bool) -> list[str]:
        """Labels are class indices of the model already: nothing to match (the folder path's hook)."""
        return []

    def _split(self, item):
        """(image, label value) of one item."""
        if isinstance(item, dict):
            key = self.image_key or next((k for k in IMAGE_KEYS if k in item), None)
            if key is None or key not in item:
                want = repr(self.image_key) if self.image_key else " or ".join(map(repr, IMAGE_KEYS))
                raise KeyError(f"the item has no image {want}; its keys are {sorted(item)}")
            lab = self.label_key or next((k for k in LABEL_KEYS if k in item), None)
            if self.label_key and self.label_key not in item:
                raise KeyError(f"the item has no label {self.label_key!r}; its keys are {sorted(item)}")
            return item[key], (item[lab] if lab else None)
        if isinstance(item, (tuple, list)):
            if len(item) not in (1, 2):
                raise ValueError(f"expected an image, (image, label) or a dict, got a {type(item).__name__} of "
                                 f"{len(item)} elements")
            return item[0], (item[1] if len(item) == 2 else None)
        return item, None

    def digest(self, i: int) -> str:
        """The content digest of item i as the dataset returns it (no decoding beyond the dataset's own)."""
        return self._fetch(i)[2]

    def _fetch(self, i: int):
        """(image, label value, digest) of item i; a failing item gives (None, None, digest of the error)."""
        h = hashlib.sha256()
        try:
            image, label = self._split(self.items[i])
            _hash_image(h, image)
            plain = np.asarray(label).tolist() if isinstance(label, (torch.Tensor, np.ndarray, np.generic)) else label
            h.update(f"|label|{plain!r}".encode())
            return image, label, h.hexdigest()[:32]
        except Exception as err:  # noqa: BLE001 - the failure is recorded as a failed row
            h.update(f"error|{type(err).__name__}: {err}".encode())
            return err, None, h.hexdigest()[:32]

    def __getitem__(self, i: int) -> AuditItem:
        image, label, digest = self._fetch(i)
        error, lab = "", None
        try:
            if isinstance(image, Exception):
                raise image
            lab = item_label(label) if self.labels is None else self.labels[i]
            img = as_square(image, self.size, self.channels)
        except Exception as err:  # noqa: BLE001 - any item failure becomes a failed row
            img, error = torch.zeros(self.channels, self.size, self.size), f"{type(err).__name__}: {err}"
        return AuditItem(i, img, lab, error, digest)
