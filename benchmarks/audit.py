"""Case ``audit``: images/s of ``spectral-xai audit`` (DataLoader decoding JPEG files, shards written
atomically, table merged; no report) against the bare compute loop on the same images already decoded in
memory, with the same shards and settings (nothing read or written).  The figure is engine time / audit
time (target >= 0.9: the streaming, storage and bookkeeping cost less than 10 %)."""
from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from spectral_xai.audit import AuditConfig, run_audit
from spectral_xai.audit.compute import audit_batch
from spectral_xai.audit.sources.folders import FolderDataset
from spectral_xai.audit.model import load_model
from spectral_xai.audit.store import shard_spans
from spectral_xai.model_calls import auto_batch_size


def photo_folder(root: Path, n: int) -> Path:
    """n JPEG files made from scikit-image's photos (flipped copies when n exceeds the photos)."""
    from PIL import Image
    from skimage import data

    from spectral_xai.audit.sources.folders import SKIMAGE_PHOTOS

    root.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        name = SKIMAGE_PHOTOS[k % len(SKIMAGE_PHOTOS)]
        img = Image.fromarray(getattr(data, name)()).convert("RGB")
        if (k // len(SKIMAGE_PHOTOS)) % 2:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        img.save(root / f"{k:04d}_{name}.jpg", quality=92)
    return root


def engine_only(cfg: AuditConfig, device: torch.device) -> float:
    """Seconds of the compute loop alone on pre-decoded images, shard by shard."""
    ds = FolderDataset(cfg.data, cfg.size, 3)
    x_all = torch.stack([ds[i].image for i in range(len(ds))]).to(device)
    model = load_model(cfg, device)
    batch_size = auto_batch_size(model, x_all[:1], None)          # as the audit: once per run
    t0 = time.perf_counter()
    for a, b in shard_spans(len(ds), cfg.shard_size):
        x = x_all[a:b]
        ids = torch.arange(a, b)
        audit_batch(model, x, ids, [None] * (b - a), ds.names[a:b], cfg, batch_size)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def run(device: torch.device, quick: bool) -> dict:
    """Suite case: the audit and the bare compute loop on the same folder, interleaved repeats."""
    images, size, samples, repeats = (4, 32, 2, 1) if quick else (16, 96, 8, 2)
    tmp = Path(tempfile.mkdtemp(prefix="bench_audit_"))
    try:
        folder = photo_folder(tmp / "photos", images)
        base = dict(data=str(folder), size=size, samples=samples, shard_size=4, quiet=True, report=False,
                    methods=["vg", "sg2", "sl2", "al", "sg2opt"], fractions=11, num_workers=2,
                    device=device.type)
        audit_s, loop_s, engine_s = [], [], []
        for r in range(repeats):
            t0 = time.perf_counter()
            summary = run_audit(AuditConfig(out=str(tmp / f"run{r}"), **base))
            audit_s.append(time.perf_counter() - t0)
            loop_s.append(summary["ranks"][0]["seconds"])
            engine_s.append(engine_only(AuditConfig(out=str(tmp / f"run{r}"), **base), device))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    a, lp, e = statistics.median(audit_s), statistics.median(loop_s), statistics.median(engine_s)
    ratio, loop_ratio = e / a, e / lp
    print(f"  audit {images / a:.3f} images/s ({images / lp:.3f} in its loop), engine alone {images / e:.3f} "
          f"images/s: ratio {ratio:.3f} end to end, {loop_ratio:.3f} in the loop", flush=True)
    return {
        "title": "Audit throughput vs the engine's own (same images, shards and settings)",
        "settings": {"images": images, "size": size, "samples": samples, "methods": base["methods"],
                     "measures": "all", "fractions": 11, "num_workers": 2},
        "audit_seconds": audit_s, "audit_loop_seconds": loop_s, "engine_seconds": engine_s,
        "audit_over_engine_throughput": ratio, "audit_loop_over_engine_throughput": loop_ratio,
        "table": {"columns": ["images × px", "audit end to end (images/s)", "audit loop (images/s)",
                              "engine alone (images/s)", "audit / engine", "audit loop / engine"],
                  "rows": [[f"{images} × {size}", f"{images / a:.3f}", f"{images / lp:.3f}", f"{images / e:.3f}",
                            f"{ratio:.3f}", f"{loop_ratio:.3f}"]]},
        "note": "audit = run_audit end to end (JPEG decoding in 2 DataLoader workers, shards written atomically "
                "by a background thread, table merged; no report); engine alone = audit_batch on the same "
                "decoded tensors, shard by shard, nothing read or written. Methods vg, sg2, sl2, al, sg2opt with "
                "EF, ΔEF, σ*, inconsistency, deletion and insertion (11 fractions). End to end includes the "
                "fixed costs (model loading, manifest and dataset fingerprint, worker start-up, table merge); "
                "the loop is the shard loop alone (the steady state of a long audit).",
    }
