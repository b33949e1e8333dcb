"""What the audit computes for a batch: stored maps and EF equal direct calls with the same keys; the fast-path
options reach the engine."""
import numpy as np
import pandas as pd
import pytest
import torch

import spectral_xai as sx
from spectral_xai.audit import AuditConfig, run_audit
from spectral_xai.audit.sources.folders import FolderDataset
from spectral_xai.audit.store import read_shard_tensors, shard_path
from spectral_xai.zoo import efficientnet_lite0

from helpers import AUDIT_MODEL


def test_audit_maps_equal_direct_calls(tmp_path):
    cfg = AuditConfig(data="skimage", out=str(tmp_path / "r"), size=32, samples=2, limit=3, shard_size=2,
                      methods=["sg2", "sl2"], sigmas=[0.0, 1.0], measures=["ef"], maps_dtype="float32", quiet=True)
    run_audit(cfg)
    ds = FolderDataset("skimage", 32, 3, limit=3)
    x = torch.stack([ds[i].image for i in range(2, 3)])
    model = efficientnet_lite0()
    target = model(x).argmax(1)
    st = sx.smooth_grad(model, x, 0.15, target, n_samples=2, image_ids=torch.tensor([2]), return_stats=True)
    t = read_shard_tensors(shard_path(tmp_path / "r", (2, 3)))
    torch.testing.assert_close(t["maps/sg2"], st.map, rtol=1e-5, atol=1e-12)
    row = pd.read_parquet(tmp_path / "r" / "metrics.parquet").iloc[2]
    assert row["sg2_ef_plugin"] == pytest.approx(float(sx.expected_frequency(st.map)[0]), rel=1e-4)
    assert row["sg2_ef"] == pytest.approx(float(sx.expected_frequency(*st.halves)[0]), rel=1e-4)


def test_fast_path_options_reach_the_engine(tmp_path):
    base = dict(data="skimage", model=AUDIT_MODEL, size=24, samples=2, limit=2, methods=["vg", "sg2", "sl2"],
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
