"""Clear errors naming the argument where a raw traceback came before: channels the model does not take, labels
of the wrong length, numpy integer targets, the largest seed of exact_gap."""
import numpy as np
import pytest
import torch

import spectral_xai as sx
from helpers import small_cnn


@pytest.fixture(scope="module")
def cnn():
    return small_cnn(size=8).eval()


def test_four_channel_input_into_a_three_channel_model(cnn):
    x = torch.rand(2, 4, 8, 8)
    for call in (lambda: sx.vanilla_grad(cnn, x), lambda: sx.smooth_grad(cnn, x, 0.1, n_samples=2, target=0),
                 lambda: sx.metrics.deletion_insertion(cnn, x, torch.rand(2, 8, 8), fractions=[0, 1])):
        with pytest.raises(ValueError, match=r"argument 'x'.* 4 channels .*first convolution takes 3"):
            call()


def test_labels_of_the_wrong_length_are_refused_before_any_pass(cnn):
    x = torch.rand(3, 3, 8, 8)
    with pytest.raises(ValueError, match=r"argument 'labels'.*expected 3 labels"):
        sx.metrics.deletion_insertion(cnn, x, torch.rand(3, 8, 8), labels=[0, 1])
    with pytest.raises(TypeError, match=r"argument 'labels'.*integer"):
        sx.metrics.deletion_insertion(cnn, x, torch.rand(3, 8, 8), labels=[0.5, 1.0, 2.0])
    out = sx.metrics.deletion_insertion(cnn, x, torch.rand(3, 8, 8), labels=np.array([0, 1, 2]), fractions=[0, 1])
    assert out["deletion_accuracy"].shape == (3, 2)


def test_numpy_integer_target_equals_int_target(cnn):
    x = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(sx.vanilla_grad(cnn, x, np.int64(2)), sx.vanilla_grad(cnn, x, 2), rtol=0, atol=0)
    with pytest.raises(TypeError, match="argument 'target'"):
        sx.vanilla_grad(cnn, x, np.float64(2))


def test_exact_gap_accepts_the_largest_seed(cnn):
    x = torch.rand(1, 3, 8, 8)
    gap = sx.exact_gap(cnn, x, sigma=0.1, n_samples=2, seed=2**64 - 1)
    assert gap.shape == (1,) and bool(torch.isfinite(gap).all())


def test_huge_sample_and_step_counts_are_refused_before_allocating(cnn):
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"argument 'n_samples'.*GiB.*available"):
        sx.smooth_grad(cnn, x, 0.1, n_samples=10**9)
    with pytest.raises(ValueError, match=r"argument 'n_samples'.*2\^32"):
        sx.smooth_grad(cnn, x, 0.1, n_samples=10**12)
    with pytest.raises(ValueError, match=r"argument 'n_steps'.*GiB.*available"):
        sx.integrated_grad(cnn, x, n_steps=10**7)
    with pytest.raises(ValueError, match=r"argument 'sigmas'.*accumulators"):
        sx.spectral_lens(cnn, torch.rand(2, 3, 512, 512), sigmas=torch.linspace(0, 1, 200_000), n_samples=2)
