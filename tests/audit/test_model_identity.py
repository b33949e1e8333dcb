"""The audit knows which model it ran: a fingerprint of the weights in the manifest, a resume with other
weights refused, a random-init factory the same model in every run, every torchrun rank the same model."""
import hashlib
import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch
from torch import nn

from spectral_xai.audit import AuditConfig, RunDirError, run_audit
from spectral_xai.audit import model as audit_model

NETS = '''
import os

import torch
from torch import nn


def random_init():
    """Default (random) initialisation: no seed of its own."""
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(16, 3)).eval()


def per_rank():
    """Rank 1 of a torchrun job builds other weights than rank 0."""
    net = random_init()
    if os.environ.get("RANK", "0") == "1":
        with torch.no_grad():
            net[-1].bias.add_(1.0)
    return net
'''
TINY = dict(data="skimage", size=32, samples=2, limit=2, methods=["vg"], measures=["ef"], quiet=True,
            num_workers=0, report=False)


@pytest.fixture
def nets(tmp_path):
    path = tmp_path / "nets.py"
    path.write_text(NETS)
    return path


def _cli(*args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "spectral_xai", *map(str, args)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def _fingerprint_by_hand(model: nn.Module) -> str:
    """The documented digest computed independently: class names, the module tree's repr (torch's classes
    only: no class source; no factory file), then (name, dtype, shape, bytes) sorted."""
    h = hashlib.sha256(f"{type(model).__qualname__}/{type(model).__qualname__}\n".encode())
    h.update(f"structure\n{model!r}\n".encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def test_fingerprint_covers_every_weight_and_is_chunk_independent(monkeypatch):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 3)).eval()
    cfg = AuditConfig(model="x.py:f")
    digest = audit_model.model_fingerprint(cfg, net)
    assert digest == _fingerprint_by_hand(net)
    monkeypatch.setattr(audit_model, "_CHUNK", 7)                       # 1 float32 per chunk: same digest
    assert audit_model.model_fingerprint(cfg, net) == digest
    with torch.no_grad():
        net[1].running_var[2] = torch.nextafter(net[1].running_var[2], torch.tensor(2.0))   # one ulp, a buffer
    assert audit_model.model_fingerprint(cfg, net) != digest
    assert audit_model.model_fingerprint(cfg, net.double()) != audit_model.model_fingerprint(cfg, net.float())


def test_resume_with_other_weights_in_the_same_file_is_refused(nets, tmp_path):
    weights, out = tmp_path / "w.pt", tmp_path / "run"
    torch.manual_seed(1)
    torch.save(audit_model._factory(f"{nets}:random_init")().state_dict(), weights)
    base = dict(TINY, model=f"{nets}:random_init", weights=str(weights), out=str(out))
    run_audit(AuditConfig(**base))
    old = json.loads((out / "manifest.json").read_text())["model"]["fingerprint"]
    run_audit(AuditConfig(**dict(base, resume=True)))                   # the same weights: resumes
    state = torch.load(weights)
    state["4.bias"] += 1e-3
    torch.save(state, weights)
    new = audit_model.model_fingerprint(AuditConfig(**base), audit_model.load_model(AuditConfig(**base),
                                                                                    torch.device("cpu")))
    assert new != old
    with pytest.raises(RunDirError, match=f"model fingerprint: {old} -> {new}"):
        run_audit(AuditConfig(**dict(base, resume=True)))
    r = _cli("audit", "--out", out, "--resume", "--quiet", cwd=tmp_path)
    assert r.returncode == 2 and f"model fingerprint: {old} -> {new}" in r.stderr, r.stderr


def test_random_init_factory_is_the_same_model_in_every_run(nets, tmp_path):
    base = dict(TINY, model=f"{nets}:random_init")
    torch.manual_seed(123)
    before = torch.get_rng_state()
    audit_model.load_model(AuditConfig(**base), torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), before)                   # the caller's RNG is restored
    a = run_audit(AuditConfig(**base, out=str(tmp_path / "a")))["table"]
    torch.manual_seed(456)                                              # whatever the caller's RNG holds
    b = run_audit(AuditConfig(**base, out=str(tmp_path / "b")))["table"]
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    fa, fb = (json.loads((tmp_path / d / "manifest.json").read_text())["model"]["fingerprint"] for d in "ab")
    assert fa == fb
    c = run_audit(AuditConfig(**base, out=str(tmp_path / "c"), seed=1))["table"]   # the seed picks the model
    fc = json.loads((tmp_path / "c" / "manifest.json").read_text())["model"]["fingerprint"]
    assert fc != fa and not a["vg_ef"].equals(c["vg_ef"])


def test_torchrun_ranks_with_different_weights_are_refused(nets, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
           "spectral_xai", "audit", "skimage", "--out", str(out), "--model", f"{nets}:per_rank", "--size", "32",
           "--samples", "2", "--limit", "2", "--methods", "vg", "--quiet", "--num-workers", "0"]
    r = subprocess.run(cmd, cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode != 0
    assert "the processes built different models" in r.stderr and "rank 1: " in r.stderr, r.stderr[-3000:]
    assert not (out / "manifest.json").exists()
