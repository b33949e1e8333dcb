"""Variance reduction that stays unbiased: Latin hypercube noise (sampling="lhs") and Neyman allocation of the
samples over σ (spectral_lens(estimator="neyman")), against closed forms on F(x) = Σ a sin(w x)."""
import math

import pytest
import scipy.stats
import torch

import spectral_xai as sx
from spectral_xai.engine import estimate
from spectral_xai.lens import neyman_counts
from spectral_xai.sampling import lhs_design

from conftest import Sinusoid

H = W = 6
S_NOISE = 0.8


def _sinusoid(replicas, seed=0):
    """The model and `replicas` copies of 2 images (each copy its own image id, so its own noise)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(1, 1, H, W, generator=g) + 0.5
    w = torch.rand(1, 1, H, W, generator=g) * 3 + 0.5
    x = torch.rand(2, 1, H, W, generator=g) * 4 - 2
    return Sinusoid(a, w), a.double(), w.double(), x, x.repeat(replicas, 1, 1, 1)


def additive_sg2(a, w, x, s):
    return (a**2 * w**2 * 0.5 * (1 + torch.cos(2 * w * x.double()) * torch.exp(-2 * w**2 * s**2)))[:, 0]


def convex_sg2(a, w, x, sigma, s=S_NOISE):
    return (a**2 * w**2 * 0.5 * (1 + torch.cos(2 * w * (1 - sigma) * x.double()) *
                                 torch.exp(-2 * w**2 * sigma**2 * s**2)))[:, 0]


def _assert_unbiased(est, exact, k=5.0):
    """est (R, 2, H, W): R independent replicas of the 2 images' maps; exact (2, H, W).  Per pixel
    |mean - exact| <= k standard errors (from the replicas' spread), and the mean z-score ~ N(0, 1/n)."""
    R = est.shape[0]
    mean, se = est.mean(0), est.std(0) / math.sqrt(R)
    z = (mean - exact) / se
    assert bool((z.abs() <= k).all()), float(z.abs().max())
    assert abs(float(z.mean())) <= k / math.sqrt(z.numel()), float(z.mean())


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
    model, a, w, x, xr = _sinusoid(R)
    exact = additive_sg2(a, w, x, s)
    kw = dict(target=0, output="logit", n_samples=n, batch_size=512)
    lhs = sx.smooth_grad(model, xr, s, sampling="lhs", **kw).double().view(R, 2, H, W)
    iid = sx.smooth_grad(model, xr, s, **kw).double().view(R, 2, H, W)
    _assert_unbiased(lhs, exact)
    _assert_unbiased(iid, exact)
    # this F is a sum of per-element terms: LHS removes most of the variance (a property, not a timing)
    assert float(lhs.var(0).sum()) < 0.6 * float(iid.var(0).sum())  # measured 0.41


def test_lhs_smoothgrad_k1_convex_is_unbiased():
    R, sigma, n = 300, 0.35, 3
    model, a, w, x, xr = _sinusoid(R, seed=1)
    exact = (a * w * torch.cos(w * (1 - sigma) * x.double()) * torch.exp(-(w**2) * sigma**2 * S_NOISE**2 / 2))[:, 0]
    est = sx.smooth_grad(model, xr, sigma, target=0, output="logit", n_samples=n, squared=False, mixing="convex",
                         noise_scale=S_NOISE, sampling="lhs", batch_size=512).double().view(R, 2, H, W)
    _assert_unbiased(est, exact)


@pytest.mark.parametrize("sampling", ["iid", "lhs"])
def test_neyman_spectral_lens_is_unbiased(sampling):
    R, n = 300, 3
    model, a, w, x, xr = _sinusoid(R, seed=2)
    res = sx.spectral_lens(model, xr, target=0, output="logit", noise_scale=S_NOISE, n_samples=n,
                           estimator="neyman", sampling=sampling, return_per_sigma=True, batch_size=1024)
    exact = torch.stack([convex_sg2(a, w, x, float(s)) for s in res.sigmas], dim=1)  # (2, S, H, W)
    _assert_unbiased(res.sl2.double().view(R, 2, H, W), exact.mean(dim=1))
    # the budget of the grid: 1 exact pass at σ = 0, (n - 1) per noisy σ after one pilot each
    assert res.n_samples[:, 0].eq(1).all()
    assert res.n_samples[:, 1:].sum(1).eq((n - 1) * 10).all() and res.n_samples.ge(1).all()
    assert res.arglens is not None and res.estimator == "neyman"


def test_neyman_counts_follow_weights_times_sd():
    w = torch.tensor([0.2, 0.2, 0.2, 0.2, 0.2], dtype=torch.float64)
    sd = torch.tensor([[0.0, 8.0, 4.0, 2.0, 1.0], [5.0, 0.0, 0.0, 0.0, 0.0]])
    noisy = torch.tensor([[False, True, True, True, True], [True] * 5])
    c = neyman_counts(w, sd, noisy, torch.tensor([60, 20]), defensive=0.0)
    assert c[0].tolist() == [0, 32, 16, 8, 4]
    assert c[1].tolist() == [16, 1, 1, 1, 1]         # at least one sample per noisy σ
    c = neyman_counts(w, sd, noisy, torch.tensor([60, 20]))   # 25 % split evenly: 0.75·share + 0.25/4
    assert c[0].tolist() == [0, 28, 16, 10, 6]
    assert c[1].tolist() == [16, 1, 1, 1, 1]


def test_sample_offset_continues_the_noise_streams(cnn, images):
    kw = dict(sigmas=[0.0, 0.2, 0.5], mixing="convex", powers=(2,), noise_scale=0.5, seed=4, batch_size=7)
    m4 = estimate(cnn, images, n_samples=4, **kw).mean2
    m1 = estimate(cnn, images, n_samples=1, **kw).mean2
    m_rest = estimate(cnn, images, n_samples=3, sample_offset=1, **kw).mean2
    noisy = torch.tensor([False, True, True]).view(1, 3, 1, 1, 1)
    torch.testing.assert_close(torch.where(noisy, (m1 + 3 * m_rest) / 4, m1), m4, rtol=1e-5, atol=1e-9)
    counts = torch.tensor([[1, 2, 3]] * 4)
    est = estimate(cnn, images, n_samples=1, slot_samples=counts, **kw)
    assert est.n_samples.tolist() == [[1, 2, 3]] * 4


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
