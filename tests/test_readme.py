"""Every ```python snippet of README.md runs, in order, in one namespace (as a reader would paste them),
at small sizes: the substitutions below shrink images and sample counts and nothing else."""
import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"
SMALL = [
    (r"photos\(128\)", "photos(32)[:2]"),
    (r"n_samples=32", "n_samples=2"),
    (r"n_steps=32", "n_steps=2"),
    (r"max_samples=1024", "max_samples=16"),
    (r"n_masks=2000", "n_masks=8"),
    (r"^import spectral_xai as sx$", "import spectral_xai as sx; sx = _Small(sx)"),
    (r'AuditConfig\(out="run", ', 'AuditConfig(out="run", methods=["vg", "sg2"], samples=2, fractions=3, quiet=True, '
                                  'report=False, num_workers=0, '),
]
DEFAULT_SAMPLED = ("spectral_lens", "optimal_sigma", "noise_cutoff")


class _Small:
    """The package, with a small default sample count for the calls that rely on the default."""

    def __init__(self, sx):
        self._sx = sx

    def __getattr__(self, name):
        attr = getattr(self._sx, name)
        if name in DEFAULT_SAMPLED:
            return lambda *a, **k: attr(*a, **{"n_samples": 2, **k})
        return attr


def snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def shrink(code: str) -> str:
    for pattern, repl in SMALL:
        code = re.sub(pattern, repl, code, flags=re.M)
    return code


def test_readme_has_snippets_and_the_substitutions_apply():
    code = snippets()
    assert len(code) >= 4
    usage = next(c for c in code if "import spectral_xai as sx" in c)
    assert "_Small(sx)" in shrink(usage) and "photos(32)" in shrink(usage)   # small images, few samples
    own = next(c for c in code if "run_audit(AuditConfig(" in c)
    assert "samples=2" in shrink(own)


def _run(blocks: list[str]) -> dict:
    ns = {"torch": torch, "_Small": _Small}
    for i, block in enumerate(blocks):
        try:
            exec(compile(shrink(block), f"README.md python snippet {i + 1}", "exec"), ns)
        except Exception as err:  # name the snippet in the failure
            raise AssertionError(f"README snippet {i + 1} fails:\n{block}\n{type(err).__name__}: {err}") from err
    return ns


def _hub_files(root: Path) -> None:
    """What the "own models and data" snippet loads: a tiny ViT directory ``vit_dir`` (32 px) and a saved
    Hugging Face dataset ``saved_ds`` of three small photos with class labels, in ``root``."""
    import datasets
    import numpy as np
    import transformers
    from PIL import Image

    cfg = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=32, num_labels=2)
    torch.manual_seed(0)
    transformers.ViTForImageClassification(cfg).save_pretrained(root / "vit_dir")
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (36, 40, 3), dtype=np.uint8)) for _ in range(3)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    datasets.Dataset.from_dict({"image": images, "label": [0, 1, 0]}, features=features).save_to_disk(
        str(root / "saved_ds"))


def test_readme_cpu_snippets_run(tmp_path, monkeypatch):
    _hub_files(tmp_path)
    monkeypatch.chdir(tmp_path)            # the snippets' relative paths (vit_dir, saved_ds, run) live here
    ns = _run([c for c in snippets() if ".cuda()" not in c])
    assert ns["sg2"].shape == (2, 32, 32) and ns["xig"].shape == (2, 32, 32)
    assert ns["res"].sl2.shape == (2, 32, 32) and ns["sigma_star"].shape == (2,)
    assert ns["out"]["deletion_auc"].shape == (2,) and ns["rise_map"].shape == ns["occ_map"].shape == (2, 32, 32)
    assert torch.isfinite(ns["sg2"]).all() and 0 <= ns["cut"].scale <= 1.0
    assert (tmp_path / "run" / "metrics.parquet").exists()      # the audit of the user's dataset and model
    # "Use it from other libraries": Quantus's evaluate with our metric, the torchmetrics loop
    import numpy as np
    import spectral_xai as sx
    a = sx.quantus_explain_func(ns["model"], ns["x_np"], ns["y_np"], method="sg2")
    np.testing.assert_array_equal(ns["results"]["sg2"]["EF no DC"],
                                  sx.expected_frequency(torch.from_numpy(a[:, 0]), exclude_dc=True).double().numpy())
    assert len(ns["results"]["vg"]["Sparseness"]) == 2 and np.all(np.asarray(ns["results"]["sg2"]["Gap to VG"]) > 0)
    assert ns["stats"].count == 2 and ns["spectrum"].shape == (sx.radial_power_spectrum(ns["x"][:, 0]).shape[1],)
    assert bool(torch.isfinite(ns["ef_cross"])) and ns["ig_attr"].shape == ns["x"].shape
    # the Monte Carlo error snippet: interval around the map, the EF with its error, the EF stop within its cap
    assert bool((ns["lo"] <= ns["hi"]).all()) and ns["e"].stderr.shape == (2,)
    assert bool(((ns["stop"].n_samples >= 8) & (ns["stop"].n_samples <= 16)).all())


@pytest.mark.cuda
def test_readme_gpu_snippet_runs(tmp_path, monkeypatch):
    _hub_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    ns = _run(snippets())
    assert ns["sg2"].is_cuda and ns["sg2"].shape == (2, 32, 32)
