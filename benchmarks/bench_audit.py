"""Audit throughput vs the engine's own: images/s of ``spectral-xai audit`` (DataLoader decoding files,
shards written atomically, table and no report) against the bare compute loop on the same images, already
decoded in memory, with the same shards and settings (nothing read or written).  Interleaved repeats;
the ratio audit / engine is the figure (target >= 0.9).

    python benchmarks/bench_audit.py [--size 128] [--images 16] [--repeats 2] [--out FILE.json]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from spectral_xai.audit import AuditConfig, run_audit
from spectral_xai.audit.compute import audit_batch
from spectral_xai.audit.data import AuditDataset
from spectral_xai.audit.model import load_model
from spectral_xai.audit.store import shard_plan
from spectral_xai.engine import auto_batch_size
from spectral_xai.environment import environment_info, write_json


def photo_folder(root: Path, n: int) -> Path:
    """n JPEG files made from scikit-image's photos (flipped copies when n exceeds the photos)."""
    from PIL import Image
    from skimage import data

    from spectral_xai.audit.data import SKIMAGE_PHOTOS

    root.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        name = SKIMAGE_PHOTOS[k % len(SKIMAGE_PHOTOS)]
        img = Image.fromarray(getattr(data, name)()).convert("RGB")
        if (k // len(SKIMAGE_PHOTOS)) % 2:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        img.save(root / f"{k:04d}_{name}.jpg", quality=92)
    return root


def engine_only(cfg: AuditConfig) -> float:
    """Seconds of the compute loop alone on pre-decoded images, shard by shard."""
    ds = AuditDataset(cfg.data, cfg.size, 3)
    x_all = torch.stack([ds[i][1] for i in range(len(ds))])
    model = load_model(cfg, torch.device("cpu"))
    t0 = time.perf_counter()
    for a, b in shard_plan(len(ds), cfg.shard_size):
        x = x_all[a:b]
        ids = torch.arange(a, b)
        audit_batch(model, x, ids, torch.full((b - a,), -1), ds.names[a:b], cfg, auto_batch_size(model, x, None))
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--images", type=int, default=16)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/bench_audit.json")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_audit_"))
    try:
        folder = photo_folder(tmp / "photos", args.images)
        base = dict(data=str(folder), size=args.size, samples=args.samples, shard_size=4, quiet=True, report=False,
                    methods=["vg", "sg2", "sl2", "al", "sg2opt"], measures=["ef", "gap", "sigma_opt",
                                                                          "inconsistency", "deletion", "insertion"],
                    fractions=11, num_workers=2)
        audit_s, engine_s = [], []
        for r in range(args.repeats):
            out = tmp / f"run{r}"
            t0 = time.perf_counter()
            run_audit(AuditConfig(out=str(out), **base))
            audit_s.append(time.perf_counter() - t0)
            engine_s.append(engine_only(AuditConfig(out=str(out), **base)))
        a, e = statistics.median(audit_s), statistics.median(engine_s)
        result = {
            "benchmark": "audit_throughput", "environment": environment_info(), "settings": dict(vars(args)),
            "methods": base["methods"], "audit_seconds": audit_s, "engine_seconds": engine_s,
            "audit_images_per_s": args.images / a, "engine_images_per_s": args.images / e,
            "audit_over_engine_throughput": e / a,
        }
        write_json(result, args.out)
        print(f"audit {args.images / a:.3f} images/s, engine alone {args.images / e:.3f} images/s, "
              f"ratio {e / a:.3f} -> {args.out}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
