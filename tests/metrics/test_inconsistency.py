"""Inconsistency across σ (cosine, DSSIM) at its bounds, and the scale rank correlation against scipy."""
import numpy as np
import pytest
import scipy.stats
import torch

import spectral_xai as sx


def test_inconsistency_bounds_and_spearman():
    g = torch.Generator().manual_seed(0)
    m = torch.rand(2, 1, 20, 20, generator=g)
    same = m.repeat(1, 4, 1, 1)
    for measure in ("cosine", "dssim"):
        torch.testing.assert_close(sx.inconsistency(same, measure=measure), torch.zeros(2, dtype=torch.float64))
    left = torch.zeros(1, 1, 20, 20)
    left[..., :10] = 1
    disjoint = torch.cat([left, left.flip(-1)], dim=1)
    torch.testing.assert_close(sx.inconsistency(disjoint), torch.ones(1, dtype=torch.float64))
    maps = torch.rand(1, 3, 9, 9, generator=g)
    rho = sx.scale_rank_correlation(maps)
    want = scipy.stats.spearmanr(maps[0].flatten(1).T.numpy()).statistic
    np.testing.assert_allclose(rho[0].numpy(), want, rtol=1e-10, atol=1e-12)
    ties = torch.tensor([[[[1.0, 1.0, 2.0, 3.0]], [[4.0, 3.0, 3.0, 1.0]]]])
    want = scipy.stats.spearmanr(ties[0, 0, 0].numpy(), ties[0, 1, 0].numpy()).statistic
    assert float(sx.scale_rank_correlation(ties)[0, 0, 1]) == pytest.approx(want)
    with pytest.raises(ValueError, match="'measure'"):
        sx.inconsistency(same, measure="l2")
