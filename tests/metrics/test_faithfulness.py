"""Deletion / insertion on a model whose evidence lies in a known region."""
import pytest
import torch
from torch import nn

from spectral_xai.metrics import blur_baseline, deletion_insertion, keep_masks

from helpers import BlockModel


@pytest.fixture
def setup():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 16, 16, generator=g) * 0.4
    x[:, :, 4:8, 6:10] = 1.0
    region = torch.zeros(3, 16, 16)
    region[:, 4:8, 6:10] = 1.0
    # class 0 logit = 10 (mean of x over the 4x4 block at (4:8, 6:10) − 0.5); class 1 logit = 0
    return BlockModel(slice(4, 8), slice(6, 10), 10.0, -5.0), x, region, torch.rand(3, 16, 16, generator=g)


@pytest.mark.parametrize("baseline", ["black", "blur"])
def test_region_map_beats_random_and_morf_beats_lerf(setup, baseline):
    model, x, region, random_map = setup
    good = deletion_insertion(model, x, region, target=0, baseline=baseline)
    rand = deletion_insertion(model, x, random_map, target=0, baseline=baseline)
    assert bool((good["deletion_auc"] < rand["deletion_auc"]).all())
    assert bool((good["insertion_auc"] > rand["insertion_auc"]).all())
    lerf = deletion_insertion(model, x, region, target=0, baseline=baseline, order="lerf")
    assert bool((good["deletion_auc"] < lerf["deletion_auc"]).all())


def test_endpoints_erosion_and_batching(setup):
    model, x, region, random_map = setup
    out = deletion_insertion(model, x, random_map, target=0, baseline="black", batch_size=5, labels=[0, 0, 1])
    with torch.no_grad():
        clean = torch.softmax(model(x).double(), 1)[:, 0]
        black = torch.softmax(model(torch.zeros_like(x)).double(), 1)[:, 0]
    torch.testing.assert_close(out["deletion_curve"][:, 0], clean)
    torch.testing.assert_close(out["deletion_curve"][:, -1], black)
    torch.testing.assert_close(out["insertion_curve"][:, 0], black)
    torch.testing.assert_close(out["insertion_curve"][:, -1], clean)
    assert out["removed_fraction"][:, 0].tolist() == [0.0] * 3 and out["removed_fraction"][:, -1].tolist() == [1.0] * 3
    assert out["deletion_accuracy"].shape == (3, 21) and out["deletion_accuracy"][2, 0] == 0.0
    # a per-q loop gives the same curve
    q = out["fractions"]
    keep = keep_masks(random_map.double(), q)
    for j in (3, 11):
        m = keep[:, j].unsqueeze(1)
        with torch.no_grad():
            p = torch.softmax(model(x * m).double(), 1)[:, 0]
        torch.testing.assert_close(out["deletion_curve"][:, j], p)
    # erosion removes more and the AUC uses the actual fraction
    eroded = deletion_insertion(model, x, random_map, target=0, baseline="black", erosion=3)
    assert bool((eroded["removed_fraction"] >= out["removed_fraction"] - 1e-12).all())
    assert bool((eroded["removed_fraction"][:, 1:-1] > out["removed_fraction"][:, 1:-1]).any())
    want = torch.trapezoid(eroded["deletion_curve"], eroded["removed_fraction"], dim=1)
    torch.testing.assert_close(eroded["deletion_auc"], want)


def test_blur_baseline_and_errors(setup):
    model, x, region, _ = setup
    b = blur_baseline(x)
    assert b.shape == x.shape and float(b[:, :, 5, 7].mean()) < 0.9     # the bright block is smeared
    torch.testing.assert_close(blur_baseline(torch.ones(1, 1, 9, 9)), torch.ones(1, 1, 9, 9))
    with pytest.raises(ValueError, match="'maps'"):
        deletion_insertion(model, x, region[:, :8])
    with pytest.raises(ValueError, match="'erosion'"):
        deletion_insertion(model, x, region, erosion=2)
    with pytest.raises(ValueError, match="'baseline'"):
        deletion_insertion(model, x, region, baseline="white")


def test_low_precision_model_is_evaluated_in_its_dtype(setup):
    import spectral_xai as sx

    _, x, region, _ = setup
    model = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.Flatten(), nn.Linear(2 * 256, 2)).to(torch.bfloat16)
    out = deletion_insertion(model, x, region, target=0, baseline="black")
    assert out["deletion_auc"].shape == (3,) and bool(torch.isfinite(out["deletion_auc"]).all())
    assert sx.occlusion(model, x, target=0, window=4).dtype == torch.float32
    assert sx.rise(model, x, target=0, n_masks=8).dtype == torch.float32
