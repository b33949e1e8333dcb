"""The Monte Carlo error benchmark (benchmarks/mc_error.py) against closed forms: a quadratic model whose
SmoothGrad map and per-sample spread are known exactly, Gaussian maps of known standard error, error curves of
known crossings; and a --quick suite run that writes every table."""
import json
import math
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # the benchmarks package lives at the repository root

mc = pytest.importorskip("benchmarks.mc_error")
suite = pytest.importorskip("benchmarks.suite")

# the quadratic model's fixture ``quadratic`` is in conftest.py


def test_long_run_is_the_closed_form_map_with_its_standard_error(quadratic):
    s, exact, sample_var = quadratic
    truth = mc.long_run(s, False, 512, 4, seed=100)
    torch.testing.assert_close(truth["se2"], (sample_var / 512).expand_as(exact), rtol=0.6, atol=0)
    assert abs(float((truth["se2"] / (sample_var / 512)).mean()) - 1) < 0.05      # Welford: unbiased variance
    z = (truth["map"] - exact) / truth["se2"].sqrt()
    assert float(z.abs().max()) < 5 and abs(float(z.mean())) < 5 / math.sqrt(z.numel())
    ef_exact = mc.sx.expected_frequency(exact, rank_normalize=False).double()
    assert bool(((truth["ef"]["cross"] - ef_exact).abs() <= 5 * truth["ef_se"]["cross"] + 1e-12).all())


def test_stderr_calibration_and_coverage_on_the_quadratic_model(quadratic):
    s, exact, sample_var = quadratic
    reps = mc.replicas(s, False, [32], range(12))[32]
    zero = torch.zeros_like(exact)
    cal = mc.calibration(reps["maps"], reps["se2"], exact, zero)    # truth known exactly: no error of its own
    # 12 runs x 144 independent pixels: the ratio's sd is about sqrt(2 / (11 · 144)) ≈ 0.035
    assert abs(cal["variance_ratio"] - 1) < 0.15
    # |t| <= 2 for a t with 31 degrees of freedom: 0.946 (se from the run's own Welford variance)
    assert 0.92 < cal["coverage_2se"] < 0.975
    assert len(reps["ef"]["cross"]) == 12 and reps["maps"].shape == (12, 2, 12, 12)


def test_calibration_of_gaussian_maps_with_known_standard_error():
    g = torch.Generator().manual_seed(0)
    R, B, H, W = 16, 3, 20, 20
    truth = torch.randn(B, H, W, generator=g, dtype=torch.float64)
    se = torch.rand(B, H, W, generator=g, dtype=torch.float64) + 0.5
    maps = truth + se * torch.randn(R, B, H, W, generator=g, dtype=torch.float64)
    cal = mc.calibration(maps, (se ** 2).expand(R, B, H, W), truth, torch.zeros_like(truth))
    assert abs(cal["variance_ratio"] - 1) < 4 * math.sqrt(2 / ((R - 1) * H * W))
    p = math.erf(2 / math.sqrt(2))                                                 # P(|z| <= 2) = 0.9545
    assert abs(cal["coverage_2se"] - p) < 4 * math.sqrt(p * (1 - p) / maps.numel())
    half = mc.calibration(maps, (se ** 2 / 2).expand(R, B, H, W), truth, torch.zeros_like(truth))
    assert abs(half["variance_ratio"] / cal["variance_ratio"] - 0.5) < 1e-12


def test_accuracy_summary_on_errors_of_known_size():
    truth = {"ef": {k: torch.tensor([0.5, 0.25], dtype=torch.float64) for k in mc.ESTIMATORS}}
    vg = {r: torch.tensor([1.0, 1.0], dtype=torch.float64) for r in (False, True)}
    err = {"plug-in": {8: 0.4, 16: 0.2, 32: 0.1, 64: 0.04}, "cross": {8: 0.1, 16: 0.04, 32: 0.02, 64: 0.01},
           "rank plug-in": {8: 0.3, 16: 0.3, 32: 0.3, 64: 0.3},
           "rank bias-reduced": {8: 0.3, 16: 0.1, 32: 0.04, 64: 0.0}}
    reps = {n: {"ef": {k: (truth["ef"][k] * (1 + err[k][n])).expand(3, 2) for k in mc.ESTIMATORS}}
            for n in (8, 16, 32, 64)}
    acc = mc.accuracy_summary(reps, truth, vg)
    ef = {k: acc[k]["ef"] for k in mc.ESTIMATORS}
    assert ef["plug-in"]["mean_abs_rel_error"] == pytest.approx({8: 0.4, 16: 0.2, 32: 0.1, 64: 0.04})
    assert ef["plug-in"]["mean_signed_rel_error"][8] == pytest.approx(0.4)
    assert ef["plug-in"]["smallest_n_within"] == 64 and ef["cross"]["smallest_n_within"] == 16
    # log-log between budgets: the plug-in crosses 5 % at 32·2^f, the cross at 8·2^f, f = ln 2 / ln 2.5
    f = math.log(2) / math.log(2.5)
    assert ef["plug-in"]["passes_interpolated"] == pytest.approx(32 * 2 ** f)
    assert ef["cross"]["passes_interpolated"] == pytest.approx(8 * 2 ** f)
    assert ef["cross"]["baseline_passes_over_these"] == pytest.approx(4.0)
    assert ef["rank plug-in"]["smallest_n_within"] is None and ef["rank bias-reduced"]["smallest_n_within"] == 32
    assert ef["rank bias-reduced"]["baseline_passes_over_these"] is None
    # ΔEF: truth gaps 0.5 and 0.75; the plug-in's EF 0.5·1.4 = 0.7 gives gap 0.3, relative error 0.4 and
    # 0.25·1.4 = 0.35 gives 0.65, relative error 0.1/0.75
    gap = acc["plug-in"]["gap"]["mean_abs_rel_error"][8]
    assert gap == pytest.approx((0.2 / 0.5 + 0.1 / 0.75) / 2)


def test_quick_run_writes_every_table(tmp_path):
    assert suite.main(["--quick", "--cases", "mc_error", "--out", str(tmp_path), "--machine", "testbox"]) == 0
    report = json.loads(next(tmp_path.glob("*.json")).read_text())
    res = report["cases"]["mc_error"]
    assert "error" not in res and res["settings"][0]["setting"] == "random-cnn"
    assert set(res["settings"][0]["methods"]) == {"sg", "sg2"}
    md = next(tmp_path.glob("*.md")).read_text()
    for tab in [res["table"], *res["tables"]]:
        header = "| " + " | ".join(c.replace("|", "\\|") for c in tab["columns"]) + " |"
        assert header in md and all(len(row) == len(tab["columns"]) for row in tab["rows"])
    assert len(res["table"]["rows"]) == 2 * len(mc.ESTIMATORS)
    assert {t["title"].split(" ")[0] for t in res["tables"]} >= {"ΔEF", "Calibration", "The", "Cost"}
    cost = res["cost"][0]
    assert cost["ratio"]["floor"] == 1.0 and set(cost["ratio"]) == {"floor", "plain", "stats"}
