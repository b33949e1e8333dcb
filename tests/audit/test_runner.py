"""The dataset audit end to end: table, maps, report, crash safety (SIGKILL, resume), refusals."""
import json
import re
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from spectral_xai.audit import AuditConfig, RunDirError, build_report, run_audit
from spectral_xai.audit.report import FIGURES
from spectral_xai.audit.store import read_shard_tensors, shard_path, shard_spans

from helpers import AUDIT_MODEL, HERE, PHOTOS, audit_cli, tiny_audit, tiny_audit_args


def test_audit_end_to_end_on_photos(photo_folder, tmp_path):
    out = tmp_path / "run"
    cfg = AuditConfig(data=str(photo_folder), out=str(out), size=48, samples=2, labels="folders",
                      methods=["vg", "sg2", "sl2", "al", "sg2opt", "ig2"], sigmas=[0.0, 0.5, 1.0], ig_steps=4,
                      fractions=5, shard_size=2, panels=3, quiet=True, num_workers=1)
    summary = run_audit(cfg)
    table = pd.read_parquet(out / "metrics.parquet")
    assert summary["table"].equals(table)
    names = sorted(p.relative_to(photo_folder).as_posix() for p in photo_folder.rglob("*.*"))
    assert table["name"].tolist() == names and table["index"].tolist() == list(range(len(names)))
    bad = table[table["name"] == "things/broken.jpg"].iloc[0]
    assert bad["status"] == "failed" and bad["error"].startswith("OSError") and np.isnan(bad["vg_ef"])
    ok = table[table["status"] == "ok"]
    assert len(ok) == len(PHOTOS)
    numeric = [c for c in ok.columns if c.split("_", 1)[-1] in ("ef", "gap", "samples") or c in (
        "confidence", "entropy", "sigma_opt", "inconsistency")]
    numeric += [f"{m}_{k}" for m in ("vg", "sg2", "sl2", "sg2opt", "ig2") for k in ("deletion", "insertion")]
    assert np.isfinite(ok[numeric].to_numpy(dtype=float)).all()
    assert "al_deletion" not in table                           # ArgLens is a scale map: no deletion ranking
    assert (ok["sl2_samples"] == 1 + 2 * 2).all() and (ok["ig2_samples"] == 4).all()
    assert ok["label"].isna().all()                 # animals / things: no class name or index of the model
    assert (ok["vg_gap"] == 0).all()
    # The stored maps equal a direct call with the same keys (seed, global image index).
    t = read_shard_tensors(shard_path(out, (0, 2)))
    assert t["maps/sg2"].dtype == torch.float16 and t["maps/sg2"].shape == (2, 48, 48)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dataset"]["n_images"] == len(names) and manifest["config"]["samples"] == 2
    assert manifest["dataset"]["label_classes"] == ["animals", "things"]
    html = (out / "report.html").read_text()
    for fig in FIGURES:
        assert re.search(f'id="fig-{fig}"[^>]*><img', html), fig
    assert html.count(";base64,") == len(FIGURES) and "things/broken.jpg" in html
    assert "src=\"http" not in html and "<script" not in html       # self-contained
    (out / "report.html").unlink()
    build_report(out)
    assert (out / "report.html").read_text().count(";base64,") == len(FIGURES)


def test_sigkill_then_resume_equals_fresh_run(photo_folder, tmp_path):
    fresh, killed = tmp_path / "fresh", tmp_path / "killed"
    tiny_audit(photo_folder, fresh)
    n_shards = len(shard_spans(len(PHOTOS) + 1, 1))
    proc = subprocess.Popen([sys.executable, "-m", "spectral_xai", *map(str, tiny_audit_args(photo_folder, killed))],
                            cwd=HERE, env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    shards = killed / "shards"
    deadline = time.time() + 120
    while time.time() < deadline and not (shards.exists() and any(shards.glob("shard-*"))):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_done = len(list(shards.glob("shard-*")))
    assert 1 <= n_done < n_shards, n_done                      # killed mid-run, after the first shard
    assert not (killed / "metrics.parquet").exists()
    tiny_audit(photo_folder, killed, "--resume")
    a = pd.read_parquet(fresh / "metrics.parquet")
    b = pd.read_parquet(killed / "metrics.parquet")
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    for span in shard_spans(len(PHOTOS) + 1, 1):
        ta, tb = read_shard_tensors(shard_path(fresh, span)), read_shard_tensors(shard_path(killed, span))
        assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    sessions = json.loads((killed / "sessions.json").read_text())
    assert sessions[-1]["images"] == n_shards - n_done          # the resume recomputed nothing finished
    assert not list(killed.rglob(".*.tmp"))


def test_resume_refuses_a_different_configuration(tmp_path):
    data, out = tmp_path / "imgs", tmp_path / "run"
    data.mkdir()
    rng = np.random.default_rng(0)
    for k in range(2):
        Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(data / f"{k}.png")
    base = dict(data=str(data), out=str(out), model=AUDIT_MODEL, size=24, samples=2, methods=["vg"], measures=["ef"],
                quiet=True, num_workers=0)
    run_audit(AuditConfig(**base))
    with pytest.raises(RunDirError, match="already holds an audit run; pass --resume"):
        run_audit(AuditConfig(**base))
    with pytest.raises(RunDirError, match=r"different configuration \(samples: 2 -> 3\)"):
        run_audit(AuditConfig(**dict(base, samples=3, resume=True)))
    run_audit(AuditConfig(**dict(base, resume=True, batch_size=1)))      # runtime knobs may change
    Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(data / "2.png")
    with pytest.raises(RunDirError, match="the dataset differs"):
        run_audit(AuditConfig(**dict(base, resume=True)))
    r = audit_cli("audit", data, "--out", out, "--model", AUDIT_MODEL, "--size", 24, "--samples", 5,
                  "--methods", "vg", "--measures", "ef", "--resume")
    assert r.returncode == 2 and "samples: 2 -> 5" in r.stderr
    with pytest.raises(RunDirError, match="not an audit run directory"):
        run_audit(AuditConfig(**dict(base, out=str(data))))
