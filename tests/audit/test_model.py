"""The audit's model loading: a factory spec, TorchScript, torch.export and a weights file give the same table;
the normalisation sits in front of the model; a bad spec is refused."""
import numpy as np
import pandas as pd
import pytest
import torch

from spectral_xai.audit import AuditConfig, run_audit

from helpers import AUDIT_MODEL, audit_cnn


def test_torchscript_and_weights_equal_the_factory_model(tmp_path):
    net = audit_cnn()
    with pytest.warns((FutureWarning, DeprecationWarning)):   # torch 2.11 says DeprecationWarning
        torch.jit.script(net).save(str(tmp_path / "tiny.pt"))
    torch.export.save(torch.export.export(net, (torch.rand(2, 3, 24, 24),),
                                          dynamic_shapes=({0: torch.export.Dim("batch")},)), tmp_path / "tiny.pt2")
    torch.save(net.state_dict(), tmp_path / "w.pt")
    base = dict(data="skimage", size=24, samples=2, limit=2, methods=["vg", "sg2"], measures=["ef", "deletion"],
                fractions=3, quiet=True, report=False)
    a = run_audit(AuditConfig(out=str(tmp_path / "a"), model=AUDIT_MODEL, **base))["table"]
    b = run_audit(AuditConfig(out=str(tmp_path / "b"), model=str(tmp_path / "tiny.pt"), **base))["table"]
    c = run_audit(AuditConfig(out=str(tmp_path / "c"), model=AUDIT_MODEL, weights=str(tmp_path / "w.pt"),
                              **base))["table"]
    e = run_audit(AuditConfig(out=str(tmp_path / "e"), model=str(tmp_path / "tiny.pt2"), **base))["table"]
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, e)
    pd.testing.assert_frame_equal(a, c)
    d = run_audit(AuditConfig(out=str(tmp_path / "d"), model=AUDIT_MODEL, mean=[0.5] * 3, std=[0.25] * 3,
                              **base))["table"]
    assert not np.allclose(d["vg_ef"], a["vg_ef"])                 # the normalisation is in front of the model
    with pytest.raises(ValueError, match="option 'model'"):
        run_audit(AuditConfig(out=str(tmp_path / "f"), model="no_such_module:factory", **base))
