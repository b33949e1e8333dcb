"""IDX reader (on files written here) and the ICCV25 CNN."""
import gzip
import struct

import numpy as np
import pytest
import torch
from torch import nn

from spectral_xai.zoo import fashion_cnn, fashion_mnist, read_idx


def _write_idx(path, arr: np.ndarray, code: int, compress: bool):
    header = struct.pack(">HBB", 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = header + arr.astype(arr.dtype.newbyteorder(">") if arr.dtype.itemsize > 1 else arr.dtype).tobytes()
    (gzip.open if compress else open)(path, "wb").write(data)


def test_idx_reader_and_fashion_mnist_layout(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 5).astype(np.uint8)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images, 0x08, True)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels, 0x08, False)
    assert np.array_equal(read_idx(tmp_path / "t10k-images-idx3-ubyte.gz"), images)
    x, y = fashion_mnist("test", root=tmp_path)
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.float32 and float(x.max()) <= 1.0
    torch.testing.assert_close(x[:, 0] * 255, torch.from_numpy(images).float())
    assert y.tolist() == labels.tolist()
    floats = rng.standard_normal((3, 4)).astype(np.float32)
    _write_idx(tmp_path / "f.idx", floats, 0x0D, False)
    np.testing.assert_array_equal(read_idx(tmp_path / "f.idx"), floats)
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        fashion_mnist("train", root=tmp_path)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="'path'"):
        read_idx(tmp_path / "bad")


def test_fashion_cnn_shapes_and_activations():
    relu, soft = fashion_cnn(), fashion_cnn(beta=0.9)
    x = torch.rand(2, 1, 28, 28)
    assert relu(x).shape == soft(x).shape == (2, 10)
    assert sum(isinstance(m, nn.ReLU) for m in relu.modules()) == 3
    assert sum(isinstance(m, nn.Softplus) for m in soft.modules()) == 3
    assert all(m.bias is None for m in relu.modules() if isinstance(m, nn.Conv2d))


def test_environment_info_and_atomic_json(tmp_path):
    import json

    from spectral_xai.environment import environment_info, write_json

    info = environment_info("cpu")
    assert info["torch"] == torch.__version__ and "cuda" in info["build"] and info["gpu"] is None
    path = write_json({"a": 1, "env": info}, tmp_path / "sub" / "r.json")
    assert json.loads(path.read_text())["a"] == 1 and [p.name for p in path.parent.iterdir()] == ["r.json"]


def test_train_to_cap_stops_at_the_first_check_above_the_cap():
    from spectral_xai.zoo.training import accuracy, train_to_cap

    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (256,), generator=g)
    x = torch.rand(256, 1, 28, 28, generator=g) * 0.2 + y.view(-1, 1, 1, 1) * 0.8   # bright = class 1
    model, info = train_to_cap(None, x, y, x[:64], y[:64], cap=0.9, check_every=2, max_epochs=20, batch=32,
                               lr=1e-2)
    assert not model.training and info["check_accuracy"] > 0.9 and "cap_not_reached" not in info
    assert info["steps"] % 2 == 0 and accuracy(model, x[:64], y[:64]) == info["check_accuracy"]
