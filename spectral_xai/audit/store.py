"""The shards of a run directory and their merge into the table, every file written atomically (the run
directory's other files: :mod:`.rundir`).

RUN_DIR/shards/shard-<a>-<b>.safetensors
                               images a..b-1: kept maps (B, H, W), deletion/insertion curves (B, Q),
                               panel images (uint8); the per-image rows as JSON in the metadata.
                               A shard file exists only once complete (temporary file + fsync + rename),
                               so after a crash every shard is either finished or absent.  Its metadata
                               records the run's key and its span: a shard of another run, or one copied
                               over another span's name, is refused naming the file; one that does not
                               open (truncated, empty) is redone on resume, with a warning.
RUN_DIR/metrics.parquet        the merged per-image table (rank 0 after all shards exist); its columns and
                               their meaning: :mod:`.columns`, also in the file's metadata
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from . import columns
from .rundir import SHARD_DIR, TABLE, RunDirError, atomic_write, read_manifest

SHARD_GLOB = "shard-*.safetensors"
# The data dictionary of metrics.parquet (:mod:`.columns`) as column -> description; it is written into the
# parquet file (schema metadata "spectral_xai.data_dictionary" and each field's "description").
DATA_DICTIONARY = columns.DATA_DICTIONARY


def shard_spans(n_images: int, shard_size: int) -> list[tuple[int, int]]:
    """[(start, stop)] covering 0..n_images-1 in order; fixed by the configuration, not by the process count."""
    return [(a, min(a + shard_size, n_images)) for a in range(0, n_images, shard_size)]


def shard_path(run_dir: Path, span: tuple[int, int]) -> Path:
    return Path(run_dir) / SHARD_DIR / f"shard-{span[0]:08d}-{span[1]:08d}.safetensors"


def has_shards(run_dir: Path) -> bool:
    """Whether RUN_DIR/shards/ holds any shard file."""
    return any((Path(run_dir) / SHARD_DIR).glob(SHARD_GLOB))


def write_shard(run_dir: Path, span: tuple[int, int], tensors: dict[str, torch.Tensor], rows: list[dict],
                meta: dict) -> Path:
    """Write one finished shard atomically: ``tensors`` by name, ``rows`` and ``meta`` as JSON metadata."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    metadata = {"rows": json.dumps(rows), "meta": json.dumps(meta)}
    return atomic_write(shard_path(run_dir, span), lambda tmp: save_file(tensors, tmp, metadata=metadata))


def _opened(path: Path, read):
    """``read(f)`` of the shard file ``path`` opened with safetensors; a :class:`RunDirError` naming the file
    when it is missing or does not open (truncated, empty, not a shard)."""
    from safetensors import safe_open

    if not Path(path).is_file():
        raise RunDirError(f"spectral_xai audit: shard {path} is missing (was {SHARD_DIR}/ moved or deleted?); "
                          "run the audit again with --resume to recompute it")
    try:
        with safe_open(str(path), framework="pt") as f:
            return read(f)
    except Exception as err:  # noqa: BLE001 - safetensors, OSError, JSON or a missing entry: all mean unreadable
        raise RunDirError(f"spectral_xai audit: shard {path} does not open (truncated or empty?): "
                          f"{type(err).__name__}: {err}; run the audit again with --resume to redo it") from err


def read_shard_rows(path: Path) -> tuple[list[dict], dict]:
    """The rows and meta of a shard file, without reading its tensors."""
    def read(f):
        md = f.metadata()
        return json.loads(md["rows"]), json.loads(md["meta"])

    return _opened(path, read)


def read_shard_tensors(path: Path, names=None, prefix: str = "") -> dict[str, torch.Tensor]:
    """The tensors of a shard file: all, those in ``names`` that it has, or those whose name starts with
    ``prefix`` (only those are read from disk)."""
    def read(f):
        keys = [k for k in f.keys() if (names is None or k in names) and k.startswith(prefix)]
        return {k: f.get_tensor(k) for k in keys}

    return _opened(path, read)


def check_shard(path: Path, span: tuple[int, int], key: str) -> list[dict]:
    """The rows of the shard file ``path`` of images span[0]..span[1]-1 of the run with configuration ``key``;
    a :class:`RunDirError` naming the file when it does not open or belongs elsewhere (another run's key,
    another span: a file copied in or over another shard's name)."""
    rows, meta = read_shard_rows(path)
    where = "copied in from another run directory, or over another shard's name?"
    if meta.get("key") != key:
        raise RunDirError(f"spectral_xai audit: shard {path} belongs to another run (configuration key "
                          f"{meta.get('key')}, this run's is {key}; {where}); delete it to have it recomputed "
                          "on --resume")
    indices = [r.get("index") if isinstance(r, dict) else None for r in rows]
    if meta.get("span") != list(span) or indices != list(range(*span)):
        raise RunDirError(f"spectral_xai audit: shard {path} holds the images {meta.get('span')} (rows {indices}), "
                          f"not those of its name, {list(span)} ({where}); delete it to have it recomputed on "
                          "--resume")
    return rows


def finished_shards(run_dir: Path, spans: list[tuple[int, int]], key: str
                    ) -> tuple[set[tuple[int, int]], dict[tuple[int, int], str]]:
    """(the ``spans`` whose shard file is finished, {span: why} of the files that do not open: they are to be
    redone).  A file of another run or span is a :class:`RunDirError` (:func:`check_shard`)."""
    done, broken = set(), {}
    for span in spans:
        path = shard_path(run_dir, span)
        if not path.exists():
            continue
        try:
            read_shard_rows(path)
        except RunDirError as err:
            broken[span] = str(err.__cause__ or err)
            continue
        check_shard(path, span, key)
        done.add(span)
    return done, broken


def remove_stale_temporaries(run_dir: Path) -> int:
    """Delete temporary files left by a killed writer; returns how many.  Only under the run directory's lock
    (:func:`.rundir.locked`): another process's temporaries are its shards in flight."""
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

    manifest = read_manifest(run_dir)
    cfg, classes = manifest["config"], manifest.get("output_classes")
    schema = table_schema(cfg["methods"], cfg["measures"])
    for span in spans:                         # every shard there, readable and this run's, before writing
        check_shard(shard_path(run_dir, span), span, manifest["key"])

    def write(tmp):
        with pq.ParquetWriter(tmp, schema) as writer:
            for span in spans:                                 # spans are in image order, rows within them too
                rows = sorted(read_shard_rows(shard_path(run_dir, span))[0], key=lambda r: r["index"])
                writer.write_table(pa.Table.from_pylist([_typed_row(r, schema, classes) for r in rows],
                                                        schema=schema))

    return atomic_write(Path(run_dir) / TABLE, write)
