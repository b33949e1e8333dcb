"""What holds whatever the batch size: the noise of every row is bit-identical however the rows are chunked,
and the maps of a model whose float kernels are elementwise (a quadratic) are exactly equal for every
batch size and every grouping of the images.  (A real network's own kernels differ by batch size in the
last bits; its maps agree only up to that, so no test here claims more.)"""
import pytest
import torch

import spectral_xai as sx
from helpers import Quadratic
from spectral_xai.ops import perturb

SEED = 2**63 + 11


def _rows(n_images: int, n_sigmas: int, n_samples: int) -> torch.Tensor:
    """(R, 3) rows (image slot, σ index, sample index), every combination once."""
    grid = torch.cartesian_prod(torch.arange(n_images), torch.arange(n_sigmas), torch.arange(n_samples))
    return grid.to(torch.int64)


@pytest.mark.parametrize("mixing", ["additive", "convex", "damping"])
def test_perturbed_rows_are_bit_identical_however_they_are_chunked(mixing):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 9, 7, generator=g)
    sigmas = torch.tensor([0.1, 0.3], dtype=torch.float64)
    scales = torch.tensor([1.0, 0.5], dtype=torch.float64)
    ids = torch.tensor([4, 9])
    rows = _rows(2, 2, 6)
    whole = perturb(x, rows, sigmas, scales, ids, None, SEED, mixing)
    for size in (1, 5, 7):
        parts = [perturb(x, rows[a:a + size], sigmas, scales, ids, None, SEED, mixing)
                 for a in range(0, len(rows), size)]
        assert torch.equal(torch.cat(parts), whole)
    order = torch.randperm(len(rows), generator=g)
    assert torch.equal(perturb(x, rows[order], sigmas, scales, ids, None, SEED, mixing), whole[order])
    alone = perturb(x[1:], rows[rows[:, 0] == 1] - torch.tensor([1, 0, 0]), sigmas, scales[1:], ids[1:], None,
                    SEED, mixing)
    assert torch.equal(alone, whole[rows[:, 0] == 1])                 # the other image is not in the batch


MAPS = {
    "vg": lambda m, x, bs, ids: sx.vanilla_grad(m, x, batch_size=bs, image_ids=ids),
    "sg2": lambda m, x, bs, ids: sx.smooth_grad(m, x, 0.3, n_samples=11, seed=SEED, batch_size=bs, image_ids=ids),
    "sg": lambda m, x, bs, ids: sx.smooth_grad(m, x, 0.3, n_samples=11, squared=False, mixing="convex",
                                               seed=SEED, batch_size=bs, image_ids=ids),
    "ig": lambda m, x, bs, ids: sx.integrated_grad(m, x, n_steps=9, batch_size=bs, image_ids=ids),
}


@pytest.mark.parametrize("method", sorted(MAPS))
def test_quadratic_model_maps_are_equal_for_every_batch_size_and_grouping(method):
    model = Quadratic((3, 6, 5))
    x = torch.rand(3, 3, 6, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ids = torch.tensor([0, 5, 8])
    ref = MAPS[method](model, x, 1, ids)
    assert ref.shape == (3, 6, 5) and ref.abs().max() > 0
    for bs in (2, 4, 7, 64, None):
        assert torch.equal(MAPS[method](model, x, bs, ids), ref), bs
    for k in range(3):                                                # each image alone, with its own id
        assert torch.equal(MAPS[method](model, x[k:k + 1], 5, ids[k:k + 1])[0], ref[k])
