"""skewness_corrected_interval and its Student-t quantile (docs/methods.md §11): scipy's quantiles, the limits
(a = 0 is the t interval, var = 0, dof < 1), the cap on the skewness (monotone in level and in |a|), argument
checks, dtypes, and coverage on simulated skewed and bounded samples at n = 8."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from spectral_xai.mc_interval import hall_inverse, skewness_cap, skewness_corrected_interval, t_quantile

LEVELS = (0.5, 0.8, 0.9, 0.95, 0.99)


@pytest.mark.parametrize("dof", [1, 2, 3, 4, 5, 7, 9, 15, 31, 63, 127, 1000, 2.5, 3.7, math.inf])
def test_t_quantile_matches_scipy(dof):
    p = np.concatenate([np.linspace(1e-6, 0.4999, 200), [0.5], np.linspace(0.5001, 1 - 1e-6, 200)])
    q = t_quantile(torch.tensor(p), torch.tensor(float(dof))).numpy()
    ref = stats.t.ppf(p, dof)
    np.testing.assert_allclose(q, ref, rtol=1e-4, atol=1e-12)


def test_t_quantile_broadcasts():
    q = t_quantile(torch.tensor([[0.975], [0.9]]), torch.tensor([3.0, 7.0, 63.0]))
    assert q.shape == (2, 3) and q.dtype == torch.float64
    np.testing.assert_allclose(q.numpy(), stats.t.ppf([[0.975], [0.9]], [3, 7, 63]), rtol=1e-4)


@pytest.mark.parametrize("level", LEVELS)
def test_zero_skewness_is_the_t_interval(level):
    mean, var = torch.tensor([1.0, -2.0, 0.3]), torch.tensor([0.25, 4.0, 1e-6])
    dof = torch.tensor([7.0, 15.0, 63.0])
    lo, hi = skewness_corrected_interval(mean, var, torch.zeros(3), dof, level)
    half = torch.tensor(stats.t.ppf(0.5 + level / 2, dof.numpy())) * var.double().sqrt()
    np.testing.assert_allclose(lo.numpy(), (mean - half).numpy(), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(hi.numpy(), (mean + half).numpy(), rtol=1e-4, atol=1e-7)


def test_small_skewness_is_continuous_at_zero():
    """No 0/0 at a = 0: a tiny a gives the t interval to first order, without NaN."""
    q = torch.tensor([-2.0, 0.0, 1.5], dtype=torch.float64)
    for a in (1e-300, 1e-12, -1e-12):
        out = hall_inverse(q, torch.tensor(a, dtype=torch.float64))
        assert torch.isfinite(out).all()
        np.testing.assert_allclose(out.numpy(), q.numpy(), atol=1e-11)
    assert torch.equal(hall_inverse(q, torch.tensor(0.0, dtype=torch.float64)), q)


def test_hall_inverse_inverts_g_within_the_cap():
    t = torch.linspace(-3, 3, 61, dtype=torch.float64)
    for a in (-0.4, -0.1, 0.05, 0.3, 0.45):
        x = hall_inverse(t, torch.tensor(a, dtype=torch.float64))
        g = x + a * x**2 / 3 + a**2 * x**3 / 27 + a / 6
        np.testing.assert_allclose(g.numpy(), t.numpy(), atol=1e-12)


def test_hall_inverse_real_cube_root_beyond_the_cap():
    """A negative cube-root argument (|a| beyond the cap) gives the real cube root, not NaN."""
    out = hall_inverse(torch.tensor(-3.0, dtype=torch.float64), torch.tensor(2.0, dtype=torch.float64))
    u = 1 + 2.0 * (-3.0 - 2.0 / 6)
    assert u < 0 and float(out) == pytest.approx(1.5 * (-abs(u) ** (1 / 3) - 1), rel=1e-12)


def test_var_zero_gives_a_point_and_dof_below_one_gives_everything():
    lo, hi = skewness_corrected_interval(torch.tensor([2.0, 2.0]), torch.tensor([0.0, 0.0]),
                                         torch.tensor([0.0, 5.0]), torch.tensor(7.0))
    assert torch.equal(lo, torch.tensor([2.0, 2.0])) and torch.equal(hi, torch.tensor([2.0, 2.0]))
    lo, hi = skewness_corrected_interval(torch.tensor(1.0), torch.tensor(1.0), torch.tensor(0.0), torch.tensor(0.0))
    assert float(lo) == -math.inf and float(hi) == math.inf


def _grid():
    """mean 0, var 1, third = a over a wide range of a (far beyond the cap and beyond sample skewness) and dofs."""
    a = torch.tensor([-1e6, -50.0, -3.0, -1.0, -0.5, -0.2, 0.0, 0.1, 0.4, 0.8, 1.0, 2.5, 40.0, 1e6],
                     dtype=torch.float64)
    dof = torch.tensor([2.0, 7.0, 15.0, 63.0], dtype=torch.float64)[:, None]
    return torch.zeros(()), torch.ones(()), a, dof


def test_monotone_in_level_and_holds_the_mean():
    mean, var, third, dof = _grid()
    levels = np.linspace(0.01, 0.999, 120)
    los, his = zip(*(skewness_corrected_interval(mean, var, third, dof, float(lv)) for lv in levels))
    lo, hi = torch.stack(los), torch.stack(his)
    assert torch.isfinite(lo).all() and torch.isfinite(hi).all()
    assert bool((lo.diff(dim=0) <= 1e-12).all()) and bool((hi.diff(dim=0) >= -1e-12).all())
    big = torch.tensor(levels) >= 0.5                   # at usual levels the interval holds the mean
    assert bool((lo[big] <= 0).all()) and bool((hi[big] >= 0).all())


@pytest.mark.parametrize("level", LEVELS)
def test_width_grows_with_skewness_and_mirrors(level):
    mean, var, _, dof = _grid()
    a = torch.linspace(0, 50, 2001, dtype=torch.float64)
    lo, hi = skewness_corrected_interval(mean, var, a, dof, level)
    assert bool(((hi - lo).diff(dim=-1) >= -1e-12).all())
    assert bool((hi - lo >= (hi - lo)[..., :1] - 1e-12).all())
    # past the cap nothing changes; a mirrored sample mirrors the interval
    cap = skewness_cap(t_quantile(torch.tensor(0.5 + level / 2), dof))
    past = a[None, :] >= cap
    assert torch.equal(torch.where(past, hi, 0), torch.where(past, hi[..., -1:].expand_as(hi), 0))
    lo2, hi2 = skewness_corrected_interval(-mean, var, -a, dof, level)
    np.testing.assert_allclose(lo2.numpy(), -hi.numpy(), atol=1e-12)
    np.testing.assert_allclose(hi2.numpy(), -lo.numpy(), atol=1e-12)


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, float("nan")])
def test_level_out_of_range(bad):
    with pytest.raises(ValueError, match="argument 'level'"):
        skewness_corrected_interval(torch.zeros(2), torch.ones(2), torch.zeros(2), torch.tensor(7.0), bad)


@pytest.mark.parametrize("bad", ["0.95", True, None, torch.tensor(0.95)])
def test_level_wrong_type(bad):
    with pytest.raises(TypeError, match="argument 'level'"):
        skewness_corrected_interval(torch.zeros(2), torch.ones(2), torch.zeros(2), torch.tensor(7.0), bad)


def test_bad_tensors_are_named():
    with pytest.raises(ValueError, match="argument 'var'"):
        skewness_corrected_interval(torch.zeros(2), torch.tensor([1.0, -1.0]), torch.zeros(2), torch.tensor(7.0))
    with pytest.raises(TypeError, match="argument 'third'"):
        skewness_corrected_interval(torch.zeros(2), torch.ones(2), [0.0, 0.0], torch.tensor(7.0))


def test_dtypes_and_broadcasting():
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(2, 5, 6, generator=g, dtype=torch.float64)
    var = torch.rand(2, 5, 6, generator=g, dtype=torch.float64)
    third = (torch.rand(2, 5, 6, generator=g, dtype=torch.float64) - 0.5) * var**1.5
    dof = torch.tensor([7.0, 31.0]).view(2, 1, 1)
    lo64, hi64 = skewness_corrected_interval(mean, var, third, dof)
    lo32, hi32 = skewness_corrected_interval(mean.float(), var.float(), third.float(), dof)
    assert lo64.dtype == hi64.dtype == torch.float64 and lo32.dtype == hi32.dtype == torch.float32
    assert lo64.shape == hi64.shape == (2, 5, 6)
    np.testing.assert_allclose(lo32.numpy(), lo64.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(hi32.numpy(), hi64.numpy(), rtol=1e-5, atol=1e-6)
    lo, hi = skewness_corrected_interval(1.0, 0.25, 0.0, 7)     # plain numbers: float64 tensors
    assert lo.dtype == torch.float64 and float(hi - lo) == pytest.approx(stats.t.ppf(0.975, 7), rel=1e-4)


def _coverage(samples: torch.Tensor, truth: float, level: float = 0.95, skew: bool = True) -> float:
    """samples (R, n): share of the R intervals from unbiased k2, k3 that hold the truth."""
    n = samples.shape[1]
    m = samples.mean(1)
    d = samples - m[:, None]
    k2 = (d**2).sum(1) / (n - 1)
    k3 = n * (d**3).sum(1) / ((n - 1) * (n - 2)) if skew else torch.zeros_like(k2)
    lo, hi = skewness_corrected_interval(m, k2 / n, k3 / n**2, torch.tensor(n - 1.0), level)
    return float(((lo <= truth) & (truth <= hi)).double().mean())


def test_coverage_at_n8_on_skewed_and_bounded_samples():
    """95 % intervals from n = 8 samples, 20000 replicas (se of a coverage ~0.2 %): χ²₁ (mean 1), non-central
    χ²₁ with λ = 1 (mean 2), bounded cos²(0.3 + 0.3 Z) (mean (1 + cos 0.6·e^{−0.18})/2), all within [90, 97] %,
    where the t interval (a = 0) covers χ²₁ only ~85 %."""
    g = torch.Generator().manual_seed(12)
    z = torch.randn(3, 20000, 8, generator=g, dtype=torch.float64)
    cases = {"chi2_1": (z[0] ** 2, 1.0), "ncx2_1(1)": ((z[1] + 1) ** 2, 2.0),
             "cos2": (torch.cos(0.3 + 0.3 * z[2]) ** 2, (1 + math.cos(0.6) * math.exp(-0.18)) / 2)}
    cov = {k: _coverage(x, mu) for k, (x, mu) in cases.items()}
    assert all(0.90 <= c <= 0.97 for c in cov.values()), cov
    assert _coverage(cases["chi2_1"][0], 1.0, skew=False) < 0.88
