"""dev.py: where it looks for the venv, whatever the current directory of the commands it runs."""
import os
import subprocess
import sys
from pathlib import Path

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
