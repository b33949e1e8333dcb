"""Interleaved sample groups, third moments, degrees of freedom, the skewness-corrected interval and the
jackknife over groups (docs/methods.md §11) against numpy statistics of the recorded per-sample maps."""
import numpy as np
import pytest
import torch
from scipy import stats as sps

import spectral_xai as sx
from spectral_xai.mc_interval import skewness_corrected_interval
from spectral_xai.mc_stats import jackknife_error, leave_one_group_out

from helpers import Quadratic
from test_mc_stats import _record


def _k3_over_n2(h):
    """Third central moment of the mean of h (n, ...): k3 / n² with k3 the unbiased third cumulant."""
    n = h.shape[0]
    m3 = ((h - h.mean(0)) ** 3).sum(0)
    return n * m3 / ((n - 1) * (n - 2)) / n**2


@pytest.mark.parametrize("squared,reduce", [(True, True), (False, False)])
def test_groups_third_and_dof_equal_numpy_statistics(squared, reduce):
    n, G, k = 11, 4, 2 if squared else 1                     # 11 samples in 4 groups: counts 3, 3, 3, 2
    model, x = Quadratic((3, 4, 5)), torch.randn(2, 3, 4, 5, dtype=torch.float64)
    st = sx.smooth_grad(model, x, 0.4, target=0, n_samples=n, squared=squared, reduce_channels=reduce, seed=5,
                        batch_size=4, groups=G, return_stats=True)
    h = _record(model, x, 0.4, n, k, reduce)
    h = h[:, :, 0, 0] if reduce else h[:, :, 0]                             # (n, B, [C,] H, W)
    assert st.group_counts.tolist() == [[3, 3, 3, 2]] * 2 and st.half_counts.tolist() == [[6, 5]] * 2
    assert st.groups.shape == (2, G, *st.map.shape[1:])
    for q in range(G):
        np.testing.assert_allclose(st.groups[:, q].numpy(), h[q::G].mean(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(st.halves[0].numpy(), h[0::2].mean(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(st.halves[1].numpy(), h[1::2].mean(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(st.third.numpy(), _k3_over_n2(h), rtol=1e-7, atol=1e-12 * np.abs(h).max() ** 3)
    np.testing.assert_allclose(st.third.numpy(), sps.kstat(h, 3, axis=0) / n**2, rtol=1e-7,
                               atol=1e-12 * np.abs(h).max() ** 3)
    assert st.dof.tolist() == [n - 1.0] * 2


def test_two_groups_are_todays_halves_bit_for_bit():
    """groups=2 (the default): the halves are the running means m <- m + (v − m)/k over the even / odd samples,
    bit for bit, and the map is unchanged."""
    n = 9
    model, x = Quadratic((3, 4, 5)), torch.randn(2, 3, 4, 5, dtype=torch.float64)
    st = sx.smooth_grad(model, x, 0.4, target=0, n_samples=n, seed=5, batch_size=4, return_stats=True)
    h = torch.from_numpy(_record(model, x, 0.4, n, 2, True)[:, :, 0, 0])
    for parity, half in enumerate(st.halves):
        m = torch.zeros_like(h[0])
        for k, v in enumerate(h[parity::2], start=1):
            m = m + (v - m) / float(k)
        assert torch.equal(half, m)
        assert torch.equal(st.groups[:, parity], half)
    assert torch.equal(st.map, sx.smooth_grad(model, x, 0.4, target=0, n_samples=n, seed=5, batch_size=4))
    assert torch.equal(st.map, sx.smooth_grad(model, x, 0.4, target=0, n_samples=n, seed=5, batch_size=4,
                                              groups=6, return_stats=True).map)


def test_lens_groups_third_and_welch_satterthwaite_dof():
    n, G, sig = 7, 4, [0.0, 0.3, 0.7]
    model, x = Quadratic((2, 3, 3)), torch.randn(2, 2, 3, 3, dtype=torch.float64)
    res = sx.spectral_lens(model, x, sig, target=0, n_samples=n, prior="power", seed=5, groups=G,
                           return_stats=True, return_per_sigma=True)
    h = _record(model, x, sig, n, 2, True, mixing="convex")[:, :, :, 0]   # (n, B, S, H, W)
    wt = res.weights.numpy()
    third_s = _k3_over_n2(h)
    third_s[:, 0] = 0.0                                                     # σ = 0: one exact sample
    np.testing.assert_allclose(res.per_sigma_third.numpy(), third_s, rtol=1e-7, atol=1e-14)
    np.testing.assert_allclose(res.third.numpy(), np.einsum("bshw,s->bhw", third_s, wt**3), rtol=1e-7, atol=1e-14)
    groups_s = np.stack([h[q::G].mean(0) for q in range(G)], axis=2)       # (B, S, G, H, W)
    groups_s[:, 0] = h[0, :, 0][:, None]                                    # empty groups of σ = 0: its map
    np.testing.assert_allclose(res.per_sigma_groups.numpy(), groups_s, rtol=1e-10)
    np.testing.assert_allclose(res.groups.numpy(), np.einsum("bsghw,s->bghw", groups_s, wt), rtol=1e-10)
    assert res.group_counts.tolist() == [[2, 2, 2, 1]] * 2
    a_j = (h.var(0, ddof=1) / n).sum((2, 3)) * wt**2                        # (B, S): w_j² Σ se_j²
    a_j[:, 0] = 0.0
    dof = a_j.sum(1) ** 2 / (a_j[:, 1:] ** 2 / (n - 1)).sum(1)
    np.testing.assert_allclose(res.dof.numpy(), dof, rtol=1e-9)
    assert res.per_sigma_dof.tolist() == [[0.0, n - 1.0, n - 1.0]] * 2
    lo, hi = res.interval(0.9)
    want = skewness_corrected_interval(res.sl2.double(), res.stderr.double() ** 2, res.third.double(),
                                       res.dof.view(-1, 1, 1), 0.9)
    torch.testing.assert_close((lo, hi), tuple(t.to(lo.dtype) for t in want))


def test_interval_is_the_skewness_corrected_t_interval():
    model, x = Quadratic((1, 4, 4)), torch.randn(2, 1, 4, 4, dtype=torch.float64)
    st = sx.smooth_grad(model, x, 0.5, target=0, n_samples=8, seed=1, return_stats=True)
    lo, hi = st.interval(0.95)
    m, se, k3, nu = (t.numpy() for t in (st.map, st.stderr, st.third, st.dof))
    q = sps.t.ppf(0.975, nu[0])
    cap = 2 / (q + np.sqrt(q * q + 2 / 3))            # where Hall's interval stops widening with |a|
    a = np.clip(k3 / se**3, -cap, cap)

    def ginv(t):
        return 3 / a * (np.cbrt(1 + a * (t - a / 6)) - 1)

    np.testing.assert_allclose(lo.numpy(), m - se * ginv(q), rtol=2e-4)
    np.testing.assert_allclose(hi.numpy(), m - se * ginv(-q), rtol=2e-4)
    assert bool((lo < st.map).all()) and bool((st.map < hi).all())


@pytest.mark.parametrize("nu", [1.0, 2.0, 3.0, 7.0, 30.0])
def test_symmetric_interval_uses_the_student_t_quantile(nu):
    mean, var = torch.tensor([1.0, -2.0]), torch.tensor([4.0, 0.25])
    lo, hi = skewness_corrected_interval(mean, var, torch.zeros(2), torch.tensor(nu), 0.95)
    half = sps.t.ppf(0.975, nu) * var.sqrt().numpy()
    np.testing.assert_allclose(hi.numpy() - mean.numpy(), half, rtol=1e-3)
    np.testing.assert_allclose(mean.numpy() - lo.numpy(), half, rtol=1e-3)


def test_jackknife_over_groups_equals_a_direct_numpy_jackknife():
    """A nonlinear statistic (the squared norm of the map): the leave-one-group-out means from the groups and
    their jackknife error equal the ones recomputed from the raw samples with group g left out."""
    gen = np.random.default_rng(0)
    n, G, B = 23, 5, 3
    h = gen.gamma(0.5, size=(n, B, 4, 4))                    # skewed samples, 5 groups of 5, 5, 5, 4, 4
    group = np.arange(n) % G
    groups = torch.from_numpy(np.stack([h[group == g].mean(0) for g in range(G)], axis=1))   # (B, G, 4, 4)
    counts = torch.tensor([[int((group == g).sum()) for g in range(G)]] * B)
    loo = leave_one_group_out(groups, counts)
    direct = np.stack([h[group != g].mean(0) for g in range(G)], axis=1)
    np.testing.assert_allclose(loo.numpy(), direct, rtol=1e-12)
    stat = lambda m: (m**2).reshape(*m.shape[:-2], -1).sum(-1)   # noqa: E731
    theta = stat(direct)                                                     # (B, G)
    want = np.sqrt((G - 1) / G * ((theta - theta.mean(1, keepdims=True)) ** 2).sum(1))
    got = jackknife_error(torch.from_numpy(stat(h.mean(0))), torch.from_numpy(stat(loo.numpy())))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    with pytest.raises(ValueError, match="'loo'"):
        jackknife_error(torch.zeros(2), torch.zeros(3, 4))


@pytest.mark.parametrize("kw,arg", [
    (dict(groups=3, return_stats=True), "groups"),      # the halves need an even G
    (dict(groups=1), "groups"),
    (dict(groups=65), "groups"),
    (dict(groups=2.0), "groups"),
])
def test_bad_groups_name_their_argument(kw, arg):
    model, x = Quadratic((1, 3, 3)), torch.randn(1, 1, 3, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=f"'{arg}'"):
        sx.smooth_grad(model, x, 0.3, target=0, n_samples=4, **kw)
    with pytest.raises(ValueError, match=f"'{arg}'"):
        sx.spectral_lens(model, x, [0.2, 0.4], target=0, n_samples=4, **kw)


def test_estimate_carries_groups_and_cubes_with_stats_only():
    from spectral_xai.engine import estimate

    model, x = Quadratic((2, 3, 3)), torch.randn(2, 2, 3, 3, dtype=torch.float64)
    est = estimate(model, x, sigmas=[0.2, 0.4], mixing="additive", powers=(1, 2), target=0, n_samples=7, groups=3, stats=True)
    assert est.group_mean1.shape == est.group_mean2.shape == (2, 2, 3, 1, 3, 3)
    assert est.group_counts.tolist() == [[[3, 2, 2]] * 2] * 2
    assert est.sumcube1.shape == est.sumcube2.shape == est.sumsq2.shape == (2, 2, 1, 3, 3)
    stop = estimate(model, x, sigmas=0.2, mixing="additive", powers=(2,), target=0, n_samples=16, target_error=0.5, check_every=4,
                    min_samples=4)
    assert stop.sumsq2 is not None and stop.sumcube2 is None and stop.group_counts is None


def test_interval_default_is_skewness_corrected_for_squared_maps_and_t_for_signed():
    """SG² (squared per-sample values) gets the skewness-corrected interval by default, SG the Student-t one;
    ``skewness=`` overrides both (docs/methods.md §11)."""
    model = Quadratic((1, 6, 6))
    x = torch.randn(2, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    for squared in (True, False):
        st = sx.smooth_grad(model, x, 0.8, squared=squared, n_samples=12, seed=5, return_stats=True)
        dof = st.dof.double().view(-1, 1, 1)
        var = st.stderr.double().square()
        hall = skewness_corrected_interval(st.map, var, st.third, dof, 0.9)
        t = skewness_corrected_interval(st.map, var, torch.zeros(()), dof, 0.9)
        expected = hall if squared else t
        for got, want in zip(st.interval(0.9), expected):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
        for got, want in zip(st.interval(0.9, skewness=not squared), t if squared else hall):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
        assert bool(torch.isfinite(st.interval(0.9)[1]).all())
