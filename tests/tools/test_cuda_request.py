"""cmake/cuda_request.py: the one rule for SPECTRAL_XAI_CUDA that CMakeLists.txt runs (as a script, reading its
two output lines) and dev.py imports: without an NVIDIA driver AUTO is OFF, ON and OFF are kept."""
import importlib.util
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

RULE = Path(__file__).resolve().parents[2] / "cmake" / "cuda_request.py"


@pytest.fixture
def rule():
    spec = importlib.util.spec_from_file_location("cuda_request_under_test", RULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _no_driver(rule, monkeypatch, tmp_path):
    monkeypatch.setattr(rule, "DRIVER_FILE", tmp_path / "absent")
    monkeypatch.setenv("PATH", str(tmp_path))


@pytest.mark.parametrize("value,want", [(None, "OFF"), ("", "OFF"), ("auto", "OFF"), ("AUTO", "OFF"),
                                        ("on", "ON"), ("OFF", "OFF")])
def test_without_a_driver_auto_is_off(rule, monkeypatch, tmp_path, value, want):
    _no_driver(rule, monkeypatch, tmp_path)
    mode, reason = rule.cuda_request(value)
    assert mode == want
    if value in ("on", "OFF"):
        assert reason == f"SPECTRAL_XAI_CUDA={want}"
    else:
        assert reason.startswith("no NVIDIA driver") and "SPECTRAL_XAI_CUDA=ON compiles" in reason


def test_a_driver_file_or_nvidia_smi_leaves_auto_to_cmake(rule, monkeypatch, tmp_path):
    _no_driver(rule, monkeypatch, tmp_path)
    (tmp_path / "version").write_text("NVRM version: 580\n")
    monkeypatch.setattr(rule, "DRIVER_FILE", tmp_path / "version")
    assert rule.cuda_request("AUTO")[0] == "AUTO"
    monkeypatch.setattr(rule, "DRIVER_FILE", tmp_path / "absent")
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\n")
    smi.chmod(smi.stat().st_mode | stat.S_IXUSR)
    assert rule.cuda_request("AUTO")[0] == "AUTO"


def test_the_script_prints_mode_and_reason_and_refuses_other_values():
    # What CMakeLists.txt reads: the mode on the first line, the reason on the second, exit status 2 on error.
    out = subprocess.run([sys.executable, RULE, "on"], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["ON", "SPECTRAL_XAI_CUDA=ON"]
    bad = subprocess.run([sys.executable, RULE, "yes"], capture_output=True, text=True)
    assert bad.returncode == 2 and "SPECTRAL_XAI_CUDA must be AUTO, ON or OFF, got 'yes'" in bad.stderr
    env = dict(os.environ, PATH="")
    auto = subprocess.run([sys.executable, RULE, "AUTO"], capture_output=True, text=True, check=True, env=env)
    want = "AUTO" if Path("/proc/driver/nvidia/version").exists() else "OFF"
    assert auto.stdout.splitlines()[0] == want and len(auto.stdout.splitlines()) == 2
