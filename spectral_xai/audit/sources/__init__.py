"""Where the audit's images come from: the dataset protocol, its items and batches, and the datasets that
implement it — a folder or built-in (:mod:`.folders`), a user's Python dataset (:mod:`.items`), a Hugging Face
dataset (:mod:`.hf`).

A dataset of the audit is a map-style ``torch.utils.data.Dataset`` of :class:`AuditItem` with:
``source`` (str), ``names`` (N,) (each item's name in the table), ``labels`` (N,) ``int | None`` or None
(unknown before reading the items), ``classes`` (label class names or None), ``label_map`` (class folder ->
class index, or None), ``root`` (the folder, or None), ``fingerprint() -> str``, ``has_labels() -> bool``,
``resolve_labels(class_names, n_outputs, required) -> unmatched folders``, ``checks_items`` (whether a resume
re-checks each item's ``digest(i)``), ``dataset_id`` (the user's id of the data, or None) and ``option`` (the
argument that gave it, for errors; None for a folder or built-in).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import fail


@dataclass
class AuditItem:
    """One item: its position ``index``, ``image`` (C, S, S) float32 in [0, 1] (zeros when it failed),
    ``label`` (a class index of the model, or None), ``error`` (why it could not be read; "" when ok) and
    ``digest`` (its content digest, for a dataset checked item by item; else None)."""

    index: int
    image: torch.Tensor
    label: int | None
    error: str = ""
    digest: str | None = None


@dataclass
class AuditBatch:
    """Items collated: ``index`` (b,) int64, ``images`` (b, C, S, S), ``labels`` and ``errors`` (b,), ``digests``
    (b,) or None when the items carry none."""

    index: torch.Tensor
    images: torch.Tensor
    labels: list[int | None]
    errors: list[str]
    digests: list[str] | None

    def pin_memory(self) -> "AuditBatch":
        """The batch with its images in pinned memory (the DataLoader's ``pin_memory``)."""
        self.images = self.images.pin_memory()
        return self


def collate(items: list[AuditItem]) -> AuditBatch:
    """A list of items -> one :class:`AuditBatch`."""
    digests = [it.digest for it in items]
    return AuditBatch(torch.tensor([it.index for it in items], dtype=torch.int64),
                      torch.stack([it.image for it in items]), [it.label for it in items],
                      [it.error for it in items], None if any(d is None for d in digests) else digests)


def open_dataset(cfg, dataset=None, dataset_id: str | None = None):
    """The audit's dataset of ``cfg`` (an AuditConfig): ``dataset`` (a user's object), ``hf:PATH``, or a folder
    or built-in (:class:`.folders.FolderDataset`)."""
    from . import hf
    from .folders import FolderDataset
    from .items import ItemDataset

    channels = 1 if cfg.grayscale else 3
    if dataset is not None and hf.is_hf_dataset(dataset):
        ds = hf.choose_split(dataset, cfg.split, "the dataset given")
        return hf.hf_items(ds, cfg.size, channels, limit=cfg.limit, source=cfg.data, option="dataset",
                           image_column=cfg.image_column, label_column=cfg.label_column, dataset_id=dataset_id)
    if dataset is not None:
        return ItemDataset(dataset, cfg.size, channels, limit=cfg.limit, source=cfg.data, option="dataset",
                           image_key=cfg.image_column, label_key=cfg.label_column, dataset_id=dataset_id)
    if cfg.data.startswith(hf.PREFIX):
        ds = hf.load_hf(cfg.data[len(hf.PREFIX):], cfg.split)
        return hf.hf_items(ds, cfg.size, channels, limit=cfg.limit, source=cfg.data, option="data",
                           image_column=cfg.image_column, label_column=cfg.label_column)
    if cfg.data.startswith("python:"):
        fail("data", f"this run was started from Python with a dataset "
             f"object ({cfg.data[len('python:'):]}); resume it from Python: run_audit(cfg, "
             "dataset=..., model=...)")
    return FolderDataset(cfg.data, cfg.size, channels, cfg.labels, cfg.limit)
