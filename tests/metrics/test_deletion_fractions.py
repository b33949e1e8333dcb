"""deletion_insertion(fractions=...): at least 2 finite, strictly increasing values in [0, 1], else an
error naming `fractions`; accepted fractions give the trapezoid AUC of the curve (numpy)."""
import numpy as np
import pytest
import torch
from torch import nn

from spectral_xai.metrics import deletion_insertion


class MeanModel(nn.Module):
    """Class 0 logit = 8·(mean(x) − 0.5); class 1 logit = 0."""

    def forward(self, x):
        f = 8 * (x.mean(dim=(1, 2, 3)) - 0.5)
        return torch.stack([f, torch.zeros_like(f)], dim=1)


@pytest.fixture
def setup():
    g = torch.Generator().manual_seed(0)
    return MeanModel(), torch.rand(2, 1, 10, 10, generator=g), torch.rand(2, 10, 10, generator=g)


@pytest.mark.parametrize("fractions, kind", [
    ([0, 0.5, 1, float("nan")], ValueError),      # used to give a negative AUC
    ([0, float("inf")], ValueError),
    ([0, 0.5, 1.5], ValueError),
    ([-0.1, 0.5], ValueError),
    ([0.5], ValueError),
    ([0, 1, 0.5], ValueError),                     # used to be re-sorted silently
    ([0, 0.5, 0.5, 1], ValueError),
    ([[0, 0.5], [0.5, 1]], ValueError),
    (torch.tensor(0.5), ValueError),
    (["a", "b"], TypeError),
    (torch.tensor([False, True]), TypeError),
])
def test_bad_fractions_raise_naming_fractions(setup, fractions, kind):
    model, x, maps = setup
    with pytest.raises(kind, match="'fractions'"):
        deletion_insertion(model, x, maps, target=0, fractions=fractions, baseline="black")


def test_valid_fractions_give_the_trapezoid_of_the_curve(setup):
    model, x, maps = setup
    q = [0.0, 0.1, 0.35, 0.6, 1.0]
    out = deletion_insertion(model, x, maps, target=0, fractions=torch.tensor(q, dtype=torch.float64),
                             baseline="black")
    assert out["fractions"].tolist() == q
    removed = out["removed_fraction"].numpy()
    np.testing.assert_allclose(removed, np.broadcast_to(np.array(q), removed.shape), atol=1e-6)  # 100 pixels
    for name in ("deletion", "insertion"):
        curve = out[f"{name}_curve"].numpy()
        want = [np.trapezoid(curve[b], removed[b]) for b in range(2)]
        np.testing.assert_allclose(out[f"{name}_auc"].numpy(), want, rtol=1e-12)
    assert bool((out["deletion_auc"] >= 0).all())
    # the top fractions removed from x by hand, scored by the model's class-0 probability
    flat = maps[0].flatten()
    order = torch.argsort(flat, descending=True, stable=True)
    for j, frac in enumerate(q):
        keep = torch.ones(100)
        keep[order[:round(frac * 100)]] = 0
        p = torch.softmax(model(x[:1] * keep.view(1, 1, 10, 10)).double(), 1)[0, 0]
        assert float(out["deletion_curve"][0, j]) == pytest.approx(float(p), rel=1e-6)
