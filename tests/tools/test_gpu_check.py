"""The GPU check's plumbing on any machine: step outcomes, the budget, the CUDA test selection and the
rehearsal without CUDA (every CUDA step skipped, the JSON still written)."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from tools import gpu_check  # noqa: E402


@pytest.fixture
def check(tmp_path, monkeypatch):
    monkeypatch.setitem(gpu_check.TIMEOUTS, "a", 30)
    monkeypatch.setitem(gpu_check.TIMEOUTS, "b", 30)
    monkeypatch.setitem(gpu_check.TIMEOUTS, "c", 2)
    return gpu_check.Check(tmp_path, budget=60, scale=1.0, argv=[])


def test_steps_record_ok_failed_timeout_and_data(check, tmp_path):
    data = tmp_path / "a.json"
    code = f"import json; json.dump({{'x': 3}}, open({str(data)!r}, 'w')); print('hello')"
    check.step("a", [sys.executable, "-c", code], data=data)
    check.step("b", [sys.executable, "-c", "import sys; sys.exit(7)"])
    check.step("c", [sys.executable, "-c", "import time; time.sleep(30)"])
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    a, b, c = (summary["steps"][k] for k in "abc")
    assert (a["status"], a["rc"], a["data"]) == ("ok", 0, {"x": 3})
    assert "hello" in (tmp_path / a["log"]).read_text()
    assert (b["status"], b["rc"]) == ("failed", 7)
    assert c["status"] == "timeout" and c["rc"] is None and 2 <= c["seconds"] < 20


def test_a_step_past_the_budget_is_skipped(check):
    check.deadline = 0  # the budget is spent
    res = check.step("a", [sys.executable, "-c", "raise SystemExit(0)"])
    assert res["status"] == "skipped" and "budget" in res["reason"]


def test_rehearsal_without_cuda_skips_every_cuda_step(tmp_path, monkeypatch):
    ran = []

    def fake_step(self, name, cmd, cwd=None, env=None, data=None):
        ran.append(name)
        extra = {"data": {"cuda_available": False}} if name == "env" else {}
        return self.record(name, status="ok", rc=0, seconds=0.0, **extra)

    monkeypatch.setattr(gpu_check.Check, "step", fake_step)
    monkeypatch.setenv("SPECTRAL_XAI_WHEELS", str(tmp_path / "none"))
    assert gpu_check.main(["--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    assert ran == ["env", "build"] and summary["cuda"] is False and summary["finished"] is True
    cuda_steps = {"tests", "memcheck", "racecheck", "parity", "bandwidth",
                  *(f"bench-{c}" for c in gpu_check.BENCH_CASES)}
    assert set(summary["skipped"]) == cuda_steps | {"wheels"}
    assert all("CUDA" in summary["steps"][k]["reason"] for k in cuda_steps)


def test_bad_budget_is_rejected():
    with pytest.raises(SystemExit):
        gpu_check.main(["--budget", "0"])


def test_plugin_keeps_tests_marked_or_named_cuda(tmp_path):
    (tmp_path / "test_x.py").write_text(
        "import pytest\n"
        "@pytest.mark.cuda\ndef test_marked(): pass\n"
        "def test_cuda_named(): pass\n"
        "def test_plain(): pass\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    cuda: needs a GPU\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tools.gpu_check", "-rA", str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**gpu_check.child_env(), "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed, 1 deselected" in proc.stdout
    assert "PASSED test_x.py::test_marked" in proc.stdout and "test_plain" not in proc.stdout.split("short test")[1]


@pytest.mark.parametrize("says, rc, status", [("========= Device not supported", 1, "refused"),
                                              ("========= ERROR SUMMARY: 2 errors", 99, "failed"),
                                              ("========= ERROR SUMMARY: 0 errors", 0, "ok")])
def test_sanitizer_outcome_is_read_from_its_log(check, tmp_path, monkeypatch, says, rc, status):
    tool = tmp_path / "bin" / "compute-sanitizer"
    tool.parent.mkdir()
    tool.write_text(f"#!/bin/sh\necho '{says}'\nexit {rc}\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tool.parent}:/usr/bin:/bin")
    gpu_check.sanitizer_steps(check)
    for name in ("memcheck", "racecheck"):
        res = check.summary["steps"][name]
        assert res["status"] == status and res["rc"] == rc and res["sanitizer_summary"] == [says]


def test_a_timeout_kills_the_whole_process_group(check, tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    code = ("import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
            f" open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    gpu_check.TIMEOUTS["d"] = 15  # time for two interpreters to start on a loaded machine
    try:
        res = check.step("d", [sys.executable, "-c", code])
    finally:
        del gpu_check.TIMEOUTS["d"]
    assert res["status"] == "timeout"
    pid = int(pid_file.read_text())
    for _ in range(50):  # the killed grandchild is reaped by init shortly after
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"grandchild {pid} still runs after the step's timeout")
