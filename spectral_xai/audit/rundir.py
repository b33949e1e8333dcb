"""The run directory: its file names, manifest.json (the only module that opens it), sessions.json, the
checks that a directory can take a run, and the re-check of a user's items on resume.

RUN_DIR/manifest.json     configuration, key, dataset fingerprint, model fingerprint, environment
RUN_DIR/sessions.json     every invocation's per-rank timing (a first run, then each resume)
RUN_DIR/shards/           the shard files (:mod:`.store`)
RUN_DIR/metrics.parquet   the merged per-image table (:mod:`.store`, columns: :mod:`.columns`)
RUN_DIR/report.html       the self-contained report (:mod:`.report`)
"""
from __future__ import annotations

import json
import time
from dataclasses import fields
from pathlib import Path

import torch

from ..atomic_io import write_json
from ..environment import environment_info
from .config import RUNTIME_FIELDS, AuditConfig

MANIFEST, SESSIONS, TABLE, REPORT, SHARD_DIR = ("manifest.json", "sessions.json", "metrics.parquet", "report.html",
                                                "shards")
FORMAT = "spectral_xai.audit/1"


class RunDirError(ValueError):
    """The run directory cannot take this run (a different configuration or dataset, or no --resume)."""


def read_manifest(run_dir: str | Path) -> dict | None:
    """RUN_DIR/manifest.json as a dict, or None when the directory holds no run."""
    path = Path(run_dir) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


def new_manifest(cfg: AuditConfig, dataset, classes, n_shards: int, world: int, device: torch.device,
                 fingerprint: str) -> dict:
    """The manifest of a run of ``cfg`` over ``dataset`` (see :mod:`.sources`) with the model's output class
    names ``classes`` and ``fingerprint``."""
    from .. import __version__

    return {
        "format": FORMAT, "spectral_xai": __version__, "key": cfg.key(),
        "key_fields": cfg.key_fields(), "config": cfg.to_dict(),
        "dataset": {"source": dataset.source, "n_images": len(dataset), "fingerprint": dataset.fingerprint(),
                    "label_classes": dataset.classes, "label_map": dataset.label_map,
                    "dataset_id": dataset.dataset_id, "content_check": _content_check(dataset)},
        "model": {"spec": cfg.model, "weights": cfg.weights, "fingerprint": fingerprint},
        "output_classes": classes,
        "shards": {"size": cfg.shard_size, "count": n_shards},
        "world_size": world, "environment": environment_info(device),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _content_check(dataset) -> str:
    """How the run's dataset content is identified (the manifest's dataset.content_check)."""
    if dataset.root is not None:
        return "file names, sizes and labels"
    if dataset.checks_items:
        return "per-item sha256 digests, stored in each shard and checked on resume"
    if dataset.dataset_id is not None:
        return "the dataset_id given"
    return "the built-in's content"


def check_run_dir(cfg: AuditConfig, manifest: dict) -> str | None:
    """None when the run directory can take this run (writing the manifest if new), else the reason."""
    run_dir = Path(cfg.out)
    old = read_manifest(run_dir)
    if old is None:
        if run_dir.exists() and any(p.name != ".gitkeep" for p in run_dir.iterdir()):
            return f"{run_dir} exists and is not an audit run directory (no manifest.json); choose another --out"
        write_json(manifest, run_dir / MANIFEST)
        return None
    if not cfg.resume:
        return f"{run_dir} already holds an audit run; pass --resume to continue it, or choose another --out"
    diffs = [k for k in sorted(set(old.get("key_fields", {})) | set(manifest["key_fields"]))
             if old.get("key_fields", {}).get(k) != manifest["key_fields"].get(k)]
    if diffs:
        shown = ", ".join(f"{k}: {old.get('key_fields', {}).get(k)!r} -> {manifest['key_fields'].get(k)!r}"
                          for k in diffs)
        return (f"refusing to resume into {run_dir}: its run has a different configuration ({shown}), as "
                f"the run's value -> yours. `--out {run_dir} --resume` alone continues with the run's options; "
                "drop or correct these, or choose another --out")
    old_model, new_model = old.get("model", {}).get("fingerprint"), manifest["model"]["fingerprint"]
    if old_model != new_model:
        return (f"refusing to resume into {run_dir}: the model differs from the one it was started on "
                f"(model fingerprint: {old_model} -> {new_model}; other weights, or another model, under the "
                "same --model/--weights); restore that model, or choose another --out")
    if old["dataset"]["fingerprint"] != manifest["dataset"]["fingerprint"]:
        return (f"refusing to resume into {run_dir}: the dataset differs from the one it was started on "
                f"({old['dataset']['n_images']} -> {manifest['dataset']['n_images']} images, or changed files)")
    return None


def run_dir_config(out: str | Path) -> dict | None:
    """The configuration recorded in ``out/manifest.json`` without its runtime knobs, or None when ``out``
    holds no run.  ``--resume`` starts from it, so the original options need not be repeated."""
    path = Path(out) / MANIFEST
    if not path.is_file():
        return None
    try:
        recorded = read_manifest(out)["config"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"spectral_xai audit: option 'resume': cannot read the configuration of {path}: "
                         f"{err}") from None
    names = {f.name for f in fields(AuditConfig)}
    return {k: v for k, v in recorded.items() if k in names and k not in RUNTIME_FIELDS}


def read_sessions(run_dir: str | Path) -> list[dict]:
    """RUN_DIR/sessions.json (empty when missing)."""
    path = Path(run_dir) / SESSIONS
    return json.loads(path.read_text()) if path.exists() else []


def record_session(run_dir: Path, all_stats: list[dict]) -> None:
    """Append this invocation's per-rank timing to RUN_DIR/sessions.json (atomic)."""
    sessions = read_sessions(run_dir)
    images = sum(s["images"] for s in all_stats)
    wall = max(s["seconds"] for s in all_stats)
    compute = max(s["compute_seconds"] for s in all_stats)
    sessions.append({"finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "ranks": all_stats,
                     "images": images, "images_per_s": images / wall if wall > 0 else None,
                     "compute_images_per_s": images / compute if compute > 0 else None})
    write_json(sessions, Path(run_dir) / SESSIONS)


def check_items(cfg: AuditConfig, dataset, run_dir: Path, spans) -> str | None:
    """For a dataset checked item by item: None when every item of the finished shards ``spans`` has the
    digest its shard recorded, else the reason (naming the first changed item)."""
    from .store import read_shard_rows, shard_path

    todo = []
    for span in sorted(spans):
        recorded = read_shard_rows(shard_path(run_dir, span))[1].get("digests")
        if recorded is not None:
            todo += [(i, span, d) for i, d in zip(range(*span), recorded)]
    if not todo:
        return None
    loader = torch.utils.data.DataLoader(_Digests(dataset), batch_size=None, sampler=[i for i, _, _ in todo],
                                         num_workers=cfg.num_workers or 0)
    for (i, span, want), got in zip(todo, loader):
        if got != want:
            return (f"refusing to resume into {run_dir}: the dataset differs from the one it was started on: item "
                    f"{i} ({dataset.names[i]!r}, in {shard_path(run_dir, span).name}) has changed (content digest "
                    f"{want} -> {got}); pass the same data, or choose another --out")
    return None


class _Digests(torch.utils.data.Dataset):
    """A dataset's item digests, without decoding or resizing the images (the resume check)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> str:
        return self.dataset.digest(i)
