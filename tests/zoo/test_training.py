"""Training to an accuracy cap on a separable toy set."""
import torch

from spectral_xai.zoo.training import accuracy, train_to_cap


def test_train_to_cap_stops_at_the_first_check_above_the_cap():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (256,), generator=g)
    x = torch.rand(256, 1, 28, 28, generator=g) * 0.2 + y.view(-1, 1, 1, 1) * 0.8   # bright = class 1
    model, info = train_to_cap(None, x, y, x[:64], y[:64], cap=0.9, check_every=2, max_epochs=20, batch=32,
                               lr=1e-2)
    assert not model.training and info["check_accuracy"] > 0.9 and "cap_not_reached" not in info
    assert info["steps"] % 2 == 0 and accuracy(model, x[:64], y[:64]) == info["check_accuracy"]
