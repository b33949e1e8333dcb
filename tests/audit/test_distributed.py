"""torchrun: two gloo processes share the images and give the table of one process."""
import json
import os
import subprocess
import sys

import pandas as pd

from helpers import HERE, tiny_audit, tiny_audit_args


def test_torchrun_two_gloo_processes_equal_one(photo_folder, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    tiny_audit(photo_folder, one)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
           "spectral_xai", *map(str, tiny_audit_args(photo_folder, two))]
    r = subprocess.run(cmd, cwd=HERE, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    pd.testing.assert_frame_equal(pd.read_parquet(one / "metrics.parquet"), pd.read_parquet(two / "metrics.parquet"),
                                  check_exact=True)
    sessions = json.loads((two / "sessions.json").read_text())
    assert [s["rank"] for s in sessions[0]["ranks"]] == [0, 1]
    assert all(s["images"] > 0 for s in sessions[0]["ranks"])            # both ranks took a share
    assert json.loads((two / "manifest.json").read_text())["world_size"] == 2
    assert (two / "report.html").exists()
