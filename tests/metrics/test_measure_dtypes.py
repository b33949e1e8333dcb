"""Every measure of maps comes back in the maps' precision (float64 for float64, else float32), with the
value of the float64 computation."""
import pytest
import torch

import spectral_xai as sx
from helpers import small_cnn


def _maps(dtype):
    return torch.randn(3, 16, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64).to(dtype)


MEASURES = {
    "expected_frequency": lambda m: sx.expected_frequency(m),
    "expected_frequency_raw": lambda m: sx.expected_frequency(m, rank_normalize=False, reduction="authors"),
    "explanation_gap": lambda m: sx.explanation_gap(m, m.flip(-1).cumsum(-1)),
    "radial_power_spectrum": lambda m: sx.radial_power_spectrum(m),
    "inconsistency": lambda m: sx.inconsistency(torch.stack([m, m.cumsum(-2)], dim=1), downsample=2),
    "scale_rank_correlation": lambda m: sx.scale_rank_correlation(torch.stack([m, m.cumsum(-1)], dim=1)),
}


@pytest.mark.parametrize("name", list(MEASURES))
def test_measures_keep_the_maps_precision(name):
    fn = MEASURES[name]
    m32 = _maps(torch.float32)
    got32, got64 = fn(m32), fn(m32.double())
    assert got32.dtype == torch.float32 and got64.dtype == torch.float64
    torch.testing.assert_close(got32, got64.float(), rtol=2e-6, atol=1e-7)
    assert torch.allclose(got32, got64.to(torch.float32))    # used to raise "Double did not match Float"
    half = fn(m32.to(torch.bfloat16)) if name != "explanation_gap" else fn(m32.half())
    assert half.dtype == torch.float32


def test_exact_gap_keeps_the_inputs_precision():
    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    model = small_cnn()
    surrogate = sx.smooth_activations(model, 2.0)
    assert sx.exact_gap(model, x, surrogate=surrogate).dtype == torch.float32
    assert sx.exact_gap(model.double(), x.double(), surrogate=surrogate.double()).dtype == torch.float64
