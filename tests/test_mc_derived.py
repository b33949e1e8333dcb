"""Monte Carlo errors of derived numbers (docs/methods.md §11): ΔEF, σ* change rate, ArgLens agreement,
inconsistency jackknife, half-split errors; each against a direct computation on the groups / halves."""
from itertools import combinations

import numpy as np
import pytest
import torch

import spectral_xai as sx
from spectral_xai.mc_derived import (arglens_agreement, gap_mc_error, group_splits, half_split_error,
                                     inconsistency_mc_error, sigma_star_change)

from helpers import small_cnn

SIGMAS = torch.tensor([0.0, 0.2, 0.4, 0.6, 1.0], dtype=torch.float64)


@pytest.fixture(scope="module")
def lens4():
    """A SpectralLens run with 4 sample groups (7 samples per σ: groups of 2, 2, 2, 1), one with 2, the model
    and the images."""
    model, x = small_cnn(size=12), torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    kw = dict(target=0, n_samples=7, noise_scale=0.5, return_stats=True, return_per_sigma=True, seed=3)
    return (sx.spectral_lens(model, x, SIGMAS, groups=4, **kw), sx.spectral_lens(model, x, SIGMAS, **kw), model, x)


def _side_mean(g, n, chosen):
    """numpy: the count-weighted mean of the groups ``chosen`` of g (B, S, G, H, W), n (B, S, G); a σ without
    samples there gets the mean of all groups."""
    w = n[:, :, chosen]
    side = (w[..., None, None] * g[:, :, chosen]).sum(2)
    full = (n[..., None, None] * g).sum(2) / n.sum(2)[..., None, None]
    tot = w.sum(2)[..., None, None]
    return np.where(tot > 0, side / np.maximum(tot, 1), full)


def test_gap_error_adds_the_variances():
    m, r = torch.tensor([0.03, 0.0, 0.4]), torch.tensor([0.04, 0.0, 0.3])
    torch.testing.assert_close(gap_mc_error(m, r), torch.tensor([0.05, 0.0, 0.5], dtype=torch.float64))
    torch.testing.assert_close(gap_mc_error(m), m.double())           # a deterministic reference: error 0


def test_gap_error_matches_the_spread_of_a_simulated_gap():
    """ΔEF of two independent normal EFs far from 0: the sd of |EF_m − EF_ref| is sqrt(se_m² + se_ref²)."""
    g = torch.Generator().manual_seed(0)
    ef_m = 0.5 + 0.03 * torch.randn(200_000, generator=g, dtype=torch.float64)
    ef_r = 0.3 + 0.04 * torch.randn(200_000, generator=g, dtype=torch.float64)
    sd = (ef_m - ef_r).abs().std()
    assert abs(float(sd) / float(gap_mc_error(torch.tensor(0.03), torch.tensor(0.04))) - 1) < 0.01


def test_half_split_error():
    torch.testing.assert_close(half_split_error(torch.tensor([1.0, 2.0]), torch.tensor([0.5, 3.0])),
                               torch.tensor([0.25, 0.5], dtype=torch.float64))


def test_group_splits_are_every_balanced_split(lens4):
    res = lens4[0]
    g, n = res.per_sigma_groups.double(), res.per_sigma_group_counts
    assert n[0, 1].tolist() == [2, 2, 2, 1] and n[0, 0].tolist() == [1, 0, 0, 0]     # σ = 0: one exact sample
    a, b = group_splits(g, n)
    splits = [c for c in combinations(range(4), 2) if 0 in c]
    assert a.shape == (2, 3, 5, 12, 12)
    for k, chosen in enumerate(splits):
        other = [q for q in range(4) if q not in chosen]
        np.testing.assert_allclose(a[:, k].numpy(), _side_mean(g.numpy(), n.numpy(), list(chosen)), rtol=1e-12)
        np.testing.assert_allclose(b[:, k].numpy(), _side_mean(g.numpy(), n.numpy(), other), rtol=1e-12)
    np.testing.assert_allclose(a[:, :, 0].numpy(), b[:, :, 0].numpy())               # noiseless σ: its sample
    a2, b2 = group_splits(lens4[1].per_sigma_groups, lens4[1].per_sigma_group_counts)
    torch.testing.assert_close(a2[:, 0], lens4[1].per_sigma_halves[0].double())      # G = 2: the halves
    torch.testing.assert_close(b2[:, 0], lens4[1].per_sigma_halves[1].double())


def test_group_splits_pool_more_than_eight_groups():
    g = torch.randn(1, 2, 16, 3, 3, dtype=torch.float64)
    n = torch.ones(1, 2, 16)
    a, b = group_splits(g, n)
    assert a.shape[1] == 35                                                          # C(8, 4) / 2
    pooled = (g[:, :, :8] + g[:, :, 8:]) / 2
    torch.testing.assert_close(a[:, 0], pooled[:, :, [0, 1, 2, 3]].mean(2))
    torch.testing.assert_close(b[:, 0], pooled[:, :, [4, 5, 6, 7]].mean(2))


def test_sigma_star_change_equals_sigma_star_on_each_split(lens4):
    res = lens4[0]
    g, n = res.per_sigma_groups, res.per_sigma_group_counts
    a, b = group_splits(g, n)
    want = []
    for i in range(2):
        diff = [int(sx.sigma_star(a[i:i + 1, k], SIGMAS, 0.5).index) != int(sx.sigma_star(b[i:i + 1, k], SIGMAS,
                                                                                          0.5).index)
                for k in range(3)]
        want.append(np.mean(diff))
    change = sigma_star_change(g, n, SIGMAS, 0.5)
    np.testing.assert_allclose(change.numpy(), want)
    star = sx.sigma_star(res.per_sigma, SIGMAS, 0.5, groups=g, group_counts=n)
    assert torch.equal(star.mc_change, change) and sx.sigma_star(res.per_sigma, SIGMAS, 0.5).mc_change is None


def test_sigma_star_change_is_zero_for_a_clear_optimum_and_one_for_flipping_halves():
    """Per-σ groups built by hand: a curve whose peak no split can move, and halves whose peaks differ."""
    sig = torch.tensor([0.2, 0.4, 0.6], dtype=torch.float64)
    n = torch.ones(2, 3, 2)
    g = torch.ones(2, 3, 2, 4, 4, dtype=torch.float64)
    g[0, 1] *= 100                                       # image 0: σ = 0.4 wins in both halves
    g[1, 0, 0] *= 100                                    # image 1: half A peaks at 0.2, half B at 0.6
    g[1, 2, 1] *= 100
    assert sigma_star_change(g, n, sig, 1.0).tolist() == [0.0, 1.0]
    mask = torch.tensor([[True, True, True], [True, True, False]])   # a per-image rule is applied per half
    assert sigma_star_change(g, n, sig, 1.0, admissible=mask).tolist() == [0.0, 1.0]
    mask[1] = torch.tensor([False, True, True])
    assert sigma_star_change(g, n, sig, 1.0, admissible=mask).tolist() == [0.0, 0.0]


def test_arglens_agreement_compares_the_halves(lens4):
    res = lens4[1]
    a, b = res.per_sigma_halves
    want = a.double().argmax(1) == b.double().argmax(1)
    assert res.arglens_agreement.dtype == torch.bool and res.arglens_agreement.shape == res.arglens.shape
    assert torch.equal(res.arglens_agreement, want) and torch.equal(arglens_agreement(a, b), want)
    assert 0 < float(want.double().mean()) < 1
    with pytest.raises(ValueError, match="per_sigma_b"):
        arglens_agreement(a, b[:, :2])


def test_inconsistency_error_is_the_jackknife_over_groups(lens4):
    res = lens4[0]
    g, n = res.per_sigma_groups.double(), res.per_sigma_group_counts.double()
    theta, err = inconsistency_mc_error(g, n, downsample=2)
    torch.testing.assert_close(theta, sx.inconsistency(res.per_sigma.double(), downsample=2), rtol=1e-6, atol=0)
    reps = []
    for q in range(4):
        keep = [r for r in range(4) if r != q]
        loo = torch.from_numpy(_side_mean(g.numpy(), n.numpy(), keep))
        reps.append(sx.inconsistency(loo, downsample=2).numpy())
    reps = np.stack(reps, 1)
    want = np.sqrt(3 / 4 * ((reps - reps.mean(1, keepdims=True)) ** 2).sum(1))
    np.testing.assert_allclose(err.numpy(), want, rtol=1e-9)
    assert (err > 0).all()
    r2 = lens4[1]                                        # two groups: the half-split |θ(A) − θ(B)|/2
    _, err2 = inconsistency_mc_error(r2.per_sigma_groups, r2.per_sigma_group_counts, downsample=2)
    a, b = (sx.inconsistency(h.double(), downsample=2) for h in r2.per_sigma_halves)
    torch.testing.assert_close(err2, half_split_error(a, b), rtol=1e-9, atol=1e-15)


def test_bad_groups_name_the_argument():
    g, n = torch.zeros(1, 3, 2, 4, 4), torch.ones(1, 3, 2)
    with pytest.raises(ValueError, match="groups"):
        group_splits(g[:, :, :1], n[:, :, :1])
    with pytest.raises(ValueError, match="group_counts"):
        inconsistency_mc_error(g, n[:, :2])
    with pytest.raises(ValueError, match="groups"):
        sigma_star_change(g[0], n, SIGMAS[:3])



def test_optimal_sigma_reports_the_change_rate_of_its_own_groups(lens4):
    res, model, x = lens4[0], *lens4[2:]
    o = sx.optimal_sigma(model, x, SIGMAS, 0, n_samples=7, noise_scale=0.5, seed=3, groups=4, return_stats=True)
    assert torch.equal(o.per_sigma, res.per_sigma)                       # the same noise as SpectralLens
    want = sigma_star_change(res.per_sigma_groups, res.per_sigma_group_counts, SIGMAS, 0.5)
    torch.testing.assert_close(o.mc_change, want)
    assert sx.optimal_sigma(model, x, SIGMAS, 0, n_samples=2, return_curves=True).mc_change is None
    with pytest.raises(ValueError, match="return_stats"):
        sx.optimal_sigma(model, x, SIGMAS, 0, n_samples=2, level="pixel", return_stats=True)
    with pytest.raises(ValueError, match="groups"):
        sx.optimal_sigma(model, x, SIGMAS, 0, n_samples=4, groups=3, return_stats=True)


def test_explanation_gap_with_halves_returns_its_error(lens4):
    a, b = lens4[1].halves
    g = torch.Generator().manual_seed(2)
    ref, ra, rb = (torch.rand(a.shape, generator=g) for _ in range(3))
    ef = sx.expected_frequency
    for ranked in (True, False):
        gap, err = sx.explanation_gap(ref, a, method_b=b, rank_normalize=ranked, return_error=True)
        assert torch.equal(gap, sx.explanation_gap(ref, a, method_b=b, rank_normalize=ranked))
        se_m = (ef(a, rank_normalize=ranked).double() - ef(b, rank_normalize=ranked).double()).abs() / 2
        torch.testing.assert_close(err, se_m)                            # a deterministic reference: error 0
        _, both = sx.explanation_gap(ra, a, reference_b=rb, method_b=b, rank_normalize=ranked, return_error=True)
        se_r = (ef(ra, rank_normalize=ranked).double() - ef(rb, rank_normalize=ranked).double()).abs() / 2
        torch.testing.assert_close(both, (se_m**2 + se_r**2).sqrt())
    assert (sx.explanation_gap(ref, a, return_error=True)[1] == 0).all()
