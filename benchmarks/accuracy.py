"""Case ``accuracy``: samples to accuracy of the unbiased estimators, a reduced run of
``bench_samples_to_accuracy.py`` (EfficientNet-Lite0, 2 photos; see that file for the full study).

SG² (additive std 0.3): iid (the engine's default and Captum's), antithetic pairs, the library's Latin
hypercube (``sampling="lhs"``).  SL² (convex, s = 0.3, 11 σ): the grid, stratified σ and the library's
Neyman allocation (``estimator="neyman"``).  Errors against a long iid reference; the figure is the
passes per image to reach relative L2 error 0.5 and iid's passes / these (> 1: fewer passes).
"""
from __future__ import annotations

import torch

from .bench_samples_to_accuracy import RESULTS, parse, study


def _rows(part: str, summary: dict) -> list[list]:
    rows = []
    for name, r in summary.items():
        curve = r["curves"]["rel_l2"]
        p, gain = r["passes_to_target"]["rel_l2@0.5"], r["iid_passes_over_these"]["rel_l2@0.5"]
        rows.append([part, name, " ".join(f"{k}:{v:.2f}" for k, v in curve.items()),
                     f"{p:.1f}" if p else "> max", f"{gain:.2f}" if gain else "–",
                     f"{r['curves']['spearman'][max(r['curves']['spearman'])]:.2f}"])
    return rows


def run(device: torch.device, quick: bool) -> dict:
    if device.type != "cpu":
        print("  (the study runs on the CPU)", flush=True)
    argv = ["--quick"] if quick else [
        "--size", "48", "--seeds", "2", "--ns", "8", "16", "32", "64", "--ref-samples", "512",
        "--per-sigma", "2", "4", "8", "--ref-per-sigma", "48"]
    argv += ["--sg2-estimators", "iid", "antithetic", "sx:lhs", "--sl2-estimators", "grid-iid", "stratified",
             "sx:neyman", "--out", str(RESULTS / "accuracy_case.json")]
    report = study(parse(argv))
    rows = _rows("SG²", report["sg2"]["summary"]) + _rows("SL²", report["sl2"]["summary"])
    return {
        "title": "Samples to accuracy (unbiased estimators; relative L2 error against a long iid reference)",
        "setting": report["setting"], "sg2": report["sg2"]["summary"], "sl2": report["sl2"]["summary"],
        "table": {"columns": ["map", "estimator", "rel L2 at passes per image", "passes to rel L2 0.5",
                              "iid passes / these", "Spearman at the largest budget"], "rows": rows},
        "note": f"Reference: {report['sg2']['reference_samples']} iid samples (SG², own rel L2 "
                f"{report['sg2']['reference_rel_l2_self']:.2f}) and {report['sl2']['reference_samples_per_sigma']} "
                f"per σ (SL², own rel L2 {report['sl2']['reference_rel_l2_self']:.2f}). The full study with more "
                "seeds and budgets is benchmarks/results/samples_to_accuracy-cpu-2core.md.",
    }
