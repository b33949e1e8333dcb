"""perturb's seed: the full uint64 range reaches the kernels (two's complement in the int64 schema)."""
import numpy as np
import pytest
import torch

from spectral_xai import _C
from spectral_xai._validation import check_seed
from spectral_xai.ops import perturb, perturb_reference
from spectral_xai.ops._philox import normal_noise
from spectral_xai.ops.perturb import schema_seed

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]   # skipped without a GPU (conftest)
SEEDS = [0, 2**32 - 1, 2**63, 2**63 + 5, 2**64 - 1]


def _noise_by_op(seed, device, image_id=7, j=1, i=3, shape=(3, 5, 6)):
    """x = 0, sigma = scale = 1, additive: out = 0 + 1 * eps, exactly the noise.  -> (C, H, W)."""
    x = torch.zeros(1, *shape, device=device)
    rows = torch.tensor([[0, j, i]], device=device)
    sigmas = torch.tensor([0.5, 1.0], dtype=torch.float64, device=device)
    scales = torch.ones(1, dtype=torch.float64, device=device)
    ids = torch.tensor([image_id], device=device)
    return perturb(x, rows, sigmas, scales, ids, None, seed, "additive")[0]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", SEEDS)
def test_perturb_noise_equals_philox_reference_over_uint64(seed, device):
    got = _noise_by_op(seed, device).cpu()
    want = normal_noise(seed, 7, 1, 3, got.numel()).reshape(got.shape)
    assert torch.equal(got, want)


@pytest.mark.parametrize("seed", SEEDS)
def test_normal4_hook_and_reference_agree_over_uint64(seed):
    ref = normal_noise(seed, 11, 2, 5, 4 * 8)
    hook = torch.tensor([v for g in range(8) for v in _C._normal4(seed, 11, 2, 5, g)])
    assert torch.equal(ref, hook)


def test_seeds_from_2_63_are_distinct_keys():
    # 2^63 + 5 and 5 share the low key word, differ in the high one: the noise must differ.
    assert not torch.equal(_noise_by_op(5, "cpu"), _noise_by_op(2**63 + 5, "cpu"))
    assert not torch.equal(_noise_by_op(0, "cpu"), _noise_by_op(2**63, "cpu"))
    assert not torch.equal(_noise_by_op(2**64 - 1, "cpu"), _noise_by_op(2**63 - 1, "cpu"))


def test_schema_seed_is_twos_complement():
    assert [schema_seed(s) for s in SEEDS] == [0, 2**32 - 1, -2**63, -2**63 + 5, -1]
    assert schema_seed(np.uint64(2**64 - 1)) == -1


def test_perturb_reference_matches_op_for_high_seed():
    x = torch.randn(2, 2, 3, 5, dtype=torch.float64)
    rows = torch.tensor([[0, 0, 1], [1, 0, 2], [1, 0, 1]])
    args = (x, rows, torch.tensor([0.3], dtype=torch.float64), torch.ones(2, dtype=torch.float64),
            torch.tensor([4, 2**32 - 1]), None)
    assert torch.equal(perturb(*args, 2**64 - 2, "convex"), perturb_reference(*args, 2**64 - 2, "convex"))


@pytest.mark.parametrize("bad, kind", [(2**64, ValueError), (-1, ValueError), (1.5, TypeError),
                                       (True, TypeError), ("3", TypeError), (None, TypeError)])
def test_bad_seeds_name_the_argument(bad, kind):
    with pytest.raises(kind, match="argument 'seed'"):
        check_seed(bad)
    with pytest.raises(kind, match="argument 'seed'"):
        _noise_by_op(bad, "cpu")


def test_check_seed_accepts_integral_scalars():
    assert check_seed(np.int64(9)) == 9 and type(check_seed(np.int64(9))) is int
    assert check_seed(np.uint64(2**64 - 1)) == 2**64 - 1
