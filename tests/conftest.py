"""Shared fixtures: small analytic and convolutional models, devices."""
import pytest
import torch
from torch import nn

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


class Sinusoid(nn.Module):
    """logits (B, 2): F(x) = sum_i a_i sin(w_i x_i) in column 0, zeros in column 1."""

    def __init__(self, a: torch.Tensor, w: torch.Tensor):
        super().__init__()
        self.register_buffer("a", a)
        self.register_buffer("w", w)

    def forward(self, x):
        f = (self.a * torch.sin(self.w * x)).flatten(1).sum(1)
        return torch.stack([f, torch.zeros_like(f)], dim=1)


class Quadratic(nn.Module):
    """logits (B, 2): F(x) = sum_i q_i x_i^2 + l_i x_i in column 0."""

    def __init__(self, shape):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.q = nn.Parameter(torch.randn(shape, generator=g, dtype=torch.float64))
        self.l = nn.Parameter(torch.randn(shape, generator=g, dtype=torch.float64))

    def forward(self, x):
        f = (self.q * x * x + self.l * x).flatten(1).sum(1)
        return torch.stack([f, -f], dim=1)


def small_cnn(channels=3, classes=5, size=12, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(channels, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.Dropout(0.5), nn.Flatten(),
        nn.Linear(8 * (size // 2) ** 2, classes))


@pytest.fixture
def cnn():
    return small_cnn()


@pytest.fixture
def images():
    g = torch.Generator().manual_seed(3)
    return torch.rand(4, 3, 12, 12, generator=g)
