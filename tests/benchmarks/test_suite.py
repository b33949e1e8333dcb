"""The benchmark suite's plumbing: a --quick run of two tiny cases writes a well-formed JSON and markdown.

No timing is asserted; the numeric checks are agreements between implementations (exact truths).
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # the benchmarks package lives at the repository root

suite = pytest.importorskip("benchmarks.suite")
pytest.importorskip("captum")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    assert suite.main(["--quick", "--cases", "sg2,spectrum", "--out", str(out), "--machine", "testbox"]) == 0
    return out


def test_quick_run_writes_one_json_and_one_markdown(quick_run):
    jsons, mds = sorted(quick_run.glob("*.json")), sorted(quick_run.glob("*.md"))
    assert len(jsons) == 1 and len(mds) == 1
    assert jsons[0].stem == mds[0].stem and jsons[0].stem.endswith("-testbox")
    report = json.loads(jsons[0].read_text())
    assert report["mode"] == "quick" and report["device"] == "cpu" and report["machine"] == "testbox"
    assert report["environment"]["torch"] == torch.__version__
    assert list(report["cases"]) == ["sg2", "spectrum"]
    for res in report["cases"].values():
        assert "error" not in res and res["wall_s"] >= 0
        cols = res["table"]["columns"]
        assert res["table"]["rows"] and all(len(row) == len(cols) for row in res["table"]["rows"])


def test_quick_run_ratios_and_agreement(quick_run):
    report = json.loads(next(quick_run.glob("*.json")).read_text())
    sg2 = report["cases"]["sg2"]["results"][0]
    assert set(sg2["ratio"]) == {"floor", "ours", "captum", "ops_only"}
    assert sg2["ratio"]["floor"] == 1.0 and sg2["reference"] == "floor"
    assert all(len(v) == sg2["repeats"] for v in sg2["times_s"].values())
    assert all(lo <= mid <= hi for (lo, hi), mid in zip(sg2["ratio_range"].values(), sg2["ratio"].values()))
    spec = report["cases"]["spectrum"]
    assert spec["speedup_over_numpy"]["numpy_recipe"] == 1.0
    # ours and plain torch compute the authors' EF: they agree with the numpy recipe
    assert spec["max_rel_diff_to_numpy"]["ours"] < 1e-6 and spec["max_rel_diff_to_numpy"]["plain_torch"] < 1e-12


def test_markdown_has_a_table_per_case(quick_run):
    md = next(quick_run.glob("*.md")).read_text()
    report = json.loads(next(quick_run.glob("*.json")).read_text())
    for name, res in report["cases"].items():
        assert f"## {name}:" in md
        header = "| " + " | ".join(res["table"]["columns"]) + " |"
        assert header in md
        lines = md.splitlines()
        i = lines.index(header)
        assert lines[i + 1] == "|" + "---|" * len(res["table"]["columns"])
        assert len([ln for ln in lines[i + 2:i + 2 + len(res["table"]["rows"])] if ln.startswith("| ")]) \
            == len(res["table"]["rows"])


def test_unknown_case_is_rejected_by_the_command_line():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "__main__.py"), "--cases", "sg2,nope"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--cases" in proc.stderr and "nope" in proc.stderr


def test_resnet50_matches_the_standard_architecture():
    from benchmarks.common import resnet50

    model = resnet50()
    # torchvision.models.resnet50() has 25,557,032 parameters (its documented count)
    assert sum(p.numel() for p in model.parameters()) == 25_557_032
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) == 53
    with torch.no_grad():
        assert model(torch.rand(2, 3, 64, 64)).shape == (2, 1000)


def test_spectrum_nd_case_agrees_with_numpy():
    from benchmarks import spectrum_nd

    res = spectrum_nd.run(torch.device("cpu"), quick=True)
    assert [c["shape"] for c in res["cases"]] == [[256], [8, 8, 8]]
    for case in res["cases"]:
        assert case["max_rel_diff_to_numpy"]["ours"] < 1e-6            # float32 maps, float64 accumulation
        assert case["max_rel_diff_to_numpy"]["torch_reference"] < 1e-6
        assert case["speedup_over_numpy"]["numpy_per_map"] == 1.0
    assert len(res["table"]["rows"]) == 6
