"""Spectrum ops (radial power spectrum, rank normalisation) against numpy / scipy and their references,
opcheck, compile, CUDA parity."""
import numpy as np
import pytest
import scipy.stats
import torch

import spectral_xai as sx
from spectral_xai.ops import spectrum as ops


def numpy_radial(m: np.ndarray) -> np.ndarray:
    """The authors' recipe: fft2 -> |.|^2 -> fftshift -> integer radius -> bincount mean."""
    H, W = m.shape
    p = np.abs(np.fft.fftshift(np.fft.fft2(m))) ** 2
    v, u = np.meshgrid(np.arange(W) - W // 2, np.arange(H) - H // 2)
    r = np.floor(np.sqrt(u**2 + v**2)).astype(int)
    return np.bincount(r.ravel(), p.ravel()) / np.bincount(r.ravel())


@pytest.mark.parametrize("shape", [(32, 32), (31, 40), (224, 224), (5, 3)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_radial_spectrum_matches_numpy(shape, dtype):
    m = torch.randn(3, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).to(dtype)
    got = sx.radial_power_spectrum(m)
    assert got.dtype == dtype and got.shape == (3, ops.radial_bins(*shape))
    want = np.stack([numpy_radial(mm) for mm in m.double().numpy()])
    np.testing.assert_allclose(got.double().numpy(), want, rtol=1e-4 if dtype == torch.float32 else 1e-10)
    torch.testing.assert_close(got, ops.radial_power_spectrum_reference(m), rtol=1e-4, atol=1e-6)
    assert ops.radial_bins(224, 224) == 159


def test_radial_spectrum_noncontiguous_and_empty():
    m = torch.randn(2, 20, 30).transpose(1, 2)
    torch.testing.assert_close(sx.radial_power_spectrum(m), ops.radial_power_spectrum_reference(m.contiguous()),
                               rtol=1e-4, atol=1e-6)
    assert ops.radial_power_spectrum(torch.empty(0, 8, 8)).shape == (0, ops.radial_bins(8, 8))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rank_normalize_matches_scipy_with_ties(dtype):
    g = torch.Generator().manual_seed(1)
    m = torch.randint(0, 6, (3, 9, 7), generator=g).to(dtype)        # many ties
    got = sx.rank_normalize(m)
    for b in range(3):
        want = scipy.stats.rankdata(m[b].double().numpy().ravel(), "average") / 63
        np.testing.assert_allclose(got[b].double().numpy().ravel(), want, rtol=1e-6)
    torch.testing.assert_close(got, ops.rank_normalize_reference(m))
    cont = torch.randn(2, 11, 13, dtype=dtype, generator=g)
    torch.testing.assert_close(sx.rank_normalize(cont), ops.rank_normalize_reference(cont))
    assert ops.rank_normalize(torch.empty(0, 3, 3)).shape == (0, 3, 3)
    for dtype in (torch.float32, torch.float64):
        with pytest.raises(ValueError, match="'maps'"):
            sx.rank_normalize(torch.tensor([[[0.0, float("nan")]]], dtype=dtype))
    inf = torch.tensor([[[0.0, float("inf")], [1.0, -2.0]]])
    assert sx.rank_normalize(inf).tolist() == [[[0.5, 1.0], [0.75, 0.25]]]  # ±Inf have ranks
    with pytest.raises(ValueError, match="'maps'"):
        sx.expected_frequency(inf, rank_normalize=False)


@pytest.mark.parametrize("shape", [(2, 9, 12), (2, 12), (2, 4, 5, 6)])     # images, signals, volumes
def test_spectrum_ops_opcheck_and_compile(shape):
    m = torch.randn(*shape)
    torch.library.opcheck(torch.ops.spectral_xai.rank_normalize.default, (m,))
    torch.library.opcheck(torch.ops.spectral_xai.radial_power_spectrum.default, (m,))

    def ef(maps):
        s = ops.radial_power_spectrum(ops.rank_normalize(maps * 2))
        w = torch.arange(s.shape[1], dtype=s.dtype) / (s.shape[1] - 1)
        return (s * w).sum(1) / s.sum(1)

    torch.testing.assert_close(torch.compile(ef, fullgraph=True)(m), ef(m))


@pytest.mark.cuda
def test_spectrum_ops_cuda_match_cpu():
    g = torch.Generator().manual_seed(3)
    for shape in [(32, 32), (31, 40), (224, 224)]:
        m = torch.randn(4, *shape, generator=g)
        torch.testing.assert_close(ops.radial_power_spectrum(m.cuda()).cpu(), ops.radial_power_spectrum(m),
                                   rtol=1e-4, atol=1e-5)
        ties = torch.randint(0, 7, (4, *shape), generator=g).float()
        assert torch.equal(ops.rank_normalize(ties.cuda()).cpu(), ops.rank_normalize(ties))
    m = torch.randn(2, 9, 12).cuda()
    torch.library.opcheck(torch.ops.spectral_xai.rank_normalize.default, (m,))
    torch.library.opcheck(torch.ops.spectral_xai.radial_power_spectrum.default, (m,))
