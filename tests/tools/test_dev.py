"""dev.py: where it looks for the venv (whatever the current directory), which kernels it builds and where torch
comes from."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _venv_python(env_value, cwd):
    code = "import dev; print(dev.python())"
    env = dict(os.environ, SPECTRAL_XAI_VENV=env_value, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, check=True,
                         capture_output=True, text=True)
    return Path(out.stdout.strip())


def test_relative_venv_is_relative_to_the_repository(tmp_path):
    # CI passes SPECTRAL_XAI_VENV=.venv-oldest and the tests run from tests/: the path must not depend on cwd.
    got = _venv_python(".venv-oldest", cwd=tmp_path)
    assert got == ROOT / ".venv-oldest" / "bin" / "python"


def test_absolute_venv_is_kept(tmp_path):
    got = _venv_python(str(tmp_path / "v"), cwd=ROOT)
    assert got == tmp_path / "v" / "bin" / "python"


def _dev(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    import dev
    return dev


@pytest.mark.parametrize("env,driver,want", [("AUTO", False, "OFF"), ("AUTO", True, "AUTO"), ("auto", False, "OFF"),
                                             ("ON", False, "ON"), ("OFF", True, "OFF"), (None, False, "OFF")])
def test_cuda_mode_builds_cpu_kernels_only_without_a_driver_unless_asked(monkeypatch, env, driver, want):
    dev = _dev(monkeypatch)
    if env is None:
        monkeypatch.delenv("SPECTRAL_XAI_CUDA", raising=False)
    else:
        monkeypatch.setenv("SPECTRAL_XAI_CUDA", env)
    monkeypatch.setattr(dev.CUDA_RULE, "nvidia_driver", lambda: driver)
    assert dev.cuda_mode() == want
    if want == "OFF" and env != "OFF":
        assert dev.cuda_request()[1].startswith("no NVIDIA driver")


def test_cuda_mode_rejects_other_values(monkeypatch):
    dev = _dev(monkeypatch)
    monkeypatch.setenv("SPECTRAL_XAI_CUDA", "yes")
    with pytest.raises(SystemExit, match="SPECTRAL_XAI_CUDA must be AUTO, ON or OFF"):
        dev.cuda_mode()


@pytest.mark.parametrize("mode,reachable,want", [("OFF", True, True), ("OFF", False, False), ("ON", True, False)])
def test_cpu_torch_index_only_when_no_cuda_build_is_wanted_and_it_answers(monkeypatch, mode, reachable, want):
    dev = _dev(monkeypatch)
    monkeypatch.setenv("SPECTRAL_XAI_CUDA", mode)
    asked = []
    monkeypatch.setattr(dev, "answers", lambda url, timeout=3.0: asked.append(url) or reachable)
    args = dev.torch_index_args()
    assert args == (["--extra-index-url", dev.CPU_TORCH_INDEX] if want else [])
    assert asked == ([] if mode == "ON" else [dev.CPU_TORCH_INDEX + "/torch/"])


def test_answers_is_false_for_an_unreachable_index():
    import dev
    assert dev.answers("http://127.0.0.1:9/simple/", timeout=1.0) is False
