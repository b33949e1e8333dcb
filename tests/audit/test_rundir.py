"""The run directory keeps its promise: one writer at a time (a lock), nothing mixed into a run (foreign shards,
edited model code, edited images), broken files redone or named, a full disk named, options refused before
anything is written, and the same command twice gives the same bytes."""
import errno
import json
import os
import stat
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import spectral_xai.atomic_io
from spectral_xai.__main__ import main
from spectral_xai.audit import AuditConfig, RunDirError, build_report, run_audit
from spectral_xai.audit import runner
from spectral_xai.audit.rundir import LOCK, locked, run_dir_config
from spectral_xai.audit.store import merge_table, shard_path, shard_spans

from helpers import AUDIT_MODEL

N_IMAGES = 3
NETS = '''
import os
import time

import torch
from torch import nn


def net():
    """(B, 3, S, S) -> (B, 3); fixed weights."""
    g = torch.Generator().manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                      nn.Linear(16, 3))
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return m.eval()


class Gated(nn.Module):
    """net(), whose gradient passes wait while the file named by $GATE exists (at most 120 s), saying so with
    the file $GATE.waiting."""

    def __init__(self):
        super().__init__()
        self.inner = net()

    def forward(self, x):
        deadline = time.time() + 120
        if torch.is_grad_enabled() and os.path.exists(os.environ["GATE"]):
            open(os.environ["GATE"] + ".waiting", "w").close()
        while torch.is_grad_enabled() and os.path.exists(os.environ["GATE"]) and time.time() < deadline:
            time.sleep(0.01)
        return self.inner(x)


def gated():
    return Gated().eval()
'''


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """nets.py and data/ with N_IMAGES uncompressed (BMP) noise images, 20 x 24 px."""
    root = tmp_path_factory.mktemp("rundir")
    (root / "nets.py").write_text(NETS)
    rng = np.random.default_rng(0)
    (root / "data").mkdir()
    for k in range(N_IMAGES):
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(root / "data" / f"{k}.bmp")
    return root


def tiny(work, out, **kw) -> AuditConfig:
    """A one-image-a-shard audit of work/data: 16 px, VG and SG² at 2 samples, EF only."""
    base = dict(data=str(work / "data"), out=str(out), model=AUDIT_MODEL, size=16, samples=2, methods=["vg", "sg2"],
                measures=["ef"], shard_size=1, quiet=True, num_workers=0, report=False)
    return AuditConfig(**{**base, **kw})


def cli_args(work, out, *extra) -> list:
    return ["audit", work / "data", "--out", out, "--model", "nets.py:net", "--size", 16, "--samples", 2,
            "--methods", "vg,sg2", "--measures", "ef", "--shard-size", 1, "--num-workers", 0, "--batch-size", 8,
            "--no-report", *extra]


def popen(work, *args, **env):
    return subprocess.Popen([sys.executable, "-m", "spectral_xai", *map(str, args)], cwd=work,
                            env=dict(os.environ, OMP_NUM_THREADS="1", **env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def main_here(capsys, monkeypatch, cwd, *args):
    """(exit status, stderr) of ``spectral-xai ARGS`` run in this process from ``cwd``."""
    monkeypatch.chdir(cwd)
    rc = main(list(map(str, args)))
    return rc, capsys.readouterr().err


# 1. one writer at a time --------------------------------------------------------------------------------------------

def test_a_held_run_directory_is_refused_and_its_temporaries_are_kept(work, tmp_path):
    out = tmp_path / "run"
    run_audit(tiny(work, out))
    in_flight = out / "shards" / ".shard-00000001-00000002.safetensors.abc.tmp"
    with locked(out):                                   # this process holds the run, writing a shard
        in_flight.write_bytes(b"half a shard")
        with pytest.raises(RunDirError, match=f"is in use by pid {os.getpid()} "):
            run_audit(tiny(work, out, resume=True))
        assert in_flight.read_bytes() == b"half a shard"
    run_audit(tiny(work, out, resume=True))             # the lock is free again: stale temporaries are cleaned
    assert not in_flight.exists() and (out / LOCK).exists()


def test_a_second_audit_process_on_a_running_directory_is_refused(work, tmp_path):
    out, gate = tmp_path / "run", tmp_path / "gate"
    gate.touch()
    first = popen(work, *cli_args(work, out, "--model", "nets.py:gated"), GATE=str(gate))
    try:
        deadline = time.time() + 120
        waiting = tmp_path / "gate.waiting"
        while not waiting.exists() and first.poll() is None and time.time() < deadline:
            time.sleep(0.02)                            # the first holds the lock and waits in its first shard
        assert first.poll() is None and waiting.exists(), first.communicate()
        (out / "shards").mkdir(exist_ok=True)
        in_flight = out / "shards" / ".shard-00000000-00000001.safetensors.abc.tmp"
        in_flight.write_bytes(b"the first process's shard in flight")
        second = popen(work, *cli_args(work, out, "--model", "nets.py:gated", "--resume"), GATE=str(gate))
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2 and f"is in use by pid {first.pid} " in err and "Traceback" not in err, err
        assert in_flight.exists()
    finally:
        gate.unlink()
        _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert len(pd.read_parquet(out / "metrics.parquet")) == N_IMAGES


def test_two_audits_started_at_once_one_runs_the_other_is_refused(work, tmp_path):
    out = tmp_path / "run"
    procs = [popen(work, *cli_args(work, out)) for _ in range(2)]
    results = [(p.communicate(timeout=300)[1], p.returncode)[::-1] for p in procs]
    assert sorted(rc for rc, _ in results) == [0, 2], results
    err = next(e for rc, e in results if rc == 2)
    assert ("is in use by pid" in err or "already holds an audit run" in err) and "Traceback" not in err, err
    assert pd.read_parquet(out / "metrics.parquet")["index"].tolist() == list(range(N_IMAGES))
    assert not list(out.rglob("*.tmp"))


# 2., 12. the command line refuses before it writes --------------------------------------------------------------

@pytest.mark.parametrize("extra, message", [
    (["--seed", 2**64], "option 'seed': expected an integer 0 <= seed < 2^64, got 18446744073709551616"),
    (["--seed", -1], "option 'seed': expected an integer 0 <= seed < 2^64, got -1"),
    (["--size", 1, "--measures", "ef"], "option 'size': expected at least 2 pixels"),
    (["--size", 9, "--measures", "ef,inconsistency"], "option 'size': expected at least 10 pixels"),
    (["--sg-sigma", "nan"], "option 'sg_sigma': expected a finite number >= 0, got nan"),
    (["--noise-scale", "inf"], "option 'noise_scale': expected a finite number > 0, got inf"),
])
def test_bad_options_are_named_before_anything_is_written(work, tmp_path, capsys, monkeypatch, extra, message):
    out = tmp_path / "run"
    rc, err = main_here(capsys, monkeypatch, work, *cli_args(work, out), *extra)
    assert rc == 2 and message in err, err
    assert not out.exists()


def test_resume_of_a_directory_without_a_run_is_refused(work, tmp_path, capsys, monkeypatch):
    rc, err = main_here(capsys, monkeypatch, work, "audit", "--out", tmp_path / "typo", "--resume")
    assert rc == 2 and "option 'resume'" in err and "holds no audit run" in err, err
    assert not (tmp_path / "typo").exists()


def test_the_smallest_sizes_run(work, tmp_path):
    """The minimum --size of the refusals above is what the engine needs: 2 px for EF, 10 with inconsistency."""
    run_audit(tiny(work, tmp_path / "a", model=f"{work / 'nets.py'}:net", size=2, limit=1))
    run_audit(tiny(work, tmp_path / "b", size=10, measures=["ef", "inconsistency"], methods=["vg", "sl2"],
                   sigmas=[0.0, 1.0], limit=1))


def test_a_run_that_failed_before_its_first_shard_can_be_started_again(work, tmp_path, monkeypatch):
    out = tmp_path / "run"

    def refuse(*a, **k):
        raise ValueError("spectral_xai: argument 'x': refused by the engine")

    with monkeypatch.context() as m:
        m.setattr(runner, "audit_batch", refuse)
        with pytest.raises(ValueError, match="refused by the engine"):
            run_audit(tiny(work, out))
    assert (out / "manifest.json").exists() and not list(out.glob("shards/shard-*"))
    table = run_audit(tiny(work, out, samples=3))["table"]          # not a resume: other options, a new run
    assert len(table) == N_IMAGES and run_dir_config(out)["samples"] == 3


# 3. foreign shards ------------------------------------------------------------------------------------------------

def test_a_foreign_shard_is_named_on_resume_and_at_the_merge(work, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    run_audit(tiny(work, a))
    run_audit(tiny(work, b, samples=3))
    spans = shard_spans(N_IMAGES, 1)
    own = shard_path(a, spans[1]).read_bytes()
    shard_path(a, spans[1]).write_bytes(shard_path(b, spans[1]).read_bytes())       # another run's shard
    with pytest.raises(RunDirError, match=f"shard {shard_path(a, spans[1])} belongs to another run"):
        run_audit(tiny(work, a, resume=True))
    with pytest.raises(RunDirError, match=f"shard {shard_path(a, spans[1])} belongs to another run"):
        merge_table(a, spans)
    shard_path(a, spans[1]).write_bytes(shard_path(a, spans[0]).read_bytes())       # over another span's name
    for call in (lambda: run_audit(tiny(work, a, resume=True)), lambda: merge_table(a, spans)):
        with pytest.raises(RunDirError, match=r"shard .*shard-00000001-00000002.safetensors holds the images "
                                              r"\[0, 1\] \(rows \[0\]\), not those of its name, \[1, 2\]"):
            call()
    shard_path(a, spans[1]).write_bytes(own)
    assert run_audit(tiny(work, a, resume=True))["table"]["index"].tolist() == list(range(N_IMAGES))


# 4., 5. what a resume re-checks: the model's code, the images' bytes ------------------------------------------------

def test_resume_after_editing_the_factorys_code_is_refused(work, tmp_path):
    nets, out = tmp_path / "nets.py", tmp_path / "run"
    nets.write_text(NETS)
    cfg = tiny(work, out, model=f"{nets}:net")
    run_audit(cfg)
    nets.write_text(NETS.replace("nn.Linear(16, 3))", "nn.Linear(16, 3), nn.ReLU())"))   # same state_dict
    with pytest.raises(RunDirError, match="the model differs from the one it was started on"):
        run_audit(tiny(work, out, model=f"{nets}:net", resume=True))
    nets.write_text(NETS)
    run_audit(tiny(work, out, model=f"{nets}:net", resume=True))


def test_model_objects_with_other_layers_have_other_fingerprints():
    from torch import nn

    from spectral_xai.audit.model import model_fingerprint

    base = [nn.Conv2d(3, 4, 3), nn.Flatten()]
    a, b = nn.Sequential(*base), nn.Sequential(*base, nn.ReLU())
    assert a.state_dict().keys() == b.state_dict().keys()
    assert model_fingerprint(None, a) != model_fingerprint(None, b)
    assert model_fingerprint(None, a) == model_fingerprint(None, nn.Sequential(*base))


def test_resume_notices_a_same_size_image_edit_but_not_a_new_mtime(work, tmp_path):
    data, out = tmp_path / "data", tmp_path / "run"
    data.mkdir()
    for p in (work / "data").iterdir():
        (data / p.name).write_bytes(p.read_bytes())
    cfg = dict(data=str(data), resume=True)
    run_audit(tiny(work, out, data=str(data)))
    target = data / "1.bmp"
    original = target.read_bytes()
    edited = bytearray(original)
    edited[-1] ^= 0xFF                                   # one pixel's byte: same size, same name
    target.write_bytes(bytes(edited))
    with pytest.raises(RunDirError, match=r"item 1 \('1.bmp', in shard-00000001-00000002.safetensors\) has "
                                          "changed"):
        run_audit(tiny(work, out, **cfg))
    target.write_bytes(original)
    os.utime(target, (time.time() + 100, time.time() + 100))   # a copy's new mtime: the same data, resumes
    run_audit(tiny(work, out, **cfg))


# 6. broken files ---------------------------------------------------------------------------------------------------

def test_truncated_and_empty_shards_are_redone_with_a_warning(work, tmp_path, capfd):
    out = tmp_path / "run"
    first = run_audit(tiny(work, out))["table"]
    spans = shard_spans(N_IMAGES, 1)
    truncated, empty = shard_path(out, spans[0]), shard_path(out, spans[2])
    truncated.write_bytes(truncated.read_bytes()[:200])
    empty.write_bytes(b"")
    capfd.readouterr()
    again = run_audit(tiny(work, out, resume=True))["table"]
    err = capfd.readouterr().err
    for path in (truncated, empty):
        assert f"warning: shard {path} does not open" in err, err
    pd.testing.assert_frame_equal(again, first, check_exact=True)
    assert json.loads((out / "sessions.json").read_text())[-1]["images"] == 2       # only those two redone


def test_report_and_resume_name_a_missing_or_broken_file(work, tmp_path):
    out = tmp_path / "run"
    run_audit(tiny(work, out, panels=1))
    build_report(out)
    manifest = (out / "manifest.json").read_text()
    for path in sorted((out / "shards").iterdir()):
        path.unlink()
    with pytest.raises(RunDirError, match=r"shard .*shard-00000000-00000001.safetensors is missing"):
        build_report(out)
    cases = [("{\"config\": ", "manifest.json is not valid JSON"),
             (json.dumps({**json.loads(manifest), "config": None}), "not an audit manifest .*: config"),
             (json.dumps({k: v for k, v in json.loads(manifest).items() if k != "config"}),
              "not an audit manifest .*: config")]
    for text, message in cases:
        (out / "manifest.json").write_text(text)
        for call in (build_report, run_dir_config, lambda d: run_audit(tiny(work, d, resume=True))):
            with pytest.raises(RunDirError, match=message) as info:
                call(out)
            assert str(out / "manifest.json") in str(info.value)
    (out / "sessions.json").write_text("[{")
    (out / "manifest.json").write_text(manifest)
    with pytest.raises(RunDirError, match="sessions.json is not valid JSON"):
        build_report(out)


# 7. a full disk, the progress line, file modes --------------------------------------------------------------------

def test_a_full_disk_is_named_and_the_run_resumes(work, tmp_path, monkeypatch, capfd):
    import safetensors.torch

    out, fresh = tmp_path / "run", tmp_path / "fresh"
    real = safetensors.torch.save_file

    def disk_full_on_the_second(tensors, path, metadata=None):
        if ".shard-00000001-" in str(path):
            with open(path, "wb") as f:
                f.write(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(tensors, path, metadata=metadata)

    with monkeypatch.context() as m:
        m.setattr(safetensors.torch, "save_file", disk_full_on_the_second)
        capfd.readouterr()
        with pytest.raises(RunDirError, match=f"no space left on device while writing "
                                              f"{shard_path(out, (1, 2))}; free space and run the audit again "
                                              "with --resume"):
            run_audit(tiny(work, out, quiet=False))
    err = capfd.readouterr().err
    written = [int(ln.split(" shards written")[0].rsplit(", ", 1)[1]) for ln in err.splitlines()
               if ln.startswith("audit: shard")]
    assert written and max(written) == 1, err                          # only the written shard was claimed
    assert not list(out.rglob("*.tmp")) and not shard_path(out, (1, 2)).exists()
    assert shard_path(out, (0, 1)).exists()
    table = run_audit(tiny(work, out, resume=True))["table"]
    pd.testing.assert_frame_equal(table, run_audit(tiny(work, fresh))["table"], check_exact=True)
    build_report(out)
    before = (out / "report.html").read_bytes()

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as m:
        m.setattr(spectral_xai.atomic_io.os, "fsync", no_space)
        with pytest.raises(RunDirError, match=f"no space left on device while writing {out / 'report.html'}"):
            build_report(out)
    assert (out / "report.html").read_bytes() == before and not list(out.rglob("*.tmp"))


def test_every_run_file_has_the_same_mode(work, tmp_path):
    out = tmp_path / "run"
    run_audit(tiny(work, out, report=True, panels=1))
    umask = os.umask(0o022)
    os.umask(umask)
    files = [p for p in out.rglob("*") if p.is_file() and p.name != LOCK]
    assert {p.name for p in files} >= {"manifest.json", "sessions.json", "metrics.parquet", "report.html",
                                       "shard-00000000-00000001.safetensors"}
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o666 & ~umask}


# the same command twice ---------------------------------------------------------------------------------------------

def test_the_same_audit_command_twice_gives_the_same_table_bytes(work, tmp_path, capsys, monkeypatch):
    for out in ("a", "b"):
        rc, err = main_here(capsys, monkeypatch, work, *cli_args(work, tmp_path / out), "--quiet")
        assert rc == 0, err
    assert (tmp_path / "a" / "metrics.parquet").read_bytes() == (tmp_path / "b" / "metrics.parquet").read_bytes()
