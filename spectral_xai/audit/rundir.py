"""The run directory: its file names, its lock, manifest.json (the only module that opens it), sessions.json,
the checks that a directory can take a run, its atomic writes, and the re-check of the finished shards'
items on resume.

RUN_DIR/.lock             held (an exclusive ``fcntl.flock``) by the process that writes the run, for the whole
                          run; it holds that process's pid and host.  A second process is refused, and stale
                          temporary files are removed only under the lock.
RUN_DIR/manifest.json     configuration, key, dataset fingerprint, model fingerprint, environment
RUN_DIR/sessions.json     every invocation's per-rank timing (a first run, then each resume)
RUN_DIR/shards/           the shard files (:mod:`.store`)
RUN_DIR/metrics.parquet   the merged per-image table (:mod:`.store`, columns: :mod:`.columns`)
RUN_DIR/report.html       the self-contained report (:mod:`.report`)
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import socket
import time
from dataclasses import fields
from pathlib import Path

import torch

from .. import atomic_io
from ..environment import environment_info
from .config import PRE_GROUPS_MC_GROUPS, RUNTIME_FIELDS, AuditConfig

MANIFEST, SESSIONS, TABLE, REPORT, SHARD_DIR = ("manifest.json", "sessions.json", "metrics.parquet", "report.html",
                                                "shards")
LOCK = ".lock"
FORMAT = "spectral_xai.audit/1"
# The manifest's entries that every reader needs, and which of them are JSON objects.
MANIFEST_KEYS = {"format": str, "key": str, "key_fields": dict, "config": dict, "dataset": dict, "model": dict,
                 "shards": dict, "environment": dict}
MANIFEST_ENTRIES = {"config": ("data", "model", "methods", "measures", "size", "shard_size"),
                    "dataset": ("source", "n_images", "fingerprint")}
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class RunDirError(ValueError):
    """The run directory cannot take this run (a different configuration or dataset, no --resume, in use by
    another process, a foreign or unreadable file, a failed write)."""


@contextlib.contextmanager
def writing(path: str | Path):
    """A write of the run directory's file ``path`` in the block that fails (a full disk, no permission)
    becomes a :class:`RunDirError` naming the file; atomic writes leave the previous file (or none)."""
    try:
        yield
    except OSError as err:
        if err.errno in NO_SPACE:
            raise RunDirError(f"spectral_xai audit: no space left on device while writing {path}; free space "
                              "and run the audit again with --resume (finished shards are kept)") from err
        raise RunDirError(f"spectral_xai audit: cannot write {path}: {err.strerror or err}") from err


def atomic_write(path: str | Path, write) -> Path:
    """:func:`spectral_xai.atomic_io.atomic_write` of a run directory's file, under :func:`writing`."""
    with writing(path):
        return atomic_io.atomic_write(path, write)


def write_json(obj, path: str | Path) -> Path:
    """:func:`spectral_xai.atomic_io.write_json` of a run directory's file, under :func:`writing`."""
    with writing(path):
        return atomic_io.write_json(obj, path)


def _read_json(path: Path):
    """The JSON in ``path``; a :class:`RunDirError` naming the file when it cannot be read or parsed."""
    try:
        return json.loads(path.read_text())
    except OSError as err:
        raise RunDirError(f"spectral_xai audit: cannot read {path}: {err.strerror or err}") from None
    except ValueError as err:
        raise RunDirError(f"spectral_xai audit: {path} is not valid JSON (truncated or edited?): {err}") from None


def read_manifest(run_dir: str | Path) -> dict | None:
    """RUN_DIR/manifest.json as a dict, or None when the directory holds no run; a :class:`RunDirError` naming
    the file when it is unreadable, not JSON (truncated) or not an audit manifest."""
    path = Path(run_dir) / MANIFEST
    if not path.exists():
        return None
    manifest = _read_json(path)
    bad = [k for k, kind in MANIFEST_KEYS.items()
           if not isinstance(manifest, dict) or not isinstance(manifest.get(k), kind)]
    bad += [f"{k}.{e}" for k, entries in MANIFEST_ENTRIES.items() if k not in bad for e in entries
            if e not in manifest[k]]
    if bad:
        raise RunDirError(f"spectral_xai audit: {path} is not an audit manifest (missing or wrong entries: "
                          f"{', '.join(bad)}); the run cannot be resumed or reported")
    if manifest["format"] != FORMAT:
        raise RunDirError(f"spectral_xai audit: {path} has format {manifest['format']!r}; this version reads "
                          f"{FORMAT!r}")
    return manifest


def _foreign_dir(run_dir: Path) -> str | None:
    """The reason ``run_dir`` cannot become a run directory (it holds files but no run), else None."""
    if run_dir.is_dir() and not (run_dir / MANIFEST).exists() and \
            any(p.name not in (".gitkeep", LOCK) for p in run_dir.iterdir()):
        return f"{run_dir} exists and is not an audit run directory (no {MANIFEST}); choose another --out"
    if run_dir.exists() and not run_dir.is_dir():
        return f"{run_dir} is a file, not a directory; choose another --out"
    return None


@contextlib.contextmanager
def locked(run_dir: str | Path):
    """Hold RUN_DIR/.lock (an exclusive ``fcntl.flock``, released when the process ends however it ends) for
    the block, making the directory; a :class:`RunDirError` naming the holder's pid when another process
    holds it, or when the directory holds files but no run (no lock file is put there)."""
    import fcntl

    run_dir = Path(run_dir)
    problem = _foreign_dir(run_dir)
    if problem:
        raise RunDirError(f"spectral_xai audit: {problem}")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise RunDirError(f"spectral_xai audit: cannot use {run_dir}: {err.strerror or err}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirError(f"spectral_xai audit: the run directory {run_dir} is in use by {_holder(fd)} (another "
                              "audit is writing it); wait for it to finish, or choose another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        yield run_dir
    finally:
        os.close(fd)                                        # releases the lock; the file stays (see module)


def _holder(fd: int) -> str:
    """"pid N" (with its host when it is another machine's) of the lock file's holder."""
    for _ in range(20):                                     # the holder writes its pid just after locking
        text = os.pread(fd, 4096, 0).decode(errors="replace").split()
        if text:
            pid, host = text[0], " ".join(text[1:])
            return f"pid {pid}" + (f" on host {host}" if host and host != socket.gethostname() else "")
        time.sleep(0.05)
    return "another process"


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
        return ("file names, sizes and labels; each file's sha256 digest, stored in its shard and checked on "
                "resume")
    if dataset.checks_items:
        return "per-item sha256 digests, stored in each shard and checked on resume"
    if dataset.dataset_id is not None:
        return "the dataset_id given"
    return "the built-in's content"


def check_run_dir(cfg: AuditConfig, manifest: dict) -> str | None:
    """None when the run directory can take this run (writing the manifest if new), else the reason.  Call it
    under :func:`locked`.  A run directory whose run has no finished shard holds no work: a new run (without
    --resume) replaces its manifest, so a start that failed on its first shard can be started again."""
    from .store import has_shards

    run_dir = Path(cfg.out)
    problem = _foreign_dir(run_dir)
    if problem:
        return problem
    old = read_manifest(run_dir)
    if old is None or (not cfg.resume and not has_shards(run_dir)):
        write_json(manifest, run_dir / MANIFEST)
        return None
    if not cfg.resume:
        return f"{run_dir} already holds an audit run; pass --resume to continue it, or choose another --out"
    diffs = [k for k in sorted(set(old["key_fields"]) | set(manifest["key_fields"]))
             if old["key_fields"].get(k) != manifest["key_fields"].get(k)]
    if diffs:
        shown = ", ".join(f"{k}: {old['key_fields'].get(k)!r} -> {manifest['key_fields'].get(k)!r}"
                          for k in diffs)
        return (f"refusing to resume into {run_dir}: its run has a different configuration ({shown}), as "
                f"the run's value -> yours. `--out {run_dir} --resume` alone continues with the run's options; "
                "drop or correct these, or choose another --out")
    old_model, new_model = old["model"].get("fingerprint"), manifest["model"]["fingerprint"]
    if old_model != new_model:
        return (f"refusing to resume into {run_dir}: the model differs from the one it was started on "
                f"(model fingerprint: {old_model} -> {new_model}; other weights or other code, or another "
                "model, under the same --model/--weights); restore that model, or choose another --out")
    if old["dataset"].get("fingerprint") != manifest["dataset"]["fingerprint"]:
        return (f"refusing to resume into {run_dir}: the dataset differs from the one it was started on "
                f"({old['dataset'].get('n_images')} -> {manifest['dataset']['n_images']} images, or changed "
                "files)")
    return None


def run_dir_config(out: str | Path) -> dict | None:
    """The configuration recorded in ``out/manifest.json`` without its runtime knobs, or None when ``out``
    holds no run.  ``--resume`` starts from it, so the original options need not be repeated."""
    manifest = read_manifest(out)
    if manifest is None:
        return None
    names = {f.name for f in fields(AuditConfig)}
    recorded = {k: v for k, v in manifest["config"].items() if k in names and k not in RUNTIME_FIELDS}
    recorded.setdefault("mc_groups", PRE_GROUPS_MC_GROUPS)     # a run from before --mc-groups: the halves
    return recorded


def read_sessions(run_dir: str | Path) -> list[dict]:
    """RUN_DIR/sessions.json (empty when missing)."""
    path = Path(run_dir) / SESSIONS
    return _read_json(path) if path.exists() else []


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


def checks_content(dataset) -> bool:
    """Whether the shards record each item's content digest and a resume re-checks them: a folder's files, and
    a user's dataset without a dataset_id (built-ins are identified by their fingerprint alone)."""
    return dataset.root is not None or dataset.checks_items


def content_digest(dataset, i: int) -> str:
    """Item i's content digest: a folder file's sha256 over its bytes, else the dataset's own ``digest(i)``."""
    if dataset.root is None:
        return dataset.digest(i)
    h = hashlib.sha256()
    try:
        with open(dataset.root / dataset.names[i], "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as err:                                  # an unreadable file: a failed row, digest of why
        h = hashlib.sha256(f"error|{type(err).__name__}: {err.strerror}".encode())
    return h.hexdigest()[:32]


class WithDigests(torch.utils.data.Dataset):
    """``dataset``'s items with their :func:`content_digest` (a folder's file is read once more, from the page
    cache, to hash it; a user's items carry theirs already)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        item = self.dataset[i]
        if item.digest is None and checks_content(self.dataset):
            item.digest = content_digest(self.dataset, i)
        return item


def loader_workers(cfg: AuditConfig, dataset) -> int:
    """The DataLoader workers of ``dataset``: --num-workers, else 2 for a folder's files and 0 otherwise."""
    return cfg.num_workers if cfg.num_workers is not None else (0 if dataset.root is None else 2)


def check_items(cfg: AuditConfig, dataset, run_dir: Path, spans) -> str | None:
    """For a dataset whose content is checked (:func:`checks_content`): None when every item of the finished
    shards ``spans`` has the digest its shard recorded, else the reason (naming the first changed item)."""
    from .store import read_shard_rows, shard_path

    todo = []
    for span in sorted(spans):
        recorded = read_shard_rows(shard_path(run_dir, span))[1].get("digests")
        if recorded is not None:
            todo += [(i, span, d) for i, d in zip(range(*span), recorded)]
    if not todo:
        return None
    loader = torch.utils.data.DataLoader(_Digests(dataset), batch_size=None, sampler=[i for i, _, _ in todo],
                                         num_workers=loader_workers(cfg, dataset))
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
        return content_digest(self.dataset, i)
