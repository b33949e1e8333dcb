"""The audit's datasets: the Fashion-MNIST built-in reads IDX files with their labels and class names."""
import json

import numpy as np
import torch

from spectral_xai.audit import AuditConfig, run_audit
from spectral_xai.audit.sources.folders import FolderDataset
from spectral_xai.zoo import fashion_cnn

from helpers import write_idx


def test_fashion_mnist_builtin_reads_idx_files(tmp_path, monkeypatch):
    """The built-in reads the IDX files (here six written by the test) with their labels and class names."""
    rng = np.random.default_rng(3)
    imgs = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    labels = np.array([0, 3, 9, 3, 1, 7], dtype=np.uint8)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", imgs)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels)
    monkeypatch.setenv("SPECTRAL_XAI_FASHION_MNIST", str(tmp_path))
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
    x = FolderDataset("fashion-mnist", 28, 1)[1].image
    torch.testing.assert_close(x[0], torch.from_numpy(imgs[1]).float() / 255)
