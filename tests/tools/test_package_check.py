"""The helpers of .ci/package-check that need no build: the op names it expects (parsed from csrc/) are those the
extension registers, the data files it requires in the wheel are found from the code, the README's install
section is what the check runs."""
import importlib.util
from pathlib import Path

import pytest
import torch

import spectral_xai  # noqa: F401  (registers the ops)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def contents():
    spec = importlib.util.spec_from_file_location("package_contents", ROOT / ".ci" / "package_contents.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_op_names_from_the_sources_are_the_registered_ops(contents):
    registered = sorted(n.split("::", 1)[1] for n in torch._C._dispatch_get_all_op_names()
                        if n.startswith("spectral_xai::"))
    assert contents.op_names() == registered and "perturb" in registered


def test_the_data_files_the_code_reads_are_found_and_inside_the_package(contents):
    inside, outside = contents.data_files_read(contents.tracked())
    assert "spectral_xai/zoo/imagenet_classes.txt" in inside and outside == []


def test_docstrings_do_not_count_as_reads(contents, tmp_path):
    module = tmp_path / "m.py"
    module.write_text('"""Reads notes.txt."""\n\ndef f():\n    """See a.md."""\n    return open("b.csv")\n')
    assert contents.strings_in_code(module) == {"b.csv"}


def test_the_readme_install_section_is_what_the_check_runs(contents):
    commands = contents.readme_install_commands()
    assert "pip install --no-build-isolation ." in commands and "pip install torch" in commands
    problems = []
    contents.check_readme({"optional-dependencies": {"audit": [], "zoo": [], "captum": [], "test": []}}, problems)
    assert problems == []
    contents.check_readme({"optional-dependencies": {"nonesuch": []}}, problems)
    assert problems == ["README.md: the install section does not name the extra [nonesuch]"]
