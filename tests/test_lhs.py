"""Latin hypercube noise (sampling="lhs"): the design, unbiased SmoothGrad(²) with less variance against
closed forms on F(x) = Σ a sin(w x), maps independent of batching, argument checks."""
import math

import pytest
import scipy.stats
import torch

import spectral_xai as sx
from spectral_xai.engine import estimate
from spectral_xai.lhs import lhs_design

from helpers import assert_unbiased, sg2_exact, sg_exact, sinusoid

S_NOISE = 0.8


def test_lhs_design_stratifies_every_element_and_each_sample_is_standard_normal():
    n, numel = 16, 5000
    d = lhs_design(7, 3, 1, n, numel).double()
    strata = torch.floor(torch.special.ndtr(d) * n).long()
    assert torch.equal(strata.sort(dim=0).values, torch.arange(n).view(n, 1).expand(n, numel))
    for i in (0, n - 1):  # one sample across elements: i.i.d. N(0, 1)
        assert scipy.stats.kstest(d[i].numpy(), "norm").pvalue > 1e-3
    # permutations independent across elements: neighbouring elements of a sample are uncorrelated
    assert abs(float(torch.corrcoef(torch.stack([d[0, :-1], d[0, 1:]]))[0, 1])) < 5 / math.sqrt(numel)
    # keyed by (seed, image id, σ index, n): deterministic, and another key gives another design
    assert torch.equal(d, lhs_design(7, 3, 1, n, numel).double())
    assert not torch.equal(d, lhs_design(7, 4, 1, n, numel).double())


def test_lhs_smoothgrad_squared_is_unbiased_and_has_lower_variance():
    R, s, n = 400, 0.4, 4
    model, a, w, x = sinusoid()
    xr = x.repeat(R, 1, 1, 1)                       # R copies, each its own image id, so its own noise
    exact = sg2_exact(a, w, x, s)
    kw = dict(target=0, output="logit", n_samples=n, batch_size=512)
    lhs = sx.smooth_grad(model, xr, s, sampling="lhs", **kw).double().view(R, *exact.shape)
    iid = sx.smooth_grad(model, xr, s, **kw).double().view(R, *exact.shape)
    assert_unbiased(lhs, exact)
    assert_unbiased(iid, exact)
    # this F is a sum of per-element terms: LHS removes most of the variance (a property, not a timing)
    assert float(lhs.var(0).sum()) < 0.6 * float(iid.var(0).sum())  # measured 0.41


def test_lhs_smoothgrad_k1_convex_is_unbiased():
    R, sigma, n = 300, 0.35, 3
    model, a, w, x = sinusoid(1)
    exact = sg_exact(a, w, x, sigma * S_NOISE, keep=1 - sigma)
    est = sx.smooth_grad(model, x.repeat(R, 1, 1, 1), sigma, target=0, output="logit", n_samples=n, squared=False,
                         mixing="convex", noise_scale=S_NOISE, sampling="lhs", batch_size=512)
    assert_unbiased(est.double().view(R, *exact.shape), exact)


@pytest.mark.parametrize("call", ["smooth_grad", "grid", "neyman"])
def test_lhs_maps_do_not_depend_on_batch_size_or_batch(cnn, images, call):
    def run(x, batch_size, ids=None):
        if call == "smooth_grad":
            return sx.smooth_grad(cnn, x, 0.3, n_samples=5, sampling="lhs", seed=3, batch_size=batch_size,
                                  image_ids=ids)
        res = sx.spectral_lens(cnn, x, [0.0, 0.3, 0.6], n_samples=4, noise_scale=0.5, sampling="lhs", seed=3,
                               estimator=call, batch_size=batch_size, image_ids=ids)
        return res.sl2

    ref = run(images, 64)
    for bs in (1, 3, 7):
        torch.testing.assert_close(run(images, bs), ref, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(run(images[2:3], 5, ids=[2]), ref[2:3], rtol=1e-5, atol=1e-7)
    # another seed, other noise
    assert not torch.allclose(sx.smooth_grad(cnn, images, 0.3, n_samples=5, sampling="lhs", seed=4),
                              sx.smooth_grad(cnn, images, 0.3, n_samples=5, sampling="lhs", seed=3))


def test_bad_sampling_arguments_name_the_argument(cnn, images):
    with pytest.raises(ValueError, match="sampling"):
        sx.smooth_grad(cnn, images, 0.3, n_samples=4, sampling="sobol")
    with pytest.raises(ValueError, match="sampling"):
        sx.smooth_grad(cnn, images, 0.3, n_samples=4, sampling="lhs", tol=0.1)
    with pytest.raises(ValueError, match="sampling"):
        sx.spectral_lens(cnn, images, n_samples=4, sampling="lhs", estimator="stratified")
    with pytest.raises(ValueError, match="n_samples"):
        sx.spectral_lens(cnn, images, n_samples=1, estimator="neyman")
    with pytest.raises(ValueError, match="tol"):
        sx.spectral_lens(cnn, images, n_samples=4, estimator="neyman", tol=0.1)
    with pytest.raises(ValueError, match="sample_offset"):
        estimate(cnn, images, sigmas=0.3, mixing="additive", n_samples=4, sample_offset=-1)
    with pytest.raises(ValueError, match="slot_samples"):
        estimate(cnn, images, sigmas=0.3, mixing="additive", n_samples=4, slot_samples=torch.ones(4, 2).long())
    with pytest.raises(TypeError, match="slot_samples"):
        estimate(cnn, images, sigmas=0.3, mixing="additive", n_samples=4, slot_samples=torch.ones(4, 1))
