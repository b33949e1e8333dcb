"""The run directory: manifest, shards and the merged table, every file written atomically.

RUN_DIR/manifest.json          configuration, key, dataset fingerprint, model fingerprint, environment
RUN_DIR/shards/shard-<a>-<b>.safetensors
                               images a..b-1: kept maps (B, H, W), deletion/insertion curves (B, Q),
                               panel images (uint8); the per-image rows as JSON in the metadata.
                               A shard file exists only once complete (temporary file + fsync + rename),
                               so after a crash every shard is either finished or absent.
RUN_DIR/metrics.parquet        the merged per-image table (rank 0 after all shards exist); its columns and
                               their meaning: :data:`COLUMNS`, also in the file's metadata
RUN_DIR/report.html            the self-contained report
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..atomic_io import atomic_write
from ..methods import METHODS

SHARD_DIR = "shards"

# The data dictionary of metrics.parquet: column -> (type, description); "<method>_..." once per method.
# It is written into the parquet file (schema metadata "spectral_xai.data_dictionary" and each field's
# "description") for the report and for readers of the table.
COLUMNS: dict[str, tuple[str, str]] = {
    "index": ("int64", "position of the image in the dataset's order (0-based); keys its noise"),
    "name": ("string", "the image's path relative to the data folder, or the built-in item's name, or (a "
                       "Python or Hugging Face dataset) the item's position as text"),
    "status": ("string", "'ok', or 'failed' when the file could not be read (its measures are NaN)"),
    "error": ("string", "why the image failed; empty when ok"),
    "label": ("int64", "the image's class as an index of the model's outputs (--labels folders: the folder "
                       "matched to a class name or index; a labelled built-in; a user's or Hugging Face "
                       "dataset's label); null when none"),
    "label_name": ("string", "the model's class name of label; null when unknown"),
    "target": ("int64", "the explained class index: the clean prediction (--target pred) or the label; null "
                        "for failed images"),
    "target_name": ("string", "the model's class name of target; null when the model has no class names"),
    "confidence": ("float64", "softmax probability of target on the clean image"),
    "entropy": ("float64", "predictive entropy of the clean image's softmax, in nats"),
    "sigma_opt": ("float64", "σ* of the SpectralLens grid that maximises CS(σ) = (σ·s)^2.5·‖E_σ[g²]‖₁"),
    "inconsistency": ("float64", "1 − mean cosine similarity between the per-σ SG² maps of the grid"),
    "top5_classes": ("list<int64>", "the model's 5 most probable classes on the clean image, most probable "
                                    "first (fewer when the model has fewer outputs); null for failed images"),
    "top5_probs": ("list<float64>", "their softmax probabilities, in the same order"),
    "<method>_ef": ("float64", "Expected Frequency of the method's rank-normalised map (ICCV25 recipe): 0 = all "
                               "power at the lowest spatial frequency, 1 = at the highest. Sampled maps with "
                               "halves A, B (sg, sg2, sl2, sg2opt): the bias-reduced estimate 2·EF((A+B)/2) − "
                               "(EF(A)+EF(B))/2 (first-order jackknife: the plug-in's 1/n noise bias cancels, "
                               "higher orders remain; for odd n, (A+B)/2 weighs the halves equally); "
                               "deterministic maps (vg, vg2, ig, ig2, xig, xig2, occlusion): the plug-in EF, "
                               "exact for them; al, rise and any map of a run with one sample per σ: the "
                               "plug-in EF, not corrected"),
    "<method>_ef_unranked": ("float64", "Expected Frequency of the method's map as it is (no rank "
                                        "normalisation): better conditioned for comparing methods, since rank "
                                        "normalisation puts most power in the DC ring. Maps with halves: the "
                                        "EF of the cross spectrum Re(FFT(A)·conj FFT(B)), free of the "
                                        "plug-in's (noise power)/n bias (undefined, and kept as computed, when "
                                        "a map is all noise); other maps: the plug-in EF"),
    "<method>_ef_mc_error": ("float64", "Monte Carlo standard error of <method>_ef per image, the half-split "
                                        "estimate |EF(A) − EF(B)|/2 of the rank-normalised halves (Var EF(m) ≈ "
                                        "Var EF(A)/2; to first order the bias-reduced EF has the plug-in's "
                                        "variance). One degree of freedom per image: its square is unbiased "
                                        "for the variance, so average squares over images. 0 for "
                                        "deterministic maps; NaN where not estimated (al, rise, one sample)"),
    "<method>_ef_unranked_mc_error": ("float64", "Monte Carlo standard error of <method>_ef_unranked per "
                                                 "image, |EF(A) − EF(B)|/2 of the halves as they are (as "
                                                 "<method>_ef_mc_error)"),
    "<method>_ef_plugin": ("float64", "plug-in EF of the rank-normalised map, EF(rank(m)) (biased by the "
                                      "map's Monte Carlo noise); equals <method>_ef for maps without halves"),
    "<method>_ef_unranked_plugin": ("float64", "plug-in EF of the map as it is, from |FFT(m)|²; equals "
                                               "<method>_ef_unranked for maps without halves"),
    "<method>_gap": ("float64", "ΔEF = |EF(method) − EF(VanillaGrad)|, the explanation-gap proxy, with "
                                "<method>_ef's estimator (rank-normalised; bias-reduced where the map has "
                                "halves; VanillaGrad is deterministic); 0 for vg"),
    "<method>_gap_plugin": ("float64", "ΔEF from the plug-in EFs; equals <method>_gap for maps without halves"),
    "<method>_deletion": ("float64", "deletion AUC of the target probability over the removed fraction, most "
                                     "relevant pixels first (lower is better); not for al (a scale map)"),
    "<method>_insertion": ("float64", "insertion AUC of the target probability over the inserted fraction "
                                      "(higher is better); not for al"),
    "<method>_rel_error": ("float64", "relative Monte Carlo error ||se||₂/||m||₂ of the map, se the per-pixel "
                                      "standard errors from the samples' variance (docs/methods.md §11): sg, "
                                      "sg2; sl2 (of the prior-weighted mean over σ); sg2opt (of G_σ* at the "
                                      "image's σ*, which is chosen from the same samples: that choice is not "
                                      "in the error). 0 for deterministic maps (vg, vg2, ig, ig2, xig, xig2, "
                                      "occlusion: no sampling, exact). NaN where not estimated: al (an argmax "
                                      "over σ has no standard error), rise (its masks are drawn without "
                                      "statistics), and every map of a run with one sample per σ"),
    "<method>_samples": ("int64", "model passes per image behind the map (SpectralLens methods: all σ of the "
                                  "grid); with --target-error the samples the image used before its stop; null "
                                  "for occlusion"),
}
DATA_DICTIONARY: dict[str, str] = {k: d for k, (_, d) in COLUMNS.items()}
OPTIONAL_IMAGE_COLUMNS = ("sigma_opt", "inconsistency")            # present when the measure is requested
# The per-method columns "<method>_<key>" in table order, each with the measure that brings it (None: always).
METHOD_COLUMNS: dict[str, str | None] = {
    "ef": "ef", "ef_unranked": "ef", "ef_mc_error": "ef", "ef_unranked_mc_error": "ef", "ef_plugin": "ef",
    "ef_unranked_plugin": "ef", "gap": "gap", "gap_plugin": "gap", "deletion": "deletion",
    "insertion": "insertion", "rel_error": None, "samples": None,
}


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


def table_columns(methods: list[str], measures: list[str]) -> list[str]:
    """The columns of metrics.parquet for these methods and measures, in order."""
    cols = [c for c in COLUMNS if not c.startswith("<")
            and (c not in OPTIONAL_IMAGE_COLUMNS or c in measures)]
    for m in methods:
        for key, measure in METHOD_COLUMNS.items():
            if measure in ("deletion", "insertion") and not METHODS[m].ranks_pixels:
                continue
            if measure is None or measure in measures:
                cols.append(f"{m}_{key}")
    return cols


def _spec(column: str) -> tuple[str, str]:
    """(type, description) of a column; ``<m>_<measure>`` matches the longest ``<method>_<measure>`` entry."""
    if column in COLUMNS:
        return COLUMNS[column]
    suffixes = [k[len("<method>"):] for k in COLUMNS if k.startswith("<method>_") and column.endswith(k[8:])]
    return COLUMNS["<method>" + max(suffixes, key=len)]


def _arrow_type(name: str):
    """The pyarrow type of a COLUMNS type name ("float64", "list<int64>")."""
    import pyarrow as pa

    if name.startswith("list<"):
        return pa.list_(_arrow_type(name[5:-1]))
    return getattr(pa, name)()


def table_schema(methods: list[str], measures: list[str]):
    """The pyarrow schema of metrics.parquet, every field with its description, the whole dictionary in the
    schema metadata."""
    import pyarrow as pa

    cols = table_columns(methods, measures)
    fields = [pa.field(c, _arrow_type(_spec(c)[0]), metadata={"description": _spec(c)[1]}) for c in cols]
    return pa.schema(fields, metadata={"spectral_xai.data_dictionary": json.dumps(
        {c: _spec(c)[1] for c in cols}, ensure_ascii=False)})


def _typed_row(row: dict, schema, classes: list[str] | None) -> dict:
    """A shard row (internal -1 for no label/target, float sample counts) as a row of ``schema``."""
    out = {}
    for f in schema:
        v = row.get(f.name)
        if f.name in ("label", "target"):
            v = None if v is None or int(v) < 0 else int(v)
        elif f.name in ("label_name", "target_name"):
            idx = row.get(f.name[:-5])
            v = classes[int(idx)] if classes and idx is not None and 0 <= int(idx) < len(classes) else None
        elif str(f.type) == "int64" and v is not None:
            v = None if v != v else int(v)                  # NaN: no count
        out[f.name] = v
    return out


def merge_table(run_dir: Path, plan: list[tuple[int, int]]) -> Path:
    """Stream every shard's rows, in image order, into RUN_DIR/metrics.parquet (atomically) with the schema
    and data dictionary of :data:`COLUMNS`; memory stays at about one shard's rows whatever the dataset size.
    Returns the table's path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for span in plan:
        if not shard_path(run_dir, span).exists():
            raise RuntimeError(f"spectral_xai audit: shard {shard_path(run_dir, span).name} is missing; run again "
                               "with --resume")
    manifest = json.loads((Path(run_dir) / "manifest.json").read_text())
    cfg, classes = manifest["config"], manifest.get("output_classes")
    schema = table_schema(cfg["methods"], cfg["measures"])

    def write(tmp):
        with pq.ParquetWriter(tmp, schema) as writer:
            for span in plan:                                  # spans are in image order, rows within them too
                rows = sorted(read_shard_rows(shard_path(run_dir, span))[0], key=lambda r: r["index"])
                writer.write_table(pa.Table.from_pylist([_typed_row(r, schema, classes) for r in rows],
                                                        schema=schema))

    return atomic_write(Path(run_dir) / "metrics.parquet", write)
