"""RISE and Occlusion: the right region, a brute-force loop, determinism."""
import torch
from torch import nn

import spectral_xai as sx
from spectral_xai.perturbation_methods import rise_masks

from helpers import BlockModel


def _block_model():
    """Class 0 logit = 8·(mean of x over rows 2:6, cols 8:12) − 2; class 1 logit = 0."""
    return BlockModel(slice(2, 6), slice(8, 12), 8.0, -2.0)


def _x():
    return torch.rand(2, 3, 14, 14, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.5


def test_rise_finds_the_block_and_is_deterministic():
    model, x = _block_model(), _x()
    m = sx.rise(model, x, target=0, n_masks=400, batch_size=64, seed=3)
    inside = m[:, 2:6, 8:12].mean(dim=(1, 2))
    outside = m.clone()
    outside[:, 2:6, 8:12] = float("nan")
    assert bool((inside > outside.nanmean(dim=(1, 2)) * 1.1).all())
    assert torch.equal(m, sx.rise(model, x, target=0, n_masks=400, batch_size=7, seed=3))
    alone = sx.rise(model, x[1:], target=0, n_masks=400, seed=3, image_ids=[1])
    torch.testing.assert_close(alone[0], m[1])
    assert not torch.equal(m, sx.rise(model, x, target=0, n_masks=400, seed=4))
    masks = rise_masks(0, 5, 300, (14, 14))
    assert masks.shape == (300, 14, 14) and 0.4 < float(masks.mean()) < 0.6
    assert float(masks.min()) >= 0 and float(masks.max()) <= 1


def test_occlusion_equals_brute_force():
    model, x = _block_model(), _x()
    got = sx.occlusion(model, x, target=0, window=4, stride=3, batch_size=5)
    want = torch.zeros(2, 14, 14, dtype=torch.float64)
    cover = torch.zeros(14, 14, dtype=torch.float64)
    with torch.no_grad():
        p0 = torch.softmax(model(x).double(), 1)[:, 0]
        for y in (0, 3, 6, 9, 10):
            for xx in (0, 3, 6, 9, 10):
                xo = x.clone()
                xo[:, :, y:y + 4, xx:xx + 4] = 0
                want[:, y:y + 4, xx:xx + 4] += (p0 - torch.softmax(model(xo).double(), 1)[:, 0]).view(-1, 1, 1)
                cover[y:y + 4, xx:xx + 4] += 1
    torch.testing.assert_close(got.double(), want / cover, rtol=1e-5, atol=1e-7)
    assert float(got[:, 0:2, 0:4].abs().max()) == 0.0       # windows away from the block change nothing


def test_progress_lines_for_long_calls(capsys):
    model = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3))
    x = torch.rand(2, 3, 8, 8)
    quiet = sx.rise(model, x, 0, n_masks=4)
    loud = sx.rise(model, x, 0, n_masks=4, progress=True)
    torch.testing.assert_close(quiet, loud)
    err = capsys.readouterr().err
    assert "RISE: image 1/2" in err and "RISE: image 2/2" in err and "masks/s" in err and "ETA" in err
    sx.occlusion(model, x, 0, progress=True)
    assert "occlusion: image 2/2" in capsys.readouterr().err
