"""IDX reader (on files written here) and the ICCV25 CNN."""
import numpy as np
import pytest
import torch
from torch import nn

from spectral_xai.zoo import fashion_cnn, fashion_mnist, read_idx

from helpers import write_idx


def test_idx_reader_and_fashion_mnist_layout(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 5).astype(np.uint8)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images, 0x08, True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels, 0x08, False)
    assert np.array_equal(read_idx(tmp_path / "t10k-images-idx3-ubyte.gz"), images)
    x, y = fashion_mnist("test", root=tmp_path)
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.float32 and float(x.max()) <= 1.0
    torch.testing.assert_close(x[:, 0] * 255, torch.from_numpy(images).float())
    assert y.tolist() == labels.tolist()
    floats = rng.standard_normal((3, 4)).astype(np.float32)
    write_idx(tmp_path / "f.idx", floats, 0x0D, False)
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


def _gelu_smoothed_by_quadrature(y: torch.Tensor, beta: float, nodes: int = 80) -> torch.Tensor:
    """E[GELU(y + Z/√β)] by numpy's Gauss–Hermite rule of order ``nodes``, in float64."""
    u, w = np.polynomial.hermite.hermgauss(nodes)
    y = y.double()
    return sum(float(wk) / np.sqrt(np.pi) * nn.functional.gelu(y + float(uk) * np.sqrt(2 / beta))
               for uk, wk in zip(u, w))


def test_fashion_cnn_gelu_and_its_gaussian_smoothing():
    torch.manual_seed(0)
    plain = fashion_cnn(activation="gelu")
    torch.manual_seed(0)
    smooth = fashion_cnn(0.5, activation="gelu")
    assert sum(type(m) is nn.GELU for m in plain.modules()) == 3
    assert [r[1:] for r in smooth.smooth_activations_report.replaced] == [("GELU", "closed form")] * 3
    assert sum(isinstance(m, nn.SiLU) for m in fashion_cnn(activation="silu").modules()) == 3
    for a, b in zip(plain.state_dict().values(), smooth.state_dict().values()):   # the same initialisation
        torch.testing.assert_close(a, b)
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    y = x.double()
    for layer in plain.double():   # the plain network with each GELU replaced by its quadrature smoothing
        y = _gelu_smoothed_by_quadrature(y, 0.5) if isinstance(layer, nn.GELU) else layer(y)
    torch.testing.assert_close(smooth.double()(x.double()), y, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="'activation'"):
        fashion_cnn(activation="tanh")
