"""A tiny deterministic CNN for audit tests, loaded by the CLI as ``path/to/audit_models.py:tiny_cnn``."""
import torch
from torch import nn


def tiny_cnn(classes: int = 5) -> nn.Module:
    """(B, 3, S, S) in [0, 1] -> (B, classes); weights from a fixed generator."""
    g = torch.Generator().manual_seed(7)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                        nn.Linear(8 * 16, classes))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return net.eval()
