"""Whose classes a dataset's labels are.  Labels are stored as the model's class indices; a dataset whose
labels index its own class names (a built-in such as fashion-mnist, a ClassLabel column) is matched to the
model's declared class names by name (case, '_', '-' and '/' ignored: folder ``T-shirt_top`` is
``T-shirt/top``), never by index, unless the user says the labels are the model's indices.  A label space the
model does not have is refused with --target label, and dropped (with a note) with --target pred."""
from __future__ import annotations

import math
import warnings

from ..errors import fail

TINY_CONFIDENCE = 0.01      # an explained class below 1 % probability is "tiny"


def class_key(name: str) -> str:
    """A class name as matched: lower case, '_', '-' and '/' read as spaces, spaces collapsed."""
    return " ".join(name.replace("_", " ").replace("-", " ").replace("/", " ").lower().split())


def _shown(names, k: int = 4) -> str:
    names = list(names)
    return ", ".join(repr(n) for n in names[:k]) + (f", ... ({len(names)} in all)" if len(names) > k else "")


def match_label_space(dataset, declared: list[str] | None, target: str, by_index: bool) -> str | None:
    """Turn the labels of ``dataset`` (indices into ``dataset.classes``; class folders are matched by the
    folder dataset itself) into the model's class indices by name, given the names the model ``declared``
    (None: it declares none, its outputs are taken to be the dataset's classes).  A foreign label space:
    ValueError with --target label, else the labels are dropped and a note is returned."""
    classes = getattr(dataset, "classes", None)
    if by_index or declared is None or not classes or getattr(dataset, "folders", None) is not None \
            or dataset.labels is None:
        return None
    lookup: dict[str, int] = {}
    for i, c in enumerate(declared):
        lookup.setdefault(class_key(c), i)
    to_model = [lookup.get(class_key(c)) for c in classes]
    missing = [c for c, m in zip(classes, to_model) if m is None]
    if not missing:
        dataset.labels = [None if lab is None else to_model[lab] for lab in dataset.labels]
        return None
    why = (f"the dataset's labels are its classes ({_shown(classes)}) but the model's classes are "
           f"{_shown(declared)}; {len(missing)} of the dataset's {len(classes)} classes ({_shown(missing)}) are not "
           "classes of the model, so the labels belong to another label space and are not read as model indices")
    if target == "label":
        fail("target", f"{why}: audit with a model of these classes, use --target pred, or give "
                       "--labels-are-model-indices if the labels are the model's class indices after all")
    dataset.labels = [None] * len(dataset.labels)
    return f"audit: note: {why}; the images are audited without labels"


def warn_tiny_confidence(confidence, target: str) -> None:
    """With --target label: a UserWarning when the explained class has probability below TINY_CONFIDENCE for
    most (more than half) of the audited images ``confidence`` (NaN: failed images, not counted)."""
    values = [float(c) for c in confidence if c is not None and not math.isnan(float(c))]
    tiny = sum(c < TINY_CONFIDENCE for c in values)
    if target == "label" and values and tiny > len(values) / 2:
        warnings.warn(f"spectral_xai audit: the explained class (the label) has a probability below "
                      f"{TINY_CONFIDENCE:g} for {tiny} of {len(values)} images: the model does not see these "
                      "classes; are the labels the model's classes?", UserWarning, stacklevel=2)
