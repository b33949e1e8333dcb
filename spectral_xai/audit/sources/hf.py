"""Hugging Face datasets in the audit: ``hf:PATH`` (a ``datasets.Dataset`` or ``DatasetDict`` saved with
``save_to_disk``, a folder of parquet files, or an image folder as ``datasets``' imagefolder reads it) and a
``datasets.Dataset`` object given to ``run_audit``.  The ``datasets`` package is imported only here, when such
a dataset is used.

Columns: the image column is ``image_column`` or the first of image / img / pixel_values (else the first
column of ``Image`` type); the label column is ``label_column`` or the first of label / labels / fine_label
(none: unlabelled).  A ``ClassLabel`` label column gives the class names (the table's ``label_name``).
"""
from __future__ import annotations

from pathlib import Path

from ..errors import fail as _fail
from .items import IMAGE_KEYS, LABEL_KEYS, ItemDataset

PREFIX = "hf:"


def _datasets(option: str = "data"):
    try:
        import datasets
    except ImportError:
        _fail(option, "reading a Hugging Face dataset needs the 'datasets' package (pip install datasets)")
    return datasets


def is_hf_dataset(obj) -> bool:
    """True for a ``datasets.Dataset`` or ``DatasetDict`` (checked without importing ``datasets``)."""
    return type(obj).__module__.startswith("datasets.") and hasattr(obj, "column_names")


def load_hf(path: str, split: str | None = None, cache_dir: str | None = None):
    """The ``datasets.Dataset`` at ``path`` (see the module docstring), its split chosen by :func:`choose_split`.
    Parquet and image folders go through ``datasets.load_dataset`` (its cache: ``cache_dir`` or the default)."""
    root = Path(path).expanduser()
    if not root.is_dir():
        _fail("data", f"hf:{path}: no such directory")
    datasets = _datasets()
    if (root / "dataset_dict.json").is_file() or (root / "state.json").is_file():
        obj = datasets.load_from_disk(str(root))
    elif any(root.rglob("*.parquet")):
        obj = datasets.load_dataset("parquet", data_dir=str(root), cache_dir=cache_dir)
    else:
        from .folders import IMAGE_SUFFIXES

        if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in root.rglob("*")):
            _fail("data", f"hf:{path} is neither a saved dataset (save_to_disk: state.json or dataset_dict.json), "
                          "nor a folder of parquet files or images")
        obj = datasets.load_dataset("imagefolder", data_dir=str(root), cache_dir=cache_dir)
    return choose_split(obj, split, str(path))


def choose_split(obj, split: str | None, where: str):
    """A DatasetDict's ``split`` (default: "train", or its only split); a Dataset as it is (a ``split`` given
    must then be the one it records)."""
    if hasattr(obj, "column_names") and not isinstance(obj.column_names, dict):
        own = getattr(obj, "split", None)
        if split is not None and (own is None or str(own) != split):
            held = f"the {str(own)!r} split" if own is not None else "one dataset without splits"
            _fail("split", f"{where} holds {held}, not {split!r}; drop --split")
        return obj
    names = list(obj)
    if split is None:
        if "train" in names or len(names) == 1:
            split = "train" if "train" in names else names[0]
        else:
            _fail("split", f"{where} has the splits {names} and none is 'train'; choose one with --split")
    if split not in names:
        _fail("split", f"{where} has no split {split!r}; its splits are {names}")
    return obj[split]


def columns(ds, image_column: str | None, label_column: str | None) -> tuple[str, str | None, list[str] | None]:
    """(image column, label column or None, ClassLabel names or None) of ``ds``."""
    datasets = _datasets()
    cols = list(ds.column_names)
    if image_column is not None:
        if image_column not in cols:
            _fail("image_column", f"no column {image_column!r}; the dataset's columns are {cols}")
        image = image_column
    else:
        image = next((c for c in IMAGE_KEYS if c in cols), None) or next(
            (c for c in cols if isinstance(ds.features[c], datasets.Image)), None)
        if image is None:
            _fail("image_column", f"none of {list(IMAGE_KEYS)} nor an Image column among {cols}; name it with "
                                  "--image-column")
    if label_column is not None:
        if label_column not in cols:
            _fail("label_column", f"no column {label_column!r}; the dataset's columns are {cols}")
        label = label_column
    else:
        label = next((c for c in LABEL_KEYS if c in cols), None)
    feature = ds.features[label] if label is not None else None
    names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
    return image, label, names


def hf_items(ds, size: int, channels: int, *, limit: int | None = None, source: str, option: str,
             image_column: str | None = None, label_column: str | None = None,
             dataset_id: str | None = None) -> ItemDataset:
    """The audit's :class:`ItemDataset` of a ``datasets.Dataset``: its image and label columns, the labels read
    from their column up front (no image is decoded for them), ClassLabel names as the classes."""
    image, label, names = columns(ds, image_column, label_column)
    n = len(ds) if limit is None else min(len(ds), limit)
    labels = None
    if label is not None:
        labels = list(ds.select_columns([label])[:n][label])       # in the dataset's order, images untouched
    return ItemDataset(ds, size, channels, limit=limit, source=source, option=option, image_key=image,
                       label_key=label, classes=names, labels=labels, dataset_id=dataset_id)
