"""The audit: plan the shards, check or write the manifest, stream the pending shards of this rank through a
DataLoader into the engine, write every finished shard atomically, then (rank 0) merge the table and write
the report.  ``run_audit(AuditConfig(...))`` is the whole job; the CLI only builds the config.
``run_audit(cfg, dataset=..., model=...)`` audits a user's dataset and model objects instead of cfg.data and
cfg.model (:mod:`.items`, :mod:`.hf`, :func:`.model.given_model`)."""
from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from ..model_calls import auto_batch_size
from ..atomic_io import write_json
from ..environment import environment_info
from . import distributed
from .compute import audit_batch, failed_row
from .config import AuditConfig
from .data import AuditDataset, collate
from .store import (finished_shards, merge_table, read_shard_rows, remove_stale_temporaries, shard_path,
                    shard_plan, write_shard)


class RunDirError(ValueError):
    """The run directory cannot take this run (a different configuration or dataset, or no --resume)."""


def _manifest(cfg: AuditConfig, dataset: AuditDataset, classes, plan, world: int, device: torch.device,
              fingerprint: str) -> dict:
    from .. import __version__

    return {
        "format": "spectral_xai.audit/1", "spectral_xai": __version__, "key": cfg.key(),
        "key_fields": cfg.key_fields(), "config": cfg.to_dict(),
        "dataset": {"source": dataset.source, "n_images": len(dataset), "fingerprint": dataset.fingerprint(),
                    "label_classes": dataset.classes, "label_map": dataset.label_map,
                    "dataset_id": getattr(dataset, "dataset_id", None), "content_check": _content_check(dataset)},
        "model": {"spec": cfg.model, "weights": cfg.weights, "fingerprint": fingerprint},
        "output_classes": classes,
        "shards": {"size": cfg.shard_size, "count": len(plan)},
        "world_size": world, "environment": environment_info(device),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _content_check(dataset) -> str:
    """How the run's dataset content is identified (the manifest's dataset.content_check)."""
    if dataset.root is not None:
        return "file names, sizes and labels"
    if getattr(dataset, "checks_items", False):
        return "per-item sha256 digests, stored in each shard and checked on resume"
    if getattr(dataset, "dataset_id", None) is not None:
        return "the dataset_id given"
    return "the built-in's content"


def check_run_dir(cfg: AuditConfig, manifest: dict) -> str | None:
    """None when the run directory can take this run (writing the manifest if new), else the reason."""
    import json

    run_dir = Path(cfg.out)
    path = run_dir / "manifest.json"
    if path.exists():
        if not cfg.resume:
            return (f"{run_dir} already holds an audit run; pass --resume to continue it, or choose another "
                    "--out")
        old = json.loads(path.read_text())
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
    if run_dir.exists() and any(p.name != ".gitkeep" for p in run_dir.iterdir()):
        return f"{run_dir} exists and is not an audit run directory (no manifest.json); choose another --out"
    write_json(manifest, path)
    return None


def _device(cfg: AuditConfig, ranks: distributed.Ranks) -> torch.device:
    kind = cfg.resolved_device_type()
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("spectral_xai audit: option 'device': CUDA is not available")
        return torch.device("cuda", ranks.local_rank if ranks.world > 1 else torch.cuda.current_device())
    return torch.device("cpu")


class _Progress:
    """Rank 0's progress unless --quiet: a tqdm bar (images/s, ETA) on a terminal, else one line per shard
    on stderr with the rate and ETA, so a log shows the run advancing."""

    def __init__(self, total: int, n_shards: int, cfg: AuditConfig, ranks: distributed.Ranks):
        from tqdm.auto import tqdm

        self.show = ranks.is_main and not cfg.quiet
        self.tty = sys.stderr.isatty()
        self.total, self.n_shards, self.done, self.shards = total, n_shards, 0, 0
        self.t0 = time.perf_counter()
        self.bar = tqdm(total=total, unit="img", desc="audit", disable=not (self.show and self.tty),
                        dynamic_ncols=True, smoothing=0.1)

    def update(self, n: int) -> None:
        self.bar.update(n)
        self.done += n
        self.shards += 1
        if self.show and not self.tty:
            elapsed = time.perf_counter() - self.t0
            rate = self.done / elapsed if elapsed > 0 else float("inf")
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            print(f"audit: shard {self.shards}/{self.n_shards}, {self.done}/{self.total} images, {rate:.3g} img/s, "
                  f"elapsed {_duration(elapsed)}, ETA {_duration(eta)}", file=sys.stderr, flush=True)

    def close(self) -> None:
        self.bar.close()


def _duration(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def _log(cfg: AuditConfig, ranks: distributed.Ranks, msg: str) -> None:
    if ranks.is_main and not cfg.quiet:
        print(msg, flush=True)


def run_audit(cfg: AuditConfig, dataset=None, model=None, *, dataset_id: str | None = None) -> dict:
    """Run (or resume) the audit of ``cfg``; returns a summary dict (rank 0: with the merged ``table`` as a
    pandas DataFrame, read back from metrics.parquet).

    ``dataset``: any map-style dataset whose items are an image, ``(image, label)`` or a dict with
    "image"/"img"/"pixel_values" and "label" (PIL images, (H, W[, C]) uint8 arrays or (C, H, W) float tensors
    in [0, 1]; cropped and resized as a folder's files), or a ``datasets.Dataset``; it replaces cfg.data.
    Its items are hashed as they stream and a resume re-checks the finished shards' items, unless
    ``dataset_id`` (a string naming this exact data) is given.  Labels are class indices of the model.
    ``model``: an ``nn.Module`` (outputs may be Hugging Face objects with ``.logits``); it replaces cfg.model,
    runs without a normalisation unless cfg sets normalize/mean/std, and is left as it was (modes restored;
    a copy is moved when it is not on the audit's device and dtype)."""
    cfg.validate()
    if dataset_id is not None and dataset is None:
        raise ValueError("spectral_xai audit: argument 'dataset_id': names a dataset given with dataset=")
    if dataset is not None:
        cfg = dataclasses.replace(cfg, data=f"python:{type(dataset).__qualname__}")
    if model is not None:
        cfg = dataclasses.replace(cfg, model=f"python:{type(model).__qualname__}")
    from .model import with_model_defaults

    cfg = with_model_defaults(cfg, model).validate()
    ranks = distributed.init(cfg.resolved_device_type())
    try:
        with contextlib.ExitStack() as stack:
            if model is not None:
                from .model import given_model

                model = stack.enter_context(given_model(cfg, model, _device(cfg, ranks)))
            return _run(cfg, ranks, dataset, model, dataset_id)
    finally:
        distributed.finish(ranks)


def open_dataset(cfg: AuditConfig, dataset=None, dataset_id: str | None = None):
    """The audit's dataset: ``dataset`` (a user's object), ``hf:PATH``, or a folder or built-in
    (:class:`AuditDataset`)."""
    channels = 1 if cfg.grayscale else 3
    from . import hf

    if dataset is not None and hf.is_hf_dataset(dataset):
        ds = hf.choose_split(dataset, cfg.split, "the dataset given")
        return hf.hf_items(ds, cfg.size, channels, limit=cfg.limit, source=cfg.data, option="dataset",
                           image_column=cfg.image_column, label_column=cfg.label_column, dataset_id=dataset_id)
    if dataset is not None:
        from .items import ItemDataset

        return ItemDataset(dataset, cfg.size, channels, limit=cfg.limit, source=cfg.data, option="dataset",
                           image_key=cfg.image_column, label_key=cfg.label_column, dataset_id=dataset_id)
    if cfg.data.startswith(hf.PREFIX):
        ds = hf.load_hf(cfg.data[len(hf.PREFIX):], cfg.split)
        return hf.hf_items(ds, cfg.size, channels, limit=cfg.limit, source=cfg.data, option="data",
                           image_column=cfg.image_column, label_column=cfg.label_column)
    if cfg.data.startswith("python:"):
        raise ValueError(f"spectral_xai audit: option 'data': this run was started from Python with a dataset "
                         f"object ({cfg.data[len('python:'):]}); resume it from Python: run_audit(cfg, "
                         "dataset=..., model=...)")
    return AuditDataset(cfg.data, cfg.size, channels, cfg.labels, cfg.limit)


def _prepare(cfg: AuditConfig, ranks: distributed.Ranks, device: torch.device, given_dataset=None,
             given_model=None, dataset_id=None):
    """Everything that can fail before a file is written: the data, the model, one image through the model,
    the channels, the labels, the target, and (torchrun) that every rank built the same model and sees a
    dataset of the same fingerprint.  Returns (dataset, model, output class names, the model's fingerprint)."""
    from .model import check_model, load_model, model_classes, model_fingerprint

    dataset = open_dataset(cfg, given_dataset, dataset_id)
    model = load_model(cfg, device) if given_model is None else given_model
    fingerprint = _same_model_everywhere(
        ranks, model_fingerprint(cfg if given_model is None else None, model), device)
    _same_data_everywhere(ranks, dataset.fingerprint(), device)
    first = dataset[0]
    if first[3] and getattr(dataset, "option", None):                  # a user's dataset: refuse early
        raise ValueError(f"spectral_xai audit: argument '{dataset.option}': its first item cannot be audited: "
                         f"{first[3]}")
    x = first[1].unsqueeze(0).to(device=device, dtype=getattr(torch, cfg.dtype))
    n_outputs = check_model(cfg, model, x)
    classes = model_classes(cfg, model, dataset)
    if classes is not None and len(classes) != n_outputs:
        _log(cfg, ranks, f"audit: note: {len(classes)} class names for {n_outputs} outputs; names not used")
        classes = None
    unmatched = dataset.resolve_labels(classes, n_outputs, required=cfg.target == "label")
    if unmatched:
        _log(cfg, ranks, f"audit: note: the folders {unmatched} match no class of the model: their images have "
                         "no label")
    if cfg.target == "label":
        if not dataset.has_labels():
            raise ValueError("spectral_xai audit: option 'target': 'label' needs labels: --labels folders with "
                             "class folders, a labelled built-in (fashion-mnist), or a dataset with labels "
                             "((image, label) items, a label column)")
        top = max((lab for lab in dataset.labels if lab is not None), default=-1) if dataset.labels else -1
        if top >= n_outputs:
            raise ValueError(f"spectral_xai audit: option 'target': the labels go up to {top} but the model has "
                             f"{n_outputs} outputs")
    return dataset, model, classes, fingerprint


def _same_model_everywhere(ranks: distributed.Ranks, fingerprint: str, device: torch.device) -> str:
    """``fingerprint`` when every rank built the same model, else a ValueError (on every rank) naming the
    ranks whose model differs from rank 0's."""
    digests = distributed.gather_digest(ranks, fingerprint, device)
    odd = [k for k, d in enumerate(digests) if d != digests[0]]
    if odd:
        shown = ", ".join(f"rank {k}: {digests[k]}" for k in odd)
        raise ValueError(f"spectral_xai audit: option 'model': the processes built different models: rank 0's "
                         f"fingerprint is {digests[0]}, but {shown}; every rank must load the same weights (a "
                         "factory must not depend on the rank, a --weights file must be the same everywhere)")
    return fingerprint


def _same_data_everywhere(ranks: distributed.Ranks, fingerprint: str, device: torch.device) -> None:
    """A ValueError (on every rank) when the ranks' datasets have different fingerprints."""
    digests = distributed.gather_digest(ranks, fingerprint, device)
    odd = [k for k, d in enumerate(digests) if d != digests[0]]
    if odd:
        raise ValueError(f"spectral_xai audit: option 'data': the processes see different datasets (ranks {odd} "
                         "differ from rank 0: another length, folder or preprocessing); every rank must read "
                         "the same data")


def _check_items(cfg: AuditConfig, dataset, run_dir: Path, spans) -> str | None:
    """For a dataset checked item by item: None when every item of the finished shards ``spans`` has the
    digest its shard recorded, else the reason (naming the first changed item)."""
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


def _run(cfg: AuditConfig, ranks: distributed.Ranks, given_dataset=None, given_model=None,
         dataset_id=None) -> dict:
    device = _device(cfg, ranks)
    dataset, model, classes, fingerprint = _prepare(cfg, ranks, device, given_dataset, given_model, dataset_id)
    plan = shard_plan(len(dataset), cfg.shard_size)
    run_dir = Path(cfg.out)
    problem = None
    if ranks.is_main:
        try:
            problem = check_run_dir(cfg, _manifest(cfg, dataset, classes, plan, ranks.world, device, fingerprint))
            remove_stale_temporaries(run_dir)
        except OSError as err:
            problem = f"cannot use {run_dir}: {err}"
    problem = distributed.broadcast(ranks, problem)
    if problem:
        raise RunDirError(f"spectral_xai audit: {problem}")
    done = finished_shards(run_dir, plan)
    mine = [span for k, span in enumerate(plan) if k % ranks.world == ranks.rank]
    if getattr(dataset, "checks_items", False) and done:
        problems = distributed.gather(ranks, _check_items(cfg, dataset, run_dir, [s for s in mine if s in done]))
        problem = next((p for p in problems if p), None)
        if problem:
            raise RunDirError(f"spectral_xai audit: {problem}")
    pending = [span for span in mine if span not in done]
    n_pending = sum(b - a for a, b in pending)
    _log(cfg, ranks, f"audit: {len(dataset)} images in {len(plan)} shards, {len(done)} already done; "
                     f"{ranks.world} process(es) on {device.type}")
    stats = {"rank": ranks.rank, "images": 0, "shards": 0, "seconds": 0.0, "compute_seconds": 0.0}
    if pending:
        stats.update(_process(cfg, ranks, device, model, dataset, run_dir, pending, n_pending))
    all_stats = distributed.gather(ranks, stats)
    distributed.barrier(ranks)
    summary = {"run_dir": str(run_dir), "n_images": len(dataset), "shards": len(plan), "ranks": all_stats}
    if ranks.is_main:
        import pandas as pd

        table = pd.read_parquet(merge_table(run_dir, plan))
        _record_session(run_dir, all_stats)
        summary["table"] = table
        failed = int((table["status"] != "ok").sum())
        _log(cfg, ranks, f"audit: table of {len(table)} images ({failed} failed) -> {run_dir / 'metrics.parquet'}")
        if cfg.report:
            from .report import build_report

            path = build_report(run_dir)
            _log(cfg, ranks, f"audit: report -> {path}")
    distributed.barrier(ranks)
    return summary


def _record_session(run_dir: Path, all_stats: list[dict]) -> None:
    """Append this invocation's per-rank timing to RUN_DIR/sessions.json (atomic)."""
    import json

    path = run_dir / "sessions.json"
    sessions = json.loads(path.read_text()) if path.exists() else []
    images = sum(s["images"] for s in all_stats)
    wall = max(s["seconds"] for s in all_stats)
    compute = max(s["compute_seconds"] for s in all_stats)
    sessions.append({"finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "ranks": all_stats,
                     "images": images, "images_per_s": images / wall if wall > 0 else None,
                     "compute_images_per_s": images / compute if compute > 0 else None})
    write_json(sessions, path)


def _process(cfg, ranks, device, model, dataset, run_dir, pending, n_pending) -> dict:
    """Compute and write this rank's pending shards; returns images, shards and seconds spent."""
    workers = cfg.num_workers if cfg.num_workers is not None else (0 if dataset.root is None else 2)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=[list(range(a, b)) for a, b in pending], collate_fn=collate, num_workers=workers,
        pin_memory=device.type == "cuda", prefetch_factor=2 if workers > 0 else None)
    dtype = getattr(torch, cfg.dtype)
    # Every image has the same size: probe the model's memory per row once for the whole run.
    probe = torch.zeros(1, 1 if cfg.grayscale else 3, cfg.size, cfg.size, device=device, dtype=dtype)
    batch_size = cfg.batch_size or auto_batch_size(model, probe, None)
    stats = {"images": 0, "shards": 0, "seconds": 0.0, "compute_seconds": 0.0}
    t0 = time.perf_counter()
    # Shards are written by one background thread while the next shard computes; at most two writes
    # are pending (bounded memory).  A write lost to a crash leaves no file: the shard is redone on resume.
    bar = _Progress(n_pending, len(pending), cfg, ranks)
    with contextlib.closing(bar), ThreadPoolExecutor(1, thread_name_prefix="shard-writer") as io:
        pending_writes: list = []
        for span, (idx, imgs, labels, errors, digests) in zip(pending, loader):
            tc = time.perf_counter()
            rows, tensors = _shard(cfg, model, device, dtype, dataset, idx, imgs, labels, errors, batch_size)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            stats["compute_seconds"] += time.perf_counter() - tc
            while len(pending_writes) >= 2:
                pending_writes.pop(0).result()
            meta = {"key": cfg.key(), "span": list(span)}
            if digests is not None:
                meta["digests"] = digests                       # a user's items: checked on resume
            pending_writes.append(io.submit(write_shard, run_dir, span, tensors, rows, meta))
            stats["images"] += len(rows)
            stats["shards"] += 1
            bar.update(len(rows))
        for f in pending_writes:
            f.result()
    stats["seconds"] = time.perf_counter() - t0
    return stats


def _shard(cfg, model, device, dtype, dataset, idx, imgs, labels, errors, batch_size):
    """One shard's rows (in image order) and the tensors to store."""
    ok = [k for k, e in enumerate(errors) if not e]
    names = [dataset.names[i] for i in idx.tolist()]
    rows_by_index = {}
    tensors: dict[str, torch.Tensor] = {}
    for k, e in enumerate(errors):
        if e:
            rows_by_index[int(idx[k])] = failed_row(cfg, int(idx[k]), names[k], int(labels[k]), e)
    if ok:
        sel = torch.tensor(ok)
        x = (imgs if len(ok) == len(errors) else imgs[sel]).to(device=device, dtype=dtype, non_blocking=True)
        rows, tensors = audit_batch(model, x, idx[sel], labels[sel], [names[k] for k in ok], cfg, batch_size)
        rows_by_index.update({r["index"]: r for r in rows})
        tensors["maps_index"] = idx[sel].clone()
    for k in ok:
        i = int(idx[k])
        if i < cfg.panels:
            tensors[f"image/{i}"] = (imgs[k] * 255).round().to(torch.uint8)
    return [rows_by_index[i] for i in sorted(rows_by_index)], tensors
