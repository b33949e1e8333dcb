"""accumulate_ op: reference equality, chunk independence, stopping statistics, opcheck, compile."""
import pytest
import torch

from spectral_xai.ops import accumulate_, accumulate_reference


def _state(P, C, H, W, reduce, track=(1, 2), stop=True, device="cpu"):
    c = 1 if reduce else C
    f64 = dict(dtype=torch.float64, device=device)
    mk = lambda on: torch.zeros(P, c, H, W, **f64) if on else torch.empty(0, **f64)  # noqa: E731
    return [mk(1 in track), mk(2 in track), torch.zeros(P, dtype=torch.int64, device=device), mk(stop),
            torch.full((P,), -1.0, **f64), torch.full((P,), -1.0, **f64)]


def _slots(P, per_slot, order):
    return torch.tensor([p for p in order for _ in range(per_slot)], dtype=torch.int64)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("reduce", [True, False])
@pytest.mark.parametrize("track", [(1,), (2,), (1, 2)])
def test_accumulate_matches_reference(dtype, reduce, track):
    P, C, H, W = 4, 3, 5, 7
    slots = _slots(P, 5, [2, 0, 3])
    grads = torch.randn(slots.numel(), C, H, W, dtype=torch.float64).to(dtype)
    got, ref = _state(P, C, H, W, reduce, track), _state(P, C, H, W, reduce, track)
    accumulate_(grads, slots, *got, 4)
    accumulate_reference(grads, slots, *ref, 4)
    for a, b in zip(got, ref):
        assert torch.equal(a, b)


def test_accumulate_is_independent_of_chunking_and_tracks_means():
    P, C, H, W = 3, 2, 4, 6
    per = 12
    slots = _slots(P, per, range(P))
    grads = torch.randn(slots.numel(), C, H, W).transpose(2, 3).contiguous().transpose(2, 3)  # odd strides
    whole = _state(P, C, H, W, False, stop=True)
    accumulate_(grads, slots, *whole, 4)
    parts = _state(P, C, H, W, False, stop=True)
    for lo, hi in [(0, 5), (5, 6), (6, 23), (23, 36)]:
        accumulate_(grads[lo:hi], slots[lo:hi], *parts, 4)
    for a, b in zip(whole[:4], parts[:4]):
        assert torch.equal(a, b)
    g = grads.double().view(P, per, C, H, W)
    torch.testing.assert_close(whole[0], g.mean(1), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(whole[1], (g * g).mean(1), rtol=1e-12, atol=1e-14)
    assert whole[2].tolist() == [per] * P
    # stopping statistic of the last checkpoint (n = 12) against the mean at n = 8
    m12, m8 = (g * g).mean(1), (g[:, :8] * g[:, :8]).mean(1)
    torch.testing.assert_close(whole[4], (m12 - m8).abs().flatten(1).amax(1), rtol=1e-12, atol=0)
    torch.testing.assert_close(whole[5], m12.abs().flatten(1).amax(1), rtol=1e-12, atol=0)


def test_accumulate_channel_reduction():
    grads = torch.randn(4, 3, 5, 5, dtype=torch.float64)
    st = _state(1, 3, 5, 5, True, stop=False)
    accumulate_(grads, torch.zeros(4, dtype=torch.int64), *st, 1)
    torch.testing.assert_close(st[0][0, 0], grads.sum(1).mean(0))
    torch.testing.assert_close(st[1][0, 0], (grads**2).sum(1).mean(0))


def test_accumulate_empty_chunk_and_errors():
    st = _state(2, 3, 4, 4, True)
    accumulate_(torch.empty(0, 3, 4, 4), torch.empty(0, dtype=torch.int64), *st, 2)
    assert st[2].tolist() == [0, 0]
    with pytest.raises(ValueError, match="not contiguous"):
        accumulate_(torch.randn(3, 3, 4, 4), torch.tensor([0, 1, 0]), *st, 2)
    with pytest.raises(ValueError, match="slots"):
        accumulate_(torch.randn(2, 3, 4, 4), torch.tensor([0, 5]), *st, 2)
    with pytest.raises(ValueError, match="mean2"):
        bad = list(st)
        bad[1] = torch.zeros(2, 2, 4, 4, dtype=torch.float64)
        accumulate_(torch.randn(2, 3, 4, 4), torch.tensor([0, 1]), *bad, 2)


def test_accumulate_opcheck():
    st = _state(3, 3, 4, 5, False)
    torch.library.opcheck(torch.ops.spectral_xai.accumulate_.default,
                          (torch.randn(6, 3, 4, 5), torch.tensor([0, 0, 2, 2, 2, 1]), *st, 2))


def test_accumulate_compiles_fullgraph():
    def step(g, slots, m1, m2, counts, ck, d, s):
        accumulate_(g * 1.0, slots, m1, m2, counts, ck, d, s, 2)
        return m2.sum()

    g = torch.randn(6, 3, 4, 5)
    slots = torch.tensor([0, 0, 1, 1, 1, 2])
    eager, comp = _state(3, 3, 4, 5, True), _state(3, 3, 4, 5, True)
    want = step(g, slots, *eager)
    got = torch.compile(step, fullgraph=True)(g, slots, *comp)  # Inductor, functionalised mutation
    torch.testing.assert_close(got, want)
    for a, b in zip(eager, comp):
        assert torch.equal(a, b)


@pytest.mark.cuda
@pytest.mark.parametrize("reduce", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_accumulate_cuda_matches_cpu(reduce, dtype):
    P, C, H, W = 5, 3, 17, 9
    slots = _slots(P, 7, [4, 1, 0, 3])
    grads = torch.randn(slots.numel(), C, H, W).to(dtype)
    cpu = _state(P, C, H, W, reduce)
    gpu = _state(P, C, H, W, reduce, device="cuda")
    for lo, hi in [(0, 9), (9, 28)]:
        accumulate_(grads[lo:hi], slots[lo:hi], *cpu, 3)
        accumulate_(grads[lo:hi].cuda(), slots[lo:hi].cuda(), *gpu, 3)
    for a, b in zip(cpu, gpu):
        assert torch.equal(a, b.cpu())
    torch.library.opcheck(torch.ops.spectral_xai.accumulate_.default,
                          (grads[:7].cuda(), slots[:7].cuda(), *gpu, 3))
