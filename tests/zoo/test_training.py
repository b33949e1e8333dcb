"""Training to an accuracy cap on a separable toy set."""
import pytest
import torch

from spectral_xai.activation_smoothing import GaussianActivation
from spectral_xai.zoo.training import accuracy, train_to_cap


@pytest.mark.parametrize("beta, activation", [(None, "relu"), (4.0, "gelu")])
def test_train_to_cap_stops_at_the_first_check_above_the_cap(beta, activation):
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (256,), generator=g)
    x = torch.rand(256, 1, 28, 28, generator=g) * 0.2 + y.view(-1, 1, 1, 1) * 0.8   # bright = class 1
    model, info = train_to_cap(beta, x, y, x[:64], y[:64], cap=0.9, check_every=2, max_epochs=20, batch=32,
                               lr=1e-2, activation=activation)
    assert not model.training and info["check_accuracy"] > 0.9 and "cap_not_reached" not in info
    assert sum(isinstance(m, GaussianActivation) for m in model.modules()) == (3 if activation == "gelu" else 0)
    assert info["steps"] % 2 == 0 and accuracy(model, x[:64], y[:64]) == info["check_accuracy"]


@pytest.mark.parametrize("ndim, shape", [(1, (40,)), (3, (8, 8, 8))])
def test_small_cnn_in_1d_and_3d_trains_to_the_cap(ndim, shape):
    """small_cnn(ndim=1|3), the ICCV25 CNN for signals / volumes, through train_to_cap(model_of=...)."""
    from torch import nn

    from spectral_xai.zoo import fashion_cnn, small_cnn

    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 2, (128,), generator=g)
    x = torch.rand(128, 1, *shape, generator=g) * 0.2 + y.view(-1, *([1] * (ndim + 1))) * 0.8
    model, info = train_to_cap(2.0, x, y, x[:64], y[:64], cap=0.9, check_every=2, max_epochs=20, batch=32, lr=1e-2,
                               model_of=lambda b: small_cnn(b, ndim=ndim, size=shape[0], classes=2))
    assert info["check_accuracy"] > 0.9 and "cap_not_reached" not in info
    conv = {1: nn.Conv1d, 3: nn.Conv3d}[ndim]
    assert sum(isinstance(m, conv) for m in model.modules()) == 2
    assert sum(isinstance(m, nn.Softplus) and m.beta == 2.0 for m in model.modules()) == 3
    torch.manual_seed(0)
    a = fashion_cnn(None)
    torch.manual_seed(0)
    b = small_cnn(None, ndim=2, size=28)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
