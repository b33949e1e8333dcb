"""The integrations are optional: `import spectral_xai` imports neither library, and a missing one is named
with the pip extra that installs it."""
import subprocess
import sys

import pytest


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_importing_the_package_imports_neither_library():
    r = run("import sys, spectral_xai, spectral_xai.integrations; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torchmetrics', 'quantus')))")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "[]"


@pytest.mark.parametrize("package", ["torchmetrics", "quantus"])
def test_a_missing_library_names_its_extra(package):
    # sys.modules[name] = None makes `import name` raise ImportError, as if it were not installed
    r = run(f"import sys; sys.modules[{package!r}] = None; import spectral_xai.integrations.{package}")
    assert r.returncode != 0
    assert f"pip install 'spectral-xai[{package}]'" in r.stderr
