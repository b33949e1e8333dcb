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
    (r"n_masks=2000", "n_masks=8"),
    (r"^import spectral_xai as sx$", "import spectral_xai as sx; sx = _Small(sx)"),
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
    assert "_Small(sx)" in shrink(code[0]) and "photos(32)" in shrink(code[0])   # small images, few samples


def _run(blocks: list[str]) -> dict:
    ns = {"torch": torch, "_Small": _Small}
    for i, block in enumerate(blocks):
        try:
            exec(compile(shrink(block), f"README.md python snippet {i + 1}", "exec"), ns)
        except Exception as err:  # name the snippet in the failure
            raise AssertionError(f"README snippet {i + 1} fails:\n{block}\n{type(err).__name__}: {err}") from err
    return ns


def test_readme_cpu_snippets_run():
    ns = _run([c for c in snippets() if ".cuda()" not in c])
    assert ns["sg2"].shape == (2, 32, 32) and ns["xig"].shape == (2, 32, 32)
    assert ns["res"].sl2.shape == (2, 32, 32) and ns["sigma_star"].shape == (2,)
    assert ns["out"]["deletion_auc"].shape == (2,) and ns["rise_map"].shape == ns["occ_map"].shape == (2, 32, 32)
    assert torch.isfinite(ns["sg2"]).all() and 0 <= ns["cut"].scale <= 1.0


@pytest.mark.cuda
def test_readme_gpu_snippet_runs():
    ns = _run(snippets())
    assert ns["sg2"].is_cuda and ns["sg2"].shape == (2, 32, 32)
