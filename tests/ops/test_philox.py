"""The counter-based noise: Philox4x32-10 known answers, the C++ normal kernel against the Python reference."""
import torch

from spectral_xai import _C
from spectral_xai.ops._philox import normal_noise, philox4x32_10


def test_philox_known_answers():
    # Random123 known-answer vectors for Philox4x32-10.
    cases = [
        ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
        ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
        ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
         [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
    ]
    for ctr, key, want in cases:
        assert _C._philox4x32_10(ctr, key) == want
        got = philox4x32_10([torch.tensor([c]) for c in ctr], tuple(key))
        assert [int(v) for v in got] == want


def test_noise_kernel_matches_reference_bitwise_and_is_normal():
    ref = normal_noise(2**40 + 7, 11, 2, 5, 4 * 5000)
    ker = torch.tensor([v for g in range(5000) for v in _C._normal4(2**40 + 7, 11, 2, 5, g)])
    assert torch.equal(ref, ker)
    big = normal_noise(1, 0, 0, 0, 400_000).double()
    assert abs(big.mean().item()) < 5 / 400_000**0.5
    assert abs(big.std().item() - 1) < 0.005
    assert abs(((big**4).mean() - 3).item()) < 0.05  # kurtosis of a normal
    assert abs((big > 1.96).double().mean().item() - 0.025) < 0.002
