"""accumulate_ Monte Carlo statistics: Welford sums of squares and cubes, means of interleaved sample groups
(sample index mod G), non-finite counts."""
import numpy as np
import pytest
import torch

from spectral_xai.ops import MAX_GROUPS, accumulate_, accumulate_reference

STATS = ("sumsq1", "sumsq2", "sumcube1", "sumcube2", "group_mean1", "group_mean2", "group_counts", "nonfinite")


def _state(P, C, H, W, reduce, device="cpu", stats=STATS, track=(1, 2), G=2):
    """Positional accumulators of accumulate_ (means, counts, stopping) and a dict of statistics."""
    c = 1 if reduce else C
    f64 = dict(dtype=torch.float64, device=device)
    i64 = dict(dtype=torch.int64, device=device)
    mk = lambda on: torch.zeros(P, c, H, W, **f64) if on else torch.empty(0, **f64)  # noqa: E731
    pos = [mk(1 in track), mk(2 in track), torch.zeros(P, **i64), mk(True), torch.full((P,), -1.0, **f64),
           torch.full((P,), -1.0, **f64)]
    make = dict(sumsq1=lambda: mk(True), sumsq2=lambda: mk(True),
                sumcube1=lambda: mk(True), sumcube2=lambda: mk(True),
                group_mean1=lambda: torch.zeros(P, G, c, H, W, **f64),
                group_mean2=lambda: torch.zeros(P, G, c, H, W, **f64),
                group_counts=lambda: torch.zeros(P, G, **i64), nonfinite=lambda: torch.zeros(P, **i64))
    return pos, {k: make[k]() for k in stats}


def _stream(per_slot, offsets, round_size, seed):
    """rows (R, 2) = (slot, sample index) in the engine's order: rounds of up to round_size samples
    per slot, slots in a shuffled order within a round, each slot's samples contiguous and in order."""
    gen = np.random.default_rng(seed)
    done = [0] * len(per_slot)
    rounds = []
    while any(d < n for d, n in zip(done, per_slot)):
        rows = []
        for p in gen.permutation(len(per_slot)):
            k = min(round_size, per_slot[p] - done[p])
            rows += [(int(p), offsets[p] + done[p] + i) for i in range(k)]
            done[p] += k
        rounds.append(torch.tensor(rows, dtype=torch.int64))
    return rounds


def _chunks(rounds, seed):
    """Splits every round at random cut points (a slot's rows stay contiguous within a chunk)."""
    gen = np.random.default_rng(seed)
    out, start = [], 0
    for rows in rounds:
        cuts = sorted(set(gen.integers(0, rows.shape[0] + 1, size=3).tolist()) | {0, rows.shape[0]})
        out += [(start + lo, start + hi) for lo, hi in zip(cuts[:-1], cuts[1:])]
        start += rows.shape[0]
    return out


def _run(rounds, grads, pos, stats, chunks=None, check_every=3):
    """Streams the rows through accumulate_ (whole rounds, or the given (lo, hi) chunks of all rows)."""
    rows = torch.cat(rounds)
    starts = np.cumsum([0] + [r.shape[0] for r in rounds]).tolist()
    bounds = chunks if chunks is not None else list(zip(starts[:-1], starts[1:]))
    dev = pos[0].device if pos[0].numel() else pos[1].device
    for lo, hi in bounds:
        accumulate_(grads[lo:hi].to(dev), rows[lo:hi, 0].to(dev), *pos, check_every,
                    sample_index=rows[lo:hi, 1].to(dev), **stats)


def _case(reduce, dtype, seed=0):
    P, C, H, W = 4, 3, 5, 6
    per_slot, offsets = [9, 2, 12, 5], [0, 3, 7, 100]  # odd offsets: the first sample is in group 1 (G = 2)
    rounds = _stream(per_slot, offsets, 4, seed)
    grads = torch.randn(sum(r.shape[0] for r in rounds), C, H, W, dtype=torch.float64).to(dtype)
    grads = grads.transpose(2, 3).contiguous().transpose(2, 3)  # odd strides
    return (P, C, H, W), rounds, grads


def _values(grads, reduce):
    g = grads.double().numpy()
    if reduce:
        return g.sum(1, keepdims=True), (g * g).sum(1, keepdims=True)
    return g, g * g


def _central_moments(v):
    """Mean, unbiased variance and the sum of cubed deviations of v (n, ...) in numpy."""
    m = v.mean(0)
    return m, v.var(0, ddof=1), ((v - m) ** 3).sum(0)


@pytest.mark.parametrize("reduce", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("G", [2, 3, 5])
def test_moments_and_groups_equal_numpy_statistics(reduce, dtype, G):
    shape, rounds, grads = _case(reduce, dtype)
    pos, stats = _state(*shape, reduce, G=G)
    _run(rounds, grads, pos, stats)
    rows = torch.cat(rounds).numpy()
    values = _values(grads, reduce)
    for p in range(shape[0]):
        mine = rows[:, 0] == p
        groups = [mine & (rows[:, 1] % G == q) for q in range(G)]
        assert stats["group_counts"][p].tolist() == [int(g.sum()) for g in groups]
        for k, v in enumerate(values, start=1):
            mean, var, m3 = _central_moments(v[mine])
            scale = np.abs(v[mine]).max() + 1e-300
            np.testing.assert_allclose(pos[k - 1][p].numpy(), mean, rtol=1e-12, atol=1e-13 * scale)
            np.testing.assert_allclose(stats[f"sumsq{k}"][p].numpy() / (mine.sum() - 1), var, rtol=1e-10,
                                       atol=1e-12 * scale ** 2)
            np.testing.assert_allclose(stats[f"sumcube{k}"][p].numpy(), m3, rtol=1e-8, atol=1e-10 * scale ** 3)
            for q, g in enumerate(groups):
                want = v[g].mean(0) if g.any() else np.zeros_like(mean)   # an empty group stays 0
                np.testing.assert_allclose(stats[f"group_mean{k}"][p, q].numpy(), want, rtol=1e-12, atol=1e-13)
    assert stats["nonfinite"].tolist() == [0] * shape[0]


def test_third_moment_of_a_skewed_sample_is_its_numpy_value():
    """Strongly skewed values (exponential-like g², n = 40) in one slot, split into uneven calls."""
    gen = torch.Generator().manual_seed(11)
    g = torch.randn(40, 1, 2, 3, generator=gen, dtype=torch.float64) ** 3 * 10 + 5
    pos, stats = _state(1, 1, 2, 3, False, stats=("sumsq1", "sumsq2", "sumcube1", "sumcube2"))
    for lo, hi in [(0, 1), (1, 2), (2, 17), (17, 40)]:
        accumulate_(g[lo:hi], torch.zeros(hi - lo, dtype=torch.int64), *pos, 5, **stats)
    for k, v in enumerate((g.numpy(), g.numpy() ** 2), start=1):
        _, var, m3 = _central_moments(v)
        np.testing.assert_allclose(stats[f"sumsq{k}"][0].numpy() / 39, var, rtol=1e-10)
        np.testing.assert_allclose(stats[f"sumcube{k}"][0].numpy(), m3, rtol=1e-8)
        assert (np.abs(m3) > 1e-3 * np.abs(v - v.mean(0)).max(0) ** 3).all()   # genuinely skewed


@pytest.mark.parametrize("reduce", [True, False])
@pytest.mark.parametrize("G", [2, 3])
def test_statistics_do_not_depend_on_the_chunking_and_leave_the_plain_op_unchanged(reduce, G):
    shape, rounds, grads = _case(reduce, torch.float32, seed=1)
    pos, stats = _state(*shape, reduce, G=G)
    _run(rounds, grads, pos, stats)
    for seed in (2, 3):
        pos_c, stats_c = _state(*shape, reduce, G=G)
        _run(rounds, grads, pos_c, stats_c, chunks=_chunks(rounds, seed))
        for a, b in zip(pos + list(stats.values()), pos_c + list(stats_c.values())):
            assert torch.equal(a, b)
    plain, _ = _state(*shape, reduce, stats=())
    _run(rounds, grads, plain, {})  # the old call, without statistics: bit-identical outputs
    for a, b in zip(pos, plain):
        assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("reduce", [True, False])
@pytest.mark.parametrize("track", [(1,), (2,), (1, 2)])
@pytest.mark.parametrize("G", [2, 3])
def test_kernel_equals_the_reference(dtype, reduce, track, G):
    shape, rounds, grads = _case(reduce, dtype, seed=4)
    grads[3, 1, 2, 2] = float("nan")
    wanted = [s for s in STATS if not s.startswith(("sumsq", "sumcube")) or int(s[-1]) in track]
    got, got_s = _state(*shape, reduce, stats=wanted, track=track, G=G)
    ref, ref_s = _state(*shape, reduce, stats=wanted, track=track, G=G)
    rows = torch.cat(rounds)
    for lo, hi in _chunks(rounds, 5):
        kw = dict(sample_index=rows[lo:hi, 1])
        accumulate_(grads[lo:hi], rows[lo:hi, 0], *got, 3, **kw, **got_s)
        accumulate_reference(grads[lo:hi], rows[lo:hi, 0], *ref, 3, **kw, **ref_s)
    for a, b in zip(got + list(got_s.values()), ref + list(ref_s.values())):
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)  # bit-equal, NaN where the NaN went


@pytest.mark.parametrize("reduce", [True, False])
def test_nonfinite_counts_every_bad_element_of_its_slot(reduce):
    shape, rounds, grads = _case(reduce, torch.float32, seed=6)
    gen = torch.Generator().manual_seed(7)
    grads = grads.contiguous()
    flat = grads.view(-1)
    where = torch.randperm(flat.numel(), generator=gen)[:40]
    flat[where[:15]] = float("nan")
    flat[where[15:30]] = float("inf")
    flat[where[30:]] = -float("inf")
    grads[0, :, 1, 1] = float("nan")  # several bad channels of one pixel count one by one
    pos, stats = _state(*shape, reduce, stats=("nonfinite",))  # requested alone
    _run(rounds, grads, pos, stats)
    rows = torch.cat(rounds).numpy()
    bad = ~np.isfinite(grads.numpy()).reshape(grads.shape[0], -1)
    want = [int(bad[rows[:, 0] == p].sum()) for p in range(shape[0])]
    assert stats["nonfinite"].tolist() == want and sum(want) >= 40


def test_bad_statistics_name_their_argument():
    pos, stats = _state(2, 3, 4, 4, True)
    g, slots, idx = torch.randn(3, 3, 4, 4), torch.tensor([0, 0, 1]), torch.tensor([0, 1, 0])
    no_mean1 = list(pos)
    no_mean1[0] = torch.empty(0, dtype=torch.float64)
    with pytest.raises(ValueError, match="'sumsq1'"):
        accumulate_(g, slots, *no_mean1, 2, sample_index=idx, sumsq1=stats["sumsq1"])
    with pytest.raises(ValueError, match="'sumcube2'"):
        accumulate_(g, slots, *pos, 2, sumcube2=stats["sumcube2"])           # needs sumsq2
    with pytest.raises(ValueError, match="'group_counts'"):
        accumulate_(g, slots, *pos, 2, sample_index=idx, group_mean1=stats["group_mean1"])
    with pytest.raises(ValueError, match="'sample_index'"):
        accumulate_(g, slots, *pos, 2, group_counts=stats["group_counts"])
    with pytest.raises(ValueError, match="'sample_index'.*>= 0"):
        accumulate_(g, slots, *pos, 2, sample_index=torch.tensor([0, -1, 0]), group_counts=stats["group_counts"])
    for bad_g in (1, MAX_GROUPS + 1):
        with pytest.raises(ValueError, match="'group_counts'.*G = "):
            accumulate_(g, slots, *pos, 2, sample_index=idx, group_counts=torch.zeros(2, bad_g, dtype=torch.int64))
    with pytest.raises(ValueError, match="'group_mean2'"):
        accumulate_(g, slots, *pos, 2, sample_index=idx, group_counts=stats["group_counts"],
                    group_mean2=torch.zeros(2, 3, 1, 4, 4, dtype=torch.float64))   # G = 3, counts say 2
    with pytest.raises(ValueError, match="'nonfinite'"):
        accumulate_(g, slots, *pos, 2, nonfinite=torch.zeros(2, dtype=torch.int32))
    with pytest.raises(TypeError, match="'sumsq2'"):
        accumulate_(g, slots, *pos, 2, sumsq2=[0.0])
    assert pos[2].tolist() == [0, 0]  # nothing was accumulated by a rejected call


@pytest.mark.parametrize("G", [2, 3])
def test_accumulate_stats_opcheck(G):
    pos, stats = _state(3, 3, 4, 5, False, G=G)
    torch.library.opcheck(torch.ops.spectral_xai.accumulate_stats_.default,
                          (torch.randn(6, 3, 4, 5), torch.tensor([0, 0, 2, 2, 2, 1]), *pos, 2,
                           torch.tensor([4, 5, 0, 1, 2, 7]), *(stats[k] for k in STATS)))


def test_accumulate_stats_compiles_fullgraph():
    def step(g, rows, pos, stats):
        accumulate_(g * 1.0, rows[:, 0], *pos, 2, sample_index=rows[:, 1], **stats)
        return stats["sumsq2"].sum() + stats["group_mean1"].sum() + stats["sumcube2"].sum()

    g = torch.randn(6, 3, 4, 5)
    rows = torch.tensor([[0, 0], [0, 1], [1, 3], [1, 4], [1, 5], [2, 0]])
    eager, comp = _state(3, 3, 4, 5, True, G=3), _state(3, 3, 4, 5, True, G=3)
    want = step(g, rows, *eager)
    got = torch.compile(step, fullgraph=True)(g, rows, *comp)  # Inductor, functionalised mutation
    torch.testing.assert_close(got, want)
    for a, b in zip(eager[0] + list(eager[1].values()), comp[0] + list(comp[1].values())):
        assert torch.equal(a, b)


@pytest.mark.cuda
@pytest.mark.parametrize("reduce", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("G", [2, 5])
def test_cuda_statistics_equal_cpu(reduce, dtype, G):
    shape, rounds, grads = _case(reduce, dtype, seed=8)
    grads[2, 0, 1, 1], grads[9, 2, 3, 4] = float("inf"), float("nan")
    cpu, cpu_s = _state(*shape, reduce, G=G)
    gpu, gpu_s = _state(*shape, reduce, device="cuda", G=G)
    chunks = _chunks(rounds, 9)
    _run(rounds, grads, cpu, cpu_s, chunks=chunks)
    _run(rounds, grads, gpu, gpu_s, chunks=chunks)
    for a, b in zip(cpu + list(cpu_s.values()), gpu + list(gpu_s.values())):
        torch.testing.assert_close(b.cpu(), a, rtol=0, atol=0, equal_nan=True)
    rows = torch.cat(rounds).cuda()
    torch.library.opcheck(torch.ops.spectral_xai.accumulate_stats_.default,
                          (grads[:7].cuda(), rows[:7, 0], *gpu, 3, rows[:7, 1], *(gpu_s[k] for k in STATS)))
