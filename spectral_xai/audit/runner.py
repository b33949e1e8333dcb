"""The audit's orchestration: split the images into shard spans, check or write the manifest, stream the
pending shards of this rank through a DataLoader into the engine, write every finished shard atomically, then
(rank 0) merge the table and write the report.  ``run_audit(AuditConfig(...))`` is the whole job; the CLI
only builds the config.  ``run_audit(cfg, dataset=..., model=...)`` audits a user's dataset and model objects
instead of cfg.data and cfg.model (:mod:`.sources`, :func:`.model.given_model`)."""
from __future__ import annotations

import contextlib
import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from ..model_calls import auto_batch_size
from . import distributed
from .compute import audit_batch, failed_row
from .config import AuditConfig
from .errors import fail
from .progress import Progress, log, step_images, warn
from .rundir import (RunDirError, WithDigests, check_items, check_run_dir, checks_content, loader_workers, locked,
                     new_manifest, record_session)
from .sources import AuditBatch, collate, open_dataset
from .sources.labels import match_label_space, warn_tiny_confidence
from .store import finished_shards, merge_table, remove_stale_temporaries, shard_path, shard_spans, write_shard

__all__ = ["RunDirError", "open_dataset", "run_audit"]


def _device(cfg: AuditConfig, ranks: distributed.Ranks) -> torch.device:
    kind = cfg.resolved_device_type()
    if kind == "cuda":
        if not torch.cuda.is_available():
            fail("device", "CUDA is not available")
        return torch.device("cuda", ranks.local_rank if ranks.world > 1 else torch.cuda.current_device())
    return torch.device("cpu")


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
        fail("dataset_id", "names a dataset given with dataset=", scope="argument")
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


def _prepare(cfg: AuditConfig, ranks: distributed.Ranks, device: torch.device, given_dataset=None,
             given_model=None, dataset_id=None):
    """Everything that can fail before a file is written: the data, the model, one image through the model,
    the channels, the labels, the target, and (torchrun) that every rank built the same model and sees a
    dataset of the same fingerprint.  Returns (dataset, model, output class names, the model's fingerprint)."""
    from .model import check_model, declared_classes, load_model, model_classes, model_fingerprint

    dataset = open_dataset(cfg, given_dataset, dataset_id)
    model = load_model(cfg, device) if given_model is None else given_model
    fingerprint = _same_model_everywhere(
        ranks, model_fingerprint(cfg if given_model is None else None, model), device)
    _same_data_everywhere(ranks, dataset.fingerprint(), device)
    first = dataset[0]
    if first.error and dataset.option:                                  # a user's dataset: refuse early
        raise ValueError(f"spectral_xai audit: argument '{dataset.option}': its first item cannot be audited: "
                         f"{first.error}")
    x = first.image.unsqueeze(0).to(device=device, dtype=getattr(torch, cfg.dtype))
    n_outputs = check_model(cfg, model, x)
    classes = model_classes(cfg, model, dataset)
    if classes is not None and len(classes) != n_outputs:
        log(cfg, ranks, f"audit: note: {len(classes)} class names for {n_outputs} outputs; names not used")
        classes = None
    unmatched = dataset.resolve_labels(classes, n_outputs, required=cfg.target == "label")
    if unmatched:
        log(cfg, ranks, f"audit: note: the folders {unmatched} match no class of the model: their images have "
                         "no label")
    note = match_label_space(dataset, classes if declared_classes(cfg, model) is not None else None, cfg.target,
                             cfg.labels_are_model_indices)
    if note:
        log(cfg, ranks, note)
    if cfg.target == "label":
        if not dataset.has_labels():
            fail("target", "'label' needs labels: --labels folders with "
                 "class folders, a labelled built-in (fashion-mnist), or a dataset with labels "
                 "((image, label) items, a label column)")
        top = max((lab for lab in dataset.labels if lab is not None), default=-1) if dataset.labels else -1
        if top >= n_outputs:
            fail("target", f"the labels go up to {top} but the model has "
                 f"{n_outputs} outputs")
    return dataset, model, classes, fingerprint


def _same_model_everywhere(ranks: distributed.Ranks, fingerprint: str, device: torch.device) -> str:
    """``fingerprint`` when every rank built the same model, else a ValueError (on every rank) naming the
    ranks whose model differs from rank 0's."""
    digests = distributed.gather_digest(ranks, fingerprint, device)
    odd = [k for k, d in enumerate(digests) if d != digests[0]]
    if odd:
        shown = ", ".join(f"rank {k}: {digests[k]}" for k in odd)
        fail("model", f"the processes built different models: rank 0's "
             f"fingerprint is {digests[0]}, but {shown}; every rank must load the same weights (a "
             "factory must not depend on the rank, a --weights file must be the same everywhere)")
    return fingerprint


def _same_data_everywhere(ranks: distributed.Ranks, fingerprint: str, device: torch.device) -> None:
    """A ValueError (on every rank) when the ranks' datasets have different fingerprints."""
    digests = distributed.gather_digest(ranks, fingerprint, device)
    odd = [k for k, d in enumerate(digests) if d != digests[0]]
    if odd:
        fail("data", f"the processes see different datasets (ranks {odd} "
             "differ from rank 0: another length, folder or preprocessing); every rank must read "
             "the same data")


def _run(cfg: AuditConfig, ranks: distributed.Ranks, given_dataset=None, given_model=None,
         dataset_id=None) -> dict:
    device = _device(cfg, ranks)
    dataset, model, classes, fingerprint = _prepare(cfg, ranks, device, given_dataset, given_model, dataset_id)
    spans = shard_spans(len(dataset), cfg.shard_size)
    run_dir = Path(cfg.out)
    with contextlib.ExitStack() as held:
        problem = None
        if ranks.is_main:                       # rank 0 holds the run directory's lock for the whole run
            try:
                held.enter_context(locked(run_dir))
                manifest = new_manifest(cfg, dataset, classes, len(spans), ranks.world, device, fingerprint)
                problem = check_run_dir(cfg, manifest)
                if not problem:
                    remove_stale_temporaries(run_dir)
            except RunDirError as err:
                problem = str(err).removeprefix("spectral_xai audit: ")
            except OSError as err:
                problem = f"cannot use {run_dir}: {err}"
        problem = distributed.broadcast(ranks, problem)
        if problem:
            raise RunDirError(f"spectral_xai audit: {problem}")
        return _run_locked(cfg, ranks, device, dataset, model, spans, run_dir)


def _run_locked(cfg: AuditConfig, ranks: distributed.Ranks, device, dataset, model, spans, run_dir: Path) -> dict:
    """The run in a run directory that can take it (rank 0 holds its lock): the pending shards, the table,
    the report."""
    done, broken = finished_shards(run_dir, spans, cfg.key())
    for span, why in broken.items():
        warn(ranks, f"shard {shard_path(run_dir, span)} does not open (truncated or empty? {why}); it is computed "
                    "again")
    mine = [span for k, span in enumerate(spans) if k % ranks.world == ranks.rank]
    if checks_content(dataset) and done:
        problems = distributed.gather(ranks, check_items(cfg, dataset, run_dir, [s for s in mine if s in done]))
        problem = next((p for p in problems if p), None)
        if problem:
            raise RunDirError(f"spectral_xai audit: {problem}")
    pending = [span for span in mine if span not in done]
    n_pending = sum(b - a for a, b in pending)
    log(cfg, ranks, f"audit: {len(dataset)} images in {len(spans)} shards, {len(done)} already done; "
                     f"{ranks.world} process(es) on {device.type}")
    stats = {"rank": ranks.rank, "images": 0, "shards": 0, "seconds": 0.0, "compute_seconds": 0.0}
    if pending:
        stats.update(_process(cfg, ranks, device, model, dataset, run_dir, pending, n_pending))
    all_stats = distributed.gather(ranks, stats)
    distributed.barrier(ranks)
    summary = {"run_dir": str(run_dir), "n_images": len(dataset), "shards": len(spans), "ranks": all_stats}
    if ranks.is_main:
        import pandas as pd

        table = pd.read_parquet(merge_table(run_dir, spans))
        warn_tiny_confidence(table["confidence"], cfg.target)
        record_session(run_dir, all_stats)
        summary["table"] = table
        failed = int((table["status"] != "ok").sum())
        log(cfg, ranks, f"audit: table of {len(table)} images ({failed} failed) -> {run_dir / 'metrics.parquet'}")
        if cfg.report:
            from .report import build_report

            path = build_report(run_dir)
            log(cfg, ranks, f"audit: report -> {path}")
    distributed.barrier(ranks)
    return summary


def _process(cfg, ranks, device, model, dataset, run_dir, pending, n_pending) -> dict:
    """Compute and write this rank's pending shards; returns images, shards and seconds spent."""
    workers = loader_workers(cfg, dataset)
    loader = torch.utils.data.DataLoader(
        WithDigests(dataset), batch_sampler=[list(range(a, b)) for a, b in pending], collate_fn=collate,
        num_workers=workers, pin_memory=device.type == "cuda", prefetch_factor=2 if workers > 0 else None)
    dtype = getattr(torch, cfg.dtype)
    # Every image has the same size: probe the model's memory per row once for the whole run.
    probe = torch.zeros(1, 1 if cfg.grayscale else 3, cfg.size, cfg.size, device=device, dtype=dtype)
    batch_size = cfg.batch_size or auto_batch_size(model, probe, None)
    stats = {"images": 0, "shards": 0, "seconds": 0.0, "compute_seconds": 0.0}
    t0 = time.perf_counter()
    # Shards are written by one background thread while the next shard computes; at most two writes
    # are pending (bounded memory).  A write lost to a crash leaves no file: the shard is redone on resume.
    # The progress counts a shard once its write has succeeded.
    bar = Progress(n_pending, len(pending), cfg, ranks)
    with contextlib.closing(bar), ThreadPoolExecutor(1, thread_name_prefix="shard-writer") as io:
        writes: list = []                                   # (future, images) in submission order

        def settle(keep: int) -> None:
            """Wait for the oldest writes until at most ``keep`` are pending, and count every finished one."""
            while writes and (len(writes) > keep or writes[0][0].done()):
                future, n = writes.pop(0)
                future.result()                             # a failed write raises here, before it is counted
                stats["images"] += n
                stats["shards"] += 1
                bar.shard_written()

        for span, batch in zip(pending, loader):
            tc = time.perf_counter()
            bar.next_shard()
            rows, tensors = _shard(cfg, model, device, dtype, dataset, batch, batch_size, bar.advance)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            stats["compute_seconds"] += time.perf_counter() - tc
            settle(1)
            meta = {"key": cfg.key(), "span": list(span)}
            if batch.digests is not None:
                meta["digests"] = batch.digests                 # checked on resume (:func:`.rundir.check_items`)
            writes.append((io.submit(write_shard, run_dir, span, tensors, rows, meta), len(rows)))
            bar.advance(sum(bool(e) for e in batch.errors))     # images that failed to load
            settle(2)
        settle(0)
    stats["seconds"] = time.perf_counter() - t0
    return stats


def _shard(cfg, model, device, dtype, dataset, batch: AuditBatch, batch_size, advance):
    """One shard's rows (in image order) and the tensors to store, computed in steps of
    :func:`.progress.step_images` images, each reported to ``advance(n)``."""
    idx, imgs = batch.index, batch.images
    ok = [k for k, e in enumerate(batch.errors) if not e]
    names = [dataset.names[i] for i in idx.tolist()]
    rows_by_index = {}
    tensors: dict[str, torch.Tensor] = {}
    for k, e in enumerate(batch.errors):
        if e:
            rows_by_index[int(idx[k])] = failed_row(cfg, int(idx[k]), names[k], batch.labels[k], e)
    step, parts = step_images(cfg.size), {}
    for a in range(0, len(ok), step):
        part = ok[a:a + step]
        sel = torch.tensor(part)
        x = (imgs if len(part) == len(batch.errors) else imgs[sel]).to(device=device, dtype=dtype, non_blocking=True)
        rows, got = audit_batch(model, x, idx[sel], [batch.labels[k] for k in part], [names[k] for k in part], cfg,
                                batch_size)
        rows_by_index.update({r["index"]: r for r in rows})
        for key, t in got.items():
            parts.setdefault(key, []).append(t)
        advance(len(part))
    if ok:
        tensors = {key: ts[0] if len(ts) == 1 else torch.cat(ts) for key, ts in parts.items()}
        tensors["maps_index"] = idx[torch.tensor(ok)].clone()
    for k in ok:
        i = int(idx[k])
        if i < cfg.panels:
            tensors[f"image/{i}"] = (imgs[k] * 255).round().to(torch.uint8)
    return [rows_by_index[i] for i in sorted(rows_by_index)], tensors
