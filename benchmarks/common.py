"""What the suite's cases and the standalone studies share: side-by-side timing (interleaved repeats,
medians, paired ratios), the models the library's zoo does not ship (a 28x28 CNN, a 4-conv CNN, a compact
ResNet-50) and Captum's SG² as the baseline."""
from __future__ import annotations

import math
import statistics
import time
from typing import Callable

import torch
from torch import nn


def small_cnn_28(seed: int = 0) -> nn.Module:
    """Fashion-MNIST-sized CNN with random weights: (B, 1, 28, 28) -> (B, 10)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10)).eval()


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride here, as torchvision's v1.5) -> 1x1 (x4 channels), BN after each, identity or
    1x1 projection shortcut."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet50(nn.Module):
    """ResNet-50 (He et al. 2016; stages of 3, 4, 6, 3 bottlenecks), 25 557 032 parameters for 1000
    classes like torchvision's: (B, 3, H, W) -> (B, classes)."""

    def __init__(self, classes: int = 1000):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(64),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1))
        layers, cin = [], 64
        for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            for i in range(blocks):
                layers.append(Bottleneck(cin, width, stride if i == 0 else 1))
                cin = width * Bottleneck.expansion
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.layers(self.stem(x)), 1), 1))


def resnet50(seed: int = 0) -> nn.Module:
    """ResNet-50 with random (Kaiming) weights, in eval mode."""
    torch.manual_seed(seed)
    return ResNet50().eval()

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compare(fns: dict[str, Callable[[], object]], reference: str, repeats: int, device: torch.device,
            warmup: int = 1) -> dict:
    """Time every function ``repeats`` times, interleaved (the order reversed every other repeat).

    Returns times_s {name: [s, ...]}, median_s {name: s} and, relative to ``reference``,
    ratio {name: median over repeats of t_name / t_reference of the same repeat} (the paired
    ratio, robust to slow drifts of a shared machine), ratio_range {name: [min, max]} of the paired
    ratios and ratio_of_medians {name: median t_name / median t_reference}.
    """
    if reference not in fns:
        raise ValueError(f"reference {reference!r} is not one of {list(fns)}")
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(repeats):
        for k in (names if r % 2 == 0 else names[::-1]):
            sync(device)
            t0 = time.perf_counter()
            fns[k]()
            sync(device)
            times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    paired = {k: [a / b for a, b in zip(times[k], times[reference])] for k in fns}
    return {
        "repeats": repeats, "reference": reference, "times_s": times, "median_s": med,
        "ratio": {k: statistics.median(v) for k, v in paired.items()},
        "ratio_range": {k: [min(v), max(v)] for k, v in paired.items()},
        "ratio_of_medians": {k: med[k] / med[reference] for k in fns},
    }


def small_cnn(size: int) -> nn.Module:
    """A 4-conv ReLU CNN for (B, 3, size, size) inputs, 10 classes, random weights (seed 0)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Conv2d(64, 128, 3, stride=2, padding=1), nn.BatchNorm2d(128), nn.ReLU(),
        nn.Conv2d(128, 128, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10)).eval()


def captum_smoothgrad(model, x, target, sigma, n, batch_size, squared=True):
    """Captum's ``NoiseTunnel(Saliency)`` SmoothGrad (``squared=False``: nt_type "smoothgrad" of the signed
    gradient, ``abs=False``) or SG² ("smoothgrad_sq") of (B, C, H, W) ``x``, summed over channels: (B, H, W)."""
    from captum.attr import NoiseTunnel, Saliency

    nt = NoiseTunnel(Saliency(model))
    a = nt.attribute(x, nt_type="smoothgrad_sq" if squared else "smoothgrad", nt_samples=n,
                     nt_samples_batch_size=max(1, batch_size // x.shape[0]), stdevs=sigma, target=target,
                     abs=squared)
    return a.sum(1)


def captum_sg2(model, x, target, sigma, n, batch_size):
    """Captum's ``NoiseTunnel(Saliency)`` SG² of (B, C, H, W) ``x`` summed over channels: (B, H, W)."""
    return captum_smoothgrad(model, x, target, sigma, n, batch_size, squared=True)


def passes_for(curve: dict[int, float], target: float, increasing: bool = False) -> float | None:
    """Passes at which the mean error curve crosses ``target`` (log-log interpolation; for an increasing
    score such as Spearman, on 1 − score), None if it never does within the budgets."""
    pts = sorted((p, (1 - v) if increasing else v) for p, v in curve.items())
    t = (1 - target) if increasing else target
    if pts and pts[0][1] <= t:
        return float(pts[0][0])
    for (p0, e0), (p1, e1) in zip(pts, pts[1:]):
        if e0 >= t >= e1 and e0 > 0 and e1 > 0:
            f = (math.log(e0) - math.log(t)) / (math.log(e0) - math.log(e1)) if e0 != e1 else 0.0
            return math.exp(math.log(p0) + f * (math.log(p1) - math.log(p0)))
    return None
