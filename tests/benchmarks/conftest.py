"""Fixtures of the benchmark tests: the quadratic model whose SmoothGrad map and per-sample spread are known."""
import sys
from pathlib import Path

import pytest
import torch

from helpers import Quadratic

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # the benchmarks package lives at the repository root

SIGMA = 0.5


@pytest.fixture(scope="module")
def quadratic():
    """F = Σ q x² + l x: the SmoothGrad map is exactly 2 q x + l, each sample adds 2 q σ ε (Gaussian).
    -> (setting, exact SG map (B, H, W), per-sample variance (H, W))."""
    mc = pytest.importorskip("benchmarks.mc_error")
    model = mc.frozen(Quadratic((1, 12, 12)))
    x = torch.rand(2, 1, 12, 12, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    s = mc.Setting("quadratic", model, x, torch.zeros(2, dtype=torch.int64), SIGMA, "test", output="logit")
    exact = (2 * model.q * x + model.l).detach()[:, 0]
    sample_var = (2 * model.q.detach()[0] * SIGMA) ** 2           # (H, W) variance of one sample
    return s, exact, sample_var
