"""The environment record, written as JSON atomically (one file, no temporary left)."""
import json

import torch

from spectral_xai.atomic_io import write_json
from spectral_xai.environment import environment_info


def test_environment_info_and_atomic_json(tmp_path):
    info = environment_info("cpu")
    assert info["torch"] == torch.__version__ and "cuda" in info["build"] and info["gpu"] is None
    path = write_json({"a": 1, "env": info}, tmp_path / "sub" / "r.json")
    assert json.loads(path.read_text())["a"] == 1 and [p.name for p in path.parent.iterdir()] == ["r.json"]
