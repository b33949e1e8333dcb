"""The shards of a run directory and their merge into the table, every file written atomically (the run
directory's other files: :mod:`.rundir`).

RUN_DIR/shards/shard-<a>-<b>.safetensors
                               images a..b-1: kept maps (B, H, W), deletion/insertion curves (B, Q),
                               panel images (uint8); the per-image rows as JSON in the metadata.
                               A shard file exists only once complete (temporary file + fsync + rename),
                               so after a crash every shard is either finished or absent.
RUN_DIR/metrics.parquet        the merged per-image table (rank 0 after all shards exist); its columns and
                               their meaning: :mod:`.columns`, also in the file's metadata
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..atomic_io import atomic_write
from . import columns
from .rundir import SHARD_DIR, TABLE, read_manifest
# The data dictionary of metrics.parquet (:mod:`.columns`) as column -> description; it is written into the
# parquet file (schema metadata "spectral_xai.data_dictionary" and each field's "description").
DATA_DICTIONARY = columns.DATA_DICTIONARY


def shard_spans(n_images: int, shard_size: int) -> list[tuple[int, int]]:
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


def finished_shards(run_dir: Path, spans: list[tuple[int, int]]) -> set[tuple[int, int]]:
    """The ``spans`` whose shard file exists (a file exists only when complete)."""
    return {span for span in spans if shard_path(run_dir, span).exists()}


def remove_stale_temporaries(run_dir: Path) -> int:
    """Delete temporary files left by a killed writer; returns how many."""
    n = 0
    for p in Path(run_dir).rglob(".*.tmp"):
        p.unlink(missing_ok=True)
        n += 1
    return n


def _arrow_type(name: str):
    """The pyarrow type of a column's dtype name ("float64", "list<int64>")."""
    import pyarrow as pa

    if name.startswith("list<"):
        return pa.list_(_arrow_type(name[5:-1]))
    return getattr(pa, "bool_" if name == "bool" else name)()


def table_schema(methods: list[str], measures: list[str]):
    """The pyarrow schema of metrics.parquet, every field with its description, the whole dictionary in the
    schema metadata."""
    import pyarrow as pa

    cols = columns.table_columns(methods, measures)
    fields = [pa.field(c, _arrow_type(columns.spec(c).dtype), metadata={"description": columns.spec(c).description})
              for c in cols]
    return pa.schema(fields, metadata={"spectral_xai.data_dictionary": json.dumps(
        {c: columns.spec(c).description for c in cols}, ensure_ascii=False)})


def _typed_row(row: dict, schema, classes: list[str] | None) -> dict:
    """A shard row as a row of ``schema``: the class names of label and target added."""
    out = {}
    for f in schema:
        v = row.get(f.name)
        if f.name in ("label_name", "target_name"):
            idx = row.get(f.name[:-5])
            v = classes[idx] if classes and idx is not None and 0 <= idx < len(classes) else None
        out[f.name] = v
    return out


def merge_table(run_dir: Path, spans: list[tuple[int, int]]) -> Path:
    """Stream every shard's rows, in image order, into RUN_DIR/metrics.parquet (atomically) with the schema
    and data dictionary of :mod:`.columns`; memory stays at about one shard's rows whatever the dataset size.
    Returns the table's path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for span in spans:
        if not shard_path(run_dir, span).exists():
            raise RuntimeError(f"spectral_xai audit: shard {shard_path(run_dir, span).name} is missing; run again "
                               "with --resume")
    manifest = read_manifest(run_dir)
    cfg, classes = manifest["config"], manifest.get("output_classes")
    schema = table_schema(cfg["methods"], cfg["measures"])

    def write(tmp):
        with pq.ParquetWriter(tmp, schema) as writer:
            for span in spans:                                 # spans are in image order, rows within them too
                rows = sorted(read_shard_rows(shard_path(run_dir, span))[0], key=lambda r: r["index"])
                writer.write_table(pa.Table.from_pylist([_typed_row(r, schema, classes) for r in rows],
                                                        schema=schema))

    return atomic_write(Path(run_dir) / TABLE, write)
