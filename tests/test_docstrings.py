"""The exported functions' docstrings: Args / Returns / Example sections, and every Example runs as written
(doctest against the real functions on a tiny model)."""
import doctest

import pytest
import torch
from torch import nn

import spectral_xai as sx

DOCUMENTED = ("vanilla_grad", "smooth_grad", "integrated_grad", "spectral_lens", "prior_weights", "optimal_sigma",
              "sg2_opt", "noise_cutoff", "cs_curves", "sigma_star", "estimate", "explain", "quantus_explain_func",
              "rise", "occlusion", "preset", "smooth_activations", "inconsistency", "scale_rank_correlation",
              "build_info", "ef_with_error")


def _globs() -> dict:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 5)).eval()
    return {"sx": sx, "torch": torch, "model": model, "x": torch.rand(2, 3, 8, 8)}


@pytest.mark.parametrize("name", DOCUMENTED)
def test_docstring_sections_and_example(name):
    fn = getattr(sx, name)
    assert name in sx.__all__
    doc = fn.__doc__
    for section in ("Args:" if name != "build_info" else "", "Returns:", "Example:"):
        assert section in doc, f"{name}: no {section!r}"
    finder, runner = doctest.DocTestFinder(recurse=False), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = finder.find(fn, name, globs=_globs())
    assert tests and tests[0].examples, f"{name}: no example"
    for t in tests:
        runner.run(t)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0 and result.failed == 0, f"{name}: {result.failed} example(s) failed"
