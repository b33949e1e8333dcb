"""smooth_activations and SmoothReLU: ReLU-like modules replaced (the model untouched), the limits in β,
Gaussian smoothing by Monte Carlo, a warning for functional ReLUs, EfficientNet-Lite0."""
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import spectral_xai as sx


class FunctionalNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 12 * 12, 5)

    def forward(self, x):
        return self.fc(F.relu(self.conv(x)).flatten(1))


class Bottleneck(nn.Module):
    """torchvision style: one nn.ReLU(inplace=True) module reused three times."""

    def __init__(self, c=8):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 3, padding=1)
        self.bn1, self.bn2 = nn.BatchNorm2d(c), nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


@pytest.mark.parametrize("kind", ["softplus", "gaussian"])
def test_smooth_activations(kind, images):
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), Bottleneck(), nn.ReLU6(), nn.Flatten(),
                          nn.Linear(8 * 144, 5)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    big = 1e4 if kind == "softplus" else 1e8   # deviations from ReLU: ln2/β and φ(0)/√β
    smooth = sx.smooth_activations(model, big, kind=kind)
    assert smooth.smooth_activations_replaced == 3
    assert not any(type(m) in (nn.ReLU, nn.ReLU6) for m in smooth.modules())
    assert sum(type(m) in (nn.ReLU, nn.ReLU6) for m in model.modules()) == 3      # original untouched
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with torch.no_grad():
        torch.testing.assert_close(smooth(images), model(images), rtol=1e-3, atol=1e-3)
        soft = sx.smooth_activations(model, 0.5, kind=kind)
        assert (soft(images) - model(images)).abs().max() > 1e-2
    t = torch.linspace(-3, 10, 101)
    cap = sx.SmoothReLU(1e6, kind, cap=6.0)(t)
    torch.testing.assert_close(cap, t.clamp(0, 6), atol=1e-3, rtol=0)
    if kind == "gaussian":  # E[ReLU(x + Z/sqrt(beta))] by Monte Carlo
        z = torch.randn(200_000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        for v in (-1.0, 0.0, 0.7):
            mc = torch.relu(v + z / math.sqrt(2.0)).mean()
            assert float(sx.SmoothReLU(2.0, "gaussian")(torch.tensor(v, dtype=torch.float64))) == \
                pytest.approx(float(mc), abs=4e-3)


def test_smooth_activations_warns_on_functional_relu_and_works_on_lite0(lite0, photos64):
    with pytest.warns(UserWarning, match="FunctionalNet.forward"):
        sx.smooth_activations(FunctionalNet(), 2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        smooth = sx.smooth_activations(lite0, 1e4)
    assert smooth.smooth_activations_replaced > 10
    with torch.no_grad():
        torch.testing.assert_close(torch.softmax(smooth(photos64), 1), torch.softmax(lite0(photos64), 1),
                                   atol=2e-3, rtol=0)
