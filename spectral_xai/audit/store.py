"""The run directory: manifest, shards and the merged table, every file written atomically.

RUN_DIR/manifest.json          configuration, key, dataset fingerprint, environment
RUN_DIR/shards/shard-<a>-<b>.safetensors
                               images a..b-1: kept maps (B, H, W), deletion/insertion curves (B, Q),
                               panel images (uint8); the per-image rows as JSON in the metadata.
                               A shard file exists only once complete (temporary file + fsync + rename),
                               so after a crash every shard is either finished or absent.
RUN_DIR/metrics.parquet        the merged per-image table (rank 0 after all shards exist)
RUN_DIR/report.html            the self-contained report
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..atomic_io import atomic_write

SHARD_DIR = "shards"


def shard_plan(n_images: int, shard_size: int) -> list[tuple[int, int]]:
    """[(start, stop)] covering 0..n_images-1 in order; fixed by the configuration, not by the process count."""
    return [(a, min(a + shard_size, n_images)) for a in range(0, n_images, shard_size)]


def shard_path(run_dir: Path, span: tuple[int, int]) -> Path:
    return Path(run_dir) / SHARD_DIR / f"shard-{span[0]:08d}-{span[1]:08d}.safetensors"


def write_shard(run_dir: Path, span: tuple[int, int], tensors: dict[str, torch.Tensor], rows: list[dict],
                meta: dict) -> Path:
    """Write one finished shard atomically: ``tensors`` by name, ``rows`` and ``meta`` as JSON metadata."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    metadata = {"rows": json.dumps(rows), "meta": json.dumps(meta)}
    return atomic_write(shard_path(run_dir, span), lambda tmp: save_file(tensors, tmp, metadata=metadata))


def read_shard_rows(path: Path) -> tuple[list[dict], dict]:
    """The rows and meta of a shard file, without reading its tensors."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        md = f.metadata()
    return json.loads(md["rows"]), json.loads(md["meta"])


def read_shard_tensors(path: Path, names=None, prefix: str = "") -> dict[str, torch.Tensor]:
    """The tensors of a shard file: all, those in ``names`` that it has, or those whose name starts with
    ``prefix`` (only those are read from disk)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        keys = [k for k in f.keys() if (names is None or k in names) and k.startswith(prefix)]
        return {k: f.get_tensor(k) for k in keys}


def finished_shards(run_dir: Path, plan: list[tuple[int, int]]) -> set[tuple[int, int]]:
    """The spans of ``plan`` whose shard file exists (a file exists only when complete)."""
    return {span for span in plan if shard_path(run_dir, span).exists()}


def remove_stale_temporaries(run_dir: Path) -> int:
    """Delete temporary files left by a killed writer; returns how many."""
    n = 0
    for p in Path(run_dir).rglob(".*.tmp"):
        p.unlink(missing_ok=True)
        n += 1
    return n


def merge_table(run_dir: Path, plan: list[tuple[int, int]]) -> Path:
    """Stream every shard's rows, in image order, into RUN_DIR/metrics.parquet (atomically); memory stays at
    about one shard's rows whatever the dataset size.  Returns the table's path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for span in plan:
        if not shard_path(run_dir, span).exists():
            raise RuntimeError(f"spectral_xai audit: shard {shard_path(run_dir, span).name} is missing; run again "
                               "with --resume")

    def write(tmp):
        writer = None
        try:
            for span in plan:                                  # spans are in image order, rows within them too
                rows = sorted(read_shard_rows(shard_path(run_dir, span))[0], key=lambda r: r["index"])
                batch = pa.Table.from_pylist(rows) if writer is None else \
                    pa.Table.from_pylist(rows, schema=writer.schema)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, batch.schema)
                writer.write_table(batch)
        finally:
            if writer is not None:
                writer.close()

    return atomic_write(Path(run_dir) / "metrics.parquet", write)
