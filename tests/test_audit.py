"""The dataset audit end to end: table, maps, report, crash safety, refusals, corrupt images, torchrun."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from spectral_xai.audit import AuditConfig, RunDirError, build_report, run_audit
from spectral_xai.audit.cli import config_from_args
from spectral_xai.audit.report import FIGURES
from spectral_xai.audit.store import read_shard_tensors, shard_path, shard_plan

HERE = Path(__file__).resolve().parent
TINY = f"{HERE / 'audit_models.py'}:tiny_cnn"
PHOTOS = ("coffee", "chelsea", "astronaut", "rocket", "camera")


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """Bundled photos saved as files in class sub-folders (jpg and png, different sizes) + one corrupt file."""
    from skimage import data

    root = tmp_path_factory.mktemp("photos")
    for k, name in enumerate(PHOTOS):
        sub = root / ("animals" if name == "chelsea" else "things")
        sub.mkdir(exist_ok=True)
        img = Image.fromarray(getattr(data, name)())
        img.save(sub / f"{name}.{'png' if k % 2 else 'jpg'}")
    (root / "things" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    return root


def _cli(*args, env=None, **kw):
    cmd = [sys.executable, "-m", "spectral_xai", *map(str, args)]
    e = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.run(cmd, env=e, cwd=HERE, capture_output=True, text=True, **kw)


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


def test_audit_maps_equal_direct_calls(tmp_path):
    import spectral_xai as sx
    from spectral_xai.zoo import efficientnet_lite0
    from spectral_xai.audit.data import AuditDataset

    cfg = AuditConfig(data="skimage", out=str(tmp_path / "r"), size=32, samples=2, limit=3, shard_size=2,
                      methods=["sg2", "sl2"], sigmas=[0.0, 1.0], measures=["ef"], maps_dtype="float32", quiet=True)
    run_audit(cfg)
    ds = AuditDataset("skimage", 32, 3, limit=3)
    x = torch.stack([ds[i][1] for i in range(2, 3)])
    model = efficientnet_lite0()
    target = model(x).argmax(1)
    sg2 = sx.smooth_grad(model, x, 0.15, target, n_samples=2, image_ids=torch.tensor([2]))
    t = read_shard_tensors(shard_path(tmp_path / "r", (2, 3)))
    torch.testing.assert_close(t["maps/sg2"], sg2, rtol=1e-5, atol=1e-12)
    ef = pd.read_parquet(tmp_path / "r" / "metrics.parquet")["sg2_ef"].iloc[2]
    assert ef == pytest.approx(float(sx.expected_frequency(sg2)[0]), rel=1e-4)


def _tiny_args(data, out, *extra):
    return ["audit", data, "--out", out, "--model", TINY, "--size", 24, "--samples", 3, "--shard-size", 1,
            "--methods", "vg,sg2,sl2,al,xig", "--fractions", 5, "--quiet", "--num-workers", 0, *extra]


def test_sigkill_then_resume_equals_fresh_run(photo_folder, tmp_path):
    fresh, killed = tmp_path / "fresh", tmp_path / "killed"
    r = _cli(*_tiny_args(photo_folder, fresh))
    assert r.returncode == 0, r.stderr
    n_shards = len(shard_plan(len(PHOTOS) + 1, 1))
    proc = subprocess.Popen([sys.executable, "-m", "spectral_xai", *map(str, _tiny_args(photo_folder, killed))],
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
    r = _cli(*_tiny_args(photo_folder, killed, "--resume"))
    assert r.returncode == 0, r.stderr
    a = pd.read_parquet(fresh / "metrics.parquet")
    b = pd.read_parquet(killed / "metrics.parquet")
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    for span in shard_plan(len(PHOTOS) + 1, 1):
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
    base = dict(data=str(data), out=str(out), model=TINY, size=24, samples=2, methods=["vg"], measures=["ef"],
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
    r = _cli("audit", data, "--out", out, "--model", TINY, "--size", 24, "--samples", 5, "--methods", "vg",
             "--measures", "ef", "--resume")
    assert r.returncode == 2 and "samples: 2 -> 5" in r.stderr
    with pytest.raises(RunDirError, match="not an audit run directory"):
        run_audit(AuditConfig(**dict(base, out=str(data))))


def test_config_file_equals_flags(tmp_path):
    from spectral_xai.__main__ import main  # noqa: F401  (the parser is built there)
    import argparse

    from spectral_xai.audit.cli import add_audit_parser

    parser = argparse.ArgumentParser()
    add_audit_parser(parser.add_subparsers(dest="command"))
    flags = ["audit", "skimage", "--out", "x", "--size", "32", "--methods", "vg,sg2", "--sigmas", "0:1:5",
             "--noise-scale", "0.2", "--seed", "3"]
    toml = tmp_path / "run.toml"
    toml.write_text('[audit]\ndata = "skimage"\nout = "x"\nsize = 32\nmethods = ["vg", "sg2"]\n'
                    'sigmas = [0.0, 0.25, 0.5, 0.75, 1.0]\nnoise-scale = 0.2\nseed = 3\n')
    a = config_from_args(parser.parse_args(flags))
    b = config_from_args(parser.parse_args(["audit", "--config", str(toml)]))
    assert a.key() == b.key() and a.sigmas == [0.0, 0.25, 0.5, 0.75, 1.0]
    c = config_from_args(parser.parse_args(["audit", "--config", str(toml), "--seed", "4"]))
    assert c.seed == 4 and c.size == 32                                 # flags override the file
    toml.write_text("[audit]\nsamplez = 3\n")
    with pytest.raises(ValueError, match="unknown option 'samplez'"):
        config_from_args(parser.parse_args(["audit", "--config", str(toml)]))
    with pytest.raises(ValueError, match="option 'methods'"):
        AuditConfig(methods=["vg", "gradcam"]).validate()
    r = _cli("audit", "--help")
    assert r.returncode == 0 and "--resume" in r.stdout and "torchrun" in r.stdout


def test_torchrun_two_gloo_processes_equal_one(photo_folder, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    r = _cli(*_tiny_args(photo_folder, one))
    assert r.returncode == 0, r.stderr
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
           "spectral_xai", *map(str, _tiny_args(photo_folder, two))]
    r = subprocess.run(cmd, cwd=HERE, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    pd.testing.assert_frame_equal(pd.read_parquet(one / "metrics.parquet"), pd.read_parquet(two / "metrics.parquet"),
                                  check_exact=True)
    sessions = json.loads((two / "sessions.json").read_text())
    assert [s["rank"] for s in sessions[0]["ranks"]] == [0, 1]
    assert all(s["images"] > 0 for s in sessions[0]["ranks"])            # both ranks took a share
    assert json.loads((two / "manifest.json").read_text())["world_size"] == 2
    assert (two / "report.html").exists()


def test_torchscript_and_weights_equal_the_factory_model(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("audit_models", HERE / "audit_models.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    net = mod.tiny_cnn()
    with pytest.warns(FutureWarning):
        torch.jit.script(net).save(str(tmp_path / "tiny.pt"))
    torch.export.save(torch.export.export(net, (torch.rand(2, 3, 24, 24),),
                                          dynamic_shapes=({0: torch.export.Dim("batch")},)), tmp_path / "tiny.pt2")
    torch.save(net.state_dict(), tmp_path / "w.pt")
    base = dict(data="skimage", size=24, samples=2, limit=2, methods=["vg", "sg2"], measures=["ef", "deletion"],
                fractions=3, quiet=True, report=False)
    a = run_audit(AuditConfig(out=str(tmp_path / "a"), model=TINY, **base))["table"]
    b = run_audit(AuditConfig(out=str(tmp_path / "b"), model=str(tmp_path / "tiny.pt"), **base))["table"]
    c = run_audit(AuditConfig(out=str(tmp_path / "c"), model=TINY, weights=str(tmp_path / "w.pt"), **base))["table"]
    e = run_audit(AuditConfig(out=str(tmp_path / "e"), model=str(tmp_path / "tiny.pt2"), **base))["table"]
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, e)
    pd.testing.assert_frame_equal(a, c)
    d = run_audit(AuditConfig(out=str(tmp_path / "d"), model=TINY, mean=[0.5] * 3, std=[0.25] * 3, **base))["table"]
    assert not np.allclose(d["vg_ef"], a["vg_ef"])                 # the normalisation is in front of the model
    with pytest.raises(ValueError, match="option 'model'"):
        run_audit(AuditConfig(out=str(tmp_path / "f"), model="no_such_module:factory", **base))


def test_fashion_mnist_builtin_reads_idx_files(tmp_path, monkeypatch):
    """The built-in reads the IDX files (here six written by the test) with their labels and class names."""
    import struct

    rng = np.random.default_rng(3)
    imgs = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    labels = np.array([0, 3, 9, 3, 1, 7], dtype=np.uint8)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(struct.pack(">HBB3I", 0, 8, 3, 6, 28, 28) + imgs.tobytes())
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(struct.pack(">HBBI", 0, 8, 1, 6) + labels.tobytes())
    monkeypatch.setenv("SPECTRAL_XAI_FASHION_MNIST", str(tmp_path))
    from spectral_xai.zoo import fashion_cnn

    torch.manual_seed(0)
    torch.save(fashion_cnn().state_dict(), tmp_path / "cnn.pt")
    cfg = AuditConfig(data="fashion-mnist", out=str(tmp_path / "run"), model="spectral_xai.zoo:fashion_cnn",
                      weights=str(tmp_path / "cnn.pt"), size=28, grayscale=True, target="label", samples=2,
                      sigmas=[0.0, 1.0], methods=["vg", "sl2"], measures=["ef", "sigma_opt"], limit=5, quiet=True)
    table = run_audit(cfg)["table"]
    assert table["label"].tolist() == [0, 3, 9, 3, 1] and table["target"].tolist() == [0, 3, 9, 3, 1]
    assert table["name"].iloc[2] == "fashion-mnist/test/00002" and np.isfinite(table["sl2_ef"]).all()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["output_classes"][9] == "Ankle boot" and manifest["dataset"]["n_images"] == 5
    from spectral_xai.audit.data import AuditDataset

    x = AuditDataset("fashion-mnist", 28, 1)[1][1]
    torch.testing.assert_close(x[0], torch.from_numpy(imgs[1]).float() / 255)


def test_fast_path_options_reach_the_engine(tmp_path):
    base = dict(data="skimage", model=TINY, size=24, samples=2, limit=2, methods=["vg", "sg2", "sl2"],
                sigmas=[0.0, 0.5], measures=["ef", "sigma_opt"], quiet=True, report=False)
    plain = AuditConfig(out=str(tmp_path / "a"), **base)
    fast = AuditConfig(out=str(tmp_path / "b"), channels_last=True, autocast="bfloat16", **base)
    assert plain.fast() is None and fast.fast().channels_last and fast.fast().dtype == torch.bfloat16
    assert plain.key() != fast.key()
    a = run_audit(plain)["table"]
    b = run_audit(fast)["table"]
    ef = [f"{m}_ef" for m in ("vg", "sg2", "sl2")]
    assert not a[ef].equals(b[ef])                                     # bf16 passes: not the same bits
    np.testing.assert_allclose(b[ef].to_numpy(), a[ef].to_numpy(), rtol=0.05)
    with pytest.raises(ValueError, match="option 'autocast'"):
        AuditConfig(autocast="float8").validate()


def test_a_dataset_of_only_corrupt_files_gives_failed_rows_and_a_report(tmp_path):
    data = tmp_path / "bad"
    data.mkdir()
    (data / "a.jpg").write_bytes(b"not an image")
    (data / "b.png").write_bytes(b"")
    table = run_audit(AuditConfig(data=str(data), out=str(tmp_path / "run"), model=TINY, size=24, samples=2,
                                  quiet=True, num_workers=0))["table"]
    assert table["status"].tolist() == ["failed", "failed"] and table["error"].str.len().min() > 0
    html = (tmp_path / "run" / "report.html").read_text()
    assert "no image was audited successfully" in html and "a.jpg" in html
