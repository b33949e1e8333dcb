"""Suite set-up and shared fixtures.

The test files mirror the package (tests/ops/test_spectrum.py next to tests/test_spectrum.py), so modules are
imported in importlib mode, each named by its path; tests/ holds no __init__.py, so the repository root is not
put on sys.path and the installed package (with its compiled _C) is the one imported. Shared code lives in
helpers.py (this folder is put on sys.path for it). CUDA tests carry ``pytest.mark.cuda`` (run them all with
``pytest -m cuda``) and are skipped without a CUDA device."""
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import helpers  # noqa: E402


def pytest_configure(config):
    config.option.importmode = "importlib"
    config.addinivalue_line("markers", "cuda: needs a CUDA device (select them all with -m cuda)")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request) -> str:
    """The device a test runs on: "cpu", and "cuda" (marked cuda)."""
    return request.param


@pytest.fixture
def cnn():
    return helpers.small_cnn()


@pytest.fixture
def images():
    """(4, 3, 12, 12) uniform in [0, 1)."""
    g = torch.Generator().manual_seed(3)
    return torch.rand(4, 3, 12, 12, generator=g)


@pytest.fixture(scope="session")
def photo_folder(tmp_path_factory):
    """helpers.make_photo_folder in a temporary folder, made once (tests only read it)."""
    return helpers.make_photo_folder(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="module")
def lite0():
    """EfficientNet-Lite0 with its ImageNet weights, eval mode."""
    pytest.importorskip("efficientnet_lite_pytorch")
    from spectral_xai.zoo import efficientnet_lite0
    return efficientnet_lite0()


@pytest.fixture(scope="module")
def photos64():
    """The first two bundled photos at 64 px, (2, 3, 64, 64)."""
    from spectral_xai.zoo import photos
    return photos(64)[:2]
