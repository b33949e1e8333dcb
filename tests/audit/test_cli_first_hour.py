"""The first hour of a new user at the command line: failed starts leave nothing behind, --resume alone,
folder labels against the model's class names, clear messages instead of tracebacks, --version / methods /
--help, progress in a log, Ctrl-C, the typed metrics.parquet with its data dictionary, and the source tree
shadowing the installed build.  Every CLI case runs `python -m spectral_xai` in a subprocess."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

NETS = '''
import torch
from torch import nn


def rgb(channels=3):
    """(B, C, S, S) -> (B, 3) scores of the classes cat, dog, bird; fixed weights."""
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                        nn.Linear(16, 3))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    net.classes = ["cat", "dog", "bird"]
    return net.eval()


def gray():
    return rgb(1)


def broken():
    raise RuntimeError("factory exploded")
'''


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A folder with nets.py and data/<class>/<k>.png for the classes cat, dog and other (2 images each)."""
    root = tmp_path_factory.mktemp("first_hour")
    (root / "nets.py").write_text(NETS)
    rng = np.random.default_rng(0)
    for folder in ("cat", "dog", "other"):
        (root / "data" / folder).mkdir(parents=True)
        for k in range(2):
            Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(root / "data" / folder / f"{k}.png")
    return root


def cli(cwd, *args, **kw):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "spectral_xai", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, **kw)


def main_here(capsys, monkeypatch, cwd, *args):
    """``spectral-xai ARGS`` in this process (the same entry point, without an interpreter start):
    (exit status, stdout, stderr)."""
    from spectral_xai.__main__ import main

    monkeypatch.chdir(cwd)
    try:
        rc = main(list(map(str, args)))
    except SystemExit as stop:
        rc = stop.code
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, rc, out, err)


def small(data, out, *extra):
    return ["audit", data, "--out", out, "--model", "nets.py:rgb", "--size", 16, "--samples", 3,
            "--sigmas", "0,0.5,1", "--shard-size", 2, "--num-workers", 0, *extra]


def refused(r, message):
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr and message in r.stderr, r.stderr[-2000:]


def test_a_failed_start_writes_nothing_and_the_corrected_retry_runs(work, capsys, monkeypatch):
    out = work / "start"
    cases = [
        (["--model", "nets.py:broken"], "option 'model': cannot load 'nets.py:broken': RuntimeError: factory exploded"),
        (["--model", "nets.py:rgb", "--grayscale"],
         "option 'grayscale': the model's first layer takes 3 channel(s), the images have 1; drop --grayscale"),
        (["--model", "nets.py:gray"], "option 'grayscale': the model's first layer takes 1 channel(s), the images "
                                      "have 3; add --grayscale"),
        (["--model", "nets.py:rgb", "--target", "label"], "option 'target': 'label' needs labels"),
        (["--model", "nets.py:rgb", "--labels", "folders", "--target", "label"],
         "option 'labels': the class folders ['other'] are neither class names of the model such as 'cat', 'dog', "
         "'bird' nor class indices 0..2"),
        (["--model", "no_such_module:make"], "option 'model': cannot import 'no_such_module'"),
    ]
    for k, (extra, message) in enumerate(cases):
        run = cli if k == 0 else lambda *a: main_here(capsys, monkeypatch, *a)
        r = run(work, "audit", "data", "--out", out, "--size", 16, *extra)
        refused(r, message)
        assert not out.exists(), extra                               # nothing written: a retry is a fresh start
    r = cli(work, *small("data", out, "--methods", "vg", "--measures", "ef", "--quiet"))
    assert r.returncode == 0, r.stderr


def test_resume_alone_continues_with_the_runs_options(work, capsys, monkeypatch):
    out = work / "resumed"
    r = cli(work, *small("data", out, "--methods", "vg,sg2", "--measures", "ef,gap", "--labels", "folders",
                         "--quiet"))
    assert r.returncode == 0, r.stderr
    before = pd.read_parquet(out / "metrics.parquet")
    (out / "shards" / "shard-00000002-00000004.safetensors").unlink()       # as if killed before that shard
    (out / "metrics.parquet").unlink()
    r = cli(work, "audit", "--out", out, "--resume", "--num-workers", 1)     # runtime knobs may change
    assert r.returncode == 0, r.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(out / "metrics.parquet"), before, check_exact=True)
    assert json.loads((out / "sessions.json").read_text())[-1]["images"] == 2     # only the missing shard
    r = main_here(capsys, monkeypatch, work, "audit", "--out", out, "--resume", "--samples", 5, "--methods", "vg")
    refused(r, "its run has a different configuration (methods: ['vg', 'sg2'] -> ['vg'], samples: 3 -> 5), as the "
               "run's value -> yours. `--out")


def test_folder_labels_are_the_models_class_indices(work, tmp_path):
    data = tmp_path / "named"
    for folder, index in (("Dog", 1), ("bird", 2), ("0", 0)):           # a name in another case, a name, an index
        shutil.copytree(work / "data" / ("dog" if folder == "Dog" else "cat"), data / folder)
    r = cli(work, *small(data, tmp_path / "run", "--methods", "vg", "--measures", "ef", "--labels", "folders",
                         "--target", "label", "--quiet"))
    assert r.returncode == 0, r.stderr
    table = pd.read_parquet(tmp_path / "run" / "metrics.parquet")
    want = {"0": 0, "Dog": 1, "bird": 2}
    assert table["label"].tolist() == [want[n.split("/")[0]] for n in table["name"]]
    assert table["target"].tolist() == table["label"].tolist()
    assert table["label_name"].tolist() == [["cat", "dog", "bird"][i] for i in table["label"]]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["dataset"]["label_map"] == want and manifest["output_classes"] == ["cat", "dog", "bird"]


def test_folder_labels_against_imagenet_names(tmp_path):
    rng = np.random.default_rng(1)
    for folder in ("cat", "other", "tabby", "goldfish"):
        (tmp_path / folder).mkdir()
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp_path / folder / "a.png")
    opts = ["--size", 32, "--methods", "vg", "--measures", "ef", "--labels", "folders", "--target", "label",
            "--num-workers", 0, "--quiet", "--no-report"]
    bad = tmp_path / "bad"
    (bad / "cat").mkdir(parents=True)
    (bad / "other").mkdir()
    for folder in ("cat", "other"):
        shutil.copy(tmp_path / folder / "a.png", bad / folder / "a.png")
    r = cli(tmp_path, "audit", bad, "--out", tmp_path / "r_bad", *opts)
    refused(r, "the class folders ['cat', 'other'] are neither class names of the model such as 'tench', "
               "'goldfish', 'great white shark' nor class indices 0..999")
    assert not (tmp_path / "r_bad").exists()
    good = tmp_path / "good"
    for folder in ("tabby", "goldfish"):
        shutil.copytree(tmp_path / folder, good / folder)
    r = cli(tmp_path, "audit", good, "--out", tmp_path / "r_good", *opts)
    assert r.returncode == 0, r.stderr
    table = pd.read_parquet(tmp_path / "r_good" / "metrics.parquet")
    assert table["label"].tolist() == [1, 281]                   # ImageNet indices of goldfish and tabby
    assert table["target_name"].tolist() == ["goldfish", "tabby"]


def test_ordinary_mistakes_get_one_clear_line(work, capsys, monkeypatch):
    bad_toml = work / "bad.toml"
    bad_toml.write_text("[audit]\nsize = [\n")
    cases = [
        (["--config", "missing.toml"], "error: spectral_xai audit: option 'config': no file 'missing.toml'"),
        (["--config", bad_toml], f"option 'config': '{bad_toml}' is not valid TOML: "),
        (["--sigmas", "0:1:x"], "argument --sigmas: expected numbers separated by commas, or start:stop:count "
                                "with an integer count (e.g. 0:1:11); got '0:1:x'"),
        (["--mean", "0.5,0.5", "--std", "0.2,0.2,0.2"], "option 'mean': expected 3 values (R,G,B), got 2"),
        (["--mean", "0.5,0.5,0.5"], "option 'std': give both --mean and --std, or neither"),
        (["--smaples", "3"], "spectral-xai audit: error: unrecognized arguments: --smaples (did you mean --samples?)"),
    ]
    for k, (extra, message) in enumerate(cases):
        run = cli if k in (0, len(cases) - 1) else lambda *a: main_here(capsys, monkeypatch, *a)
        r = run(work, "audit", "data", "--out", work / "never", *extra)
        refused(r, message)
        assert "_floats" not in r.stderr
    assert "usage: spectral-xai audit" in r.stderr                        # the audit's usage, not the top level
    assert not (work / "never").exists()


def test_version_methods_info_and_help(work, capsys, monkeypatch):
    import spectral_xai
    from spectral_xai.audit.cli import method_summaries
    from spectral_xai.methods import METHODS

    assert cli(work, "--version").stdout.startswith(f"spectral-xai {spectral_xai.__version__} (")
    here = lambda *a: main_here(capsys, monkeypatch, work, *a)            # noqa: E731
    assert json.loads(here("info").stdout)["spectral_xai"] == spectral_xai.__version__
    listed = [line.split()[0] for line in here("methods").stdout.splitlines()]
    assert listed == list(METHODS) and all(method_summaries().values())
    text = " ".join(here("audit", "--help").stdout.split())
    assert "examples: spectral-xai audit photos/ --out run1" in text and "--out run1 --resume" in text
    for default in ("prior {uniform,beta,power} SpectralLens prior over σ (default: uniform)",
                    "(default: log_softmax)", "erosion window of removed pixels (odd) (default: 1)",
                    "(same seed => same numbers) (default: 0)", "LOCAL_RANK GPU) (default: auto)",
                    "model and input dtype (default: float32)", "(default: none)",
                    "a blurred copy or black (default: blur)"):
        assert default in text, default


def test_progress_lines_in_a_log_and_ctrl_c_says_resume(work):
    out = work / "interrupted"
    r = cli(work, *small("data", work / "logged", "--methods", "vg", "--measures", "ef"))
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("audit: shard ")]
    assert [ln.split(",")[0] for ln in lines] == [f"audit: shard {k}/3" for k in (1, 2, 3)]
    assert all(" img/s, elapsed " in ln and ", ETA " in ln for ln in lines) and "6/6 images" in lines[-1]
    assert "audit: shard" not in cli(work, *small("data", work / "quiet", "--methods", "vg", "--measures", "ef",
                                                  "--quiet")).stderr
    slow = small("data", out, "--methods", "vg,sg2,sl2", "--samples", 64, "--shard-size", 1, "--num-workers", 2)
    proc = subprocess.Popen([sys.executable, "-m", "spectral_xai", *map(str, slow)], cwd=work, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list((out / "shards").glob("shard-*")):
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGINT)                       # what Ctrl-C does: the whole process group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err[-3000:]
    assert f"continue with:\n  spectral-xai audit --out {out} --resume" in err
    assert not (out / "metrics.parquet").exists()
    r = cli(work, "audit", "--out", out, "--resume", "--quiet")
    assert r.returncode == 0, r.stderr
    assert (pd.read_parquet(out / "metrics.parquet")["status"] == "ok").all()


def test_metrics_parquet_types_and_data_dictionary(work):
    from spectral_xai.audit.store import DATA_DICTIONARY

    out = work / "typed"
    r = cli(work, *small("data", out, "--methods", "vg,sg2,al,occlusion", "--measures", "ef,gap,deletion",
                         "--fractions", 3, "--labels", "folders", "--quiet", "--no-report"))
    assert r.returncode == 0, r.stderr
    schema = pq.read_schema(out / "metrics.parquet")
    ef = "ef ef_unranked ef_mc_error ef_unranked_mc_error ef_plugin ef_unranked_plugin"
    gap = "gap gap_plugin gap_unranked gap_unranked_plugin"
    errors = "gap_mc_error gap_unranked_mc_error"               # the derived numbers' errors, after the rest
    ranked = f"{ef} {gap} deletion rel_error samples {errors} deletion_mc_error"
    expected = ["index", "name", "status", "error", "label", "label_name", "target", "target_name", "confidence",
                "entropy", "top5_classes", "top5_probs"] + [f"{m}_{k}" for m, ks in (
                    ("vg", ranked), ("sg2", ranked), ("al", f"{ef} {gap} rel_error samples {errors} mc_agreement"),
                    ("occlusion", ranked))
                    for k in ks.split()]
    assert schema.names == expected                           # no ArgLens AUC, no unrequested measure
    types = {f.name: str(f.type) for f in schema}
    assert types["label"] == types["target"] == types["vg_samples"] == types["index"] == "int64"
    assert types["vg_ef"] == types["sg2_ef_mc_error"] == types["al_rel_error"] == "double"
    assert types["name"] == types["target_name"] == "string"
    dictionary = json.loads(schema.metadata[b"spectral_xai.data_dictionary"])
    assert list(dictionary) == expected
    assert dictionary["sg2_gap"] == DATA_DICTIONARY["<method>_gap"] and "VanillaGrad" in dictionary["sg2_gap"]
    assert all(f.metadata[b"description"].decode() == dictionary[f.name] for f in schema)
    t = pq.read_table(out / "metrics.parquet").to_pydict()
    folders = [n.split("/")[0] for n in t["name"]]
    assert t["label"] == [{"cat": 0, "dog": 1}.get(f) for f in folders]        # 'other': null, not -1
    assert t["label_name"] == [{"cat": "cat", "dog": "dog"}.get(f) for f in folders]
    assert t["target_name"] == [["cat", "dog", "bird"][i] for i in t["target"]]
    # samples per image: VG one pass, SG² n = 3, ArgLens the grid (σ = 0 once, 2 × 3 noisy), occlusion none
    assert t["vg_samples"] == [1] * 6 and t["sg2_samples"] == [3] * 6 and t["al_samples"] == [7] * 6
    assert t["occlusion_samples"] == [None] * 6
    # Monte Carlo error of the maps: exactly 0 for deterministic maps (occlusion too), NaN where not estimated
    assert t["vg_rel_error"] == t["occlusion_rel_error"] == [0.0] * 6 and np.isnan(t["al_rel_error"]).all()
    assert all(0 < v < np.inf for v in t["sg2_rel_error"])


def test_the_source_tree_shadowing_the_build_is_explained(tmp_path):
    import spectral_xai

    package = Path(spectral_xai.__file__).parent
    tree = tmp_path / "checkout"
    shutil.copytree(package, tree / "spectral_xai", ignore=shutil.ignore_patterns("_C*", "__pycache__"))
    (tree / "pyproject.toml").write_text("[project]\nname = 'spectral_xai'\n")
    env = dict(os.environ, PYTHONPATH=str(package.parent))
    r = subprocess.run([sys.executable, "-c", "import spectral_xai"], cwd=tree, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode != 0 and "circular import" not in r.stderr
    assert (f"imported from the source tree {tree / 'spectral_xai'}, which has no compiled extension _C" in r.stderr
            and f"the built package is installed at {package}" in r.stderr and "python -I" in r.stderr), r.stderr
