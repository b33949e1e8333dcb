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
