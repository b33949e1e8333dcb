"""The interval coverage study (benchmarks/studies/interval_coverage.py): per-sample maps of the quadratic model
against its closed form, the four intervals against scipy and a numpy transcription, coverage counts of known
size, and a --quick run that writes the JSON and the markdown."""
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from helpers import Quadratic

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # the benchmarks package lives at the repository root

ic = pytest.importorskip("benchmarks.studies.interval_coverage")


def test_per_sample_maps_of_the_quadratic_model():
    """g = 2q(x + σε) + l per sample with the study's noise; g² its square (one channel)."""
    model = Quadratic((1, 5, 5)).requires_grad_(False)
    x = torch.randn(2, 1, 5, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    g, g2 = ic.per_sample_maps(model, x, torch.zeros(2, dtype=torch.long), 0.7, 10, 3, "raw", 6)
    eps = torch.cat([torch.randn((k, *x.shape), generator=gen, dtype=x.dtype)
                     for gen in [torch.Generator().manual_seed(3)] for k in (3, 3, 3, 1)])
    exact = (2 * model.q * (x + 0.7 * eps) + model.l)[:, :, 0]
    assert g.shape == (10, 2, 5, 5)
    torch.testing.assert_close(g, exact)
    torch.testing.assert_close(g2, exact**2)


def test_intervals_match_scipy_and_the_prototype_formula():
    h = torch.randn(3, 8, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64).exp()
    iv = ic.intervals(h)
    x = h.numpy()
    n = x.shape[1]
    m, s = x.mean(1), x.std(1, ddof=1)
    se = s / math.sqrt(n)
    z, t = stats.norm.ppf(0.975), stats.t.ppf(0.975, n - 1)
    np.testing.assert_allclose(iv["normal"][0].numpy(), m - z * se)
    np.testing.assert_allclose(iv["t"][1].numpy(), m + t * se, rtol=1e-6)
    a = ((x - m[:, None]) ** 3).mean(1) / s**3 / math.sqrt(n)

    def ginv(q):
        return (np.cbrt(1 + a * (q - a / 6)) - 1) * 3 / a

    np.testing.assert_allclose(iv["hall-t (prototype)"][0].numpy(), m - se * ginv(t), rtol=1e-5)
    np.testing.assert_allclose(iv["hall-t (prototype)"][1].numpy(), m - se * ginv(-t), rtol=1e-5)
    lo, hi = iv["hall (library)"]
    assert bool((lo < torch.tensor(m)).all()) and bool((hi > torch.tensor(m)).all())


def test_coverage_counts_runs_and_leaves_out_dead_pixels():
    """Constant pixels give [m, m]: covered iff the truth is m. Pixel 0 right, pixel 1 wrong, pixel 2 dead."""
    h = torch.zeros(12, 1, 1, 3, dtype=torch.float64)
    h[..., 0], h[..., 1] = 2.0, 5.0
    truth = torch.tensor([[[2.0, 4.0, 0.0]]], dtype=torch.float64)
    live = torch.tensor([[[True, True, False]]])
    out = ic.coverage(h, truth, live, 4)
    assert out["runs"] == 3
    for name in ic.METHODS:
        assert out[name]["coverage"] == 0.5 and out[name]["se"] == 0.0 and out[name]["pixel_p10"] == pytest.approx(0.1)


def test_quick_run_writes_json_and_markdown(tmp_path):
    assert ic.main(["--quick", "--pool", "64", "--ns", "8", "16", "--out", str(tmp_path)]) == 0
    js, = tmp_path.glob("interval_coverage-*-quick.json")
    report = json.loads(js.read_text())
    assert set(report["models"]) == {"quadratic", "sinusoid"}
    for entry in report["models"].values():
        assert entry["dead_pixels"] == 0 and entry["pool"] == 64
        for method in ("sg", "sg2"):
            assert set(entry[method]) == {"8", "16"} and entry[method]["8"]["runs"] == 8
            assert all(0 <= entry[method]["8"][k]["coverage"] <= 1 for k in ic.METHODS)
    md = js.with_suffix(".md").read_text()
    assert md.count("| SG² | 16 |") == 2 and "hall (library)" in md
