"""Engine contracts: determinism whatever the batching, adaptive stopping, one pass over all σ, noiseless slots,
sample offsets, row planning against a loop, the memory budget, validation."""
import pytest
import torch
from torch import nn

import spectral_xai as sx
from spectral_xai.engine import plan_rows

from helpers import batch_log, small_cnn


def test_same_seed_same_maps_whatever_the_batch_size(cnn, images):
    a = sx.smooth_grad(cnn, images, 0.2, n_samples=10, batch_size=3, seed=7)
    b = sx.smooth_grad(cnn, images, 0.2, n_samples=10, batch_size=40, seed=7)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-9)
    c = sx.smooth_grad(cnn, images, 0.2, n_samples=10, seed=8)
    assert (a - c).abs().max() > 1e-3 * a.abs().max()


def test_image_alone_with_its_id_equals_in_batch(cnn, images):
    batch = sx.smooth_grad(cnn, images, 0.2, n_samples=6, seed=1, image_ids=[10, 11, 12, 13])
    alone = sx.smooth_grad(cnn, images[2:3], 0.2, n_samples=6, seed=1, image_ids=[12])
    torch.testing.assert_close(alone[0], batch[2], rtol=1e-5, atol=1e-9)
    other = sx.smooth_grad(cnn, images[2:3], 0.2, n_samples=6, seed=1, image_ids=[13])
    assert not torch.allclose(other[0], batch[2])


def test_adaptive_stopping_is_a_prefix_of_the_full_run(cnn, images):
    m, used = sx.smooth_grad(cnn, images, 0.05, n_samples=64, tol=0.2, check_every=4, seed=3,
                             return_n_samples=True)
    assert used.shape == (4,) and bool((used % 4 == 0).all()) and bool((used <= 64).all())
    assert int(used.min()) < 64
    for b in range(4):
        short = sx.smooth_grad(cnn, images[b:b + 1], 0.05, n_samples=int(used[b]), seed=3, image_ids=[b])
        torch.testing.assert_close(m[b], short[0], rtol=1e-5, atol=1e-9)
    _, used0 = sx.smooth_grad(cnn, images, 0.05, n_samples=16, tol=0.0, check_every=4, return_n_samples=True)
    assert used0.tolist() == [16] * 4


def test_channels_last_and_reduce_channels(cnn, images):
    a = sx.smooth_grad(cnn, images, 0.1, n_samples=4, reduce_channels=False)
    assert a.shape == images.shape and a.dtype == torch.float32
    b = sx.smooth_grad(cnn, images.contiguous(memory_format=torch.channels_last), 0.1, n_samples=4)
    torch.testing.assert_close(a.sum(1), b, rtol=1e-4, atol=1e-8)


def test_estimate_all_sigmas_in_one_pass_count_model_calls(images):
    model = small_cnn()
    calls = batch_log(model)
    est = sx.estimate(model, images, sigmas=[0.0, 0.1, 0.2], mixing="convex", n_samples=5, powers=(1, 2),
                      batch_size=1000)
    # clean pass for targets + one batch of every sample (sigma = 0 is noiseless: one sample is exact)
    assert sum(calls) == 4 + 4 * (1 + 5 + 5)
    assert est.mean1.shape == (4, 3, 1, 12, 12) and est.n_samples.tolist() == [[1, 5, 5]] * 4


def test_noiseless_slots_are_sampled_once_and_exactly(cnn, images):
    est = sx.estimate(cnn, images, sigmas=[0.0, 0.2], mixing="convex", n_samples=6, powers=(1, 2), seed=2,
                      reduce_channels=False)
    vg = sx.vanilla_grad(cnn, images, reduce_channels=False).double()
    # float32 model: the noiseless slot's one sample runs in a batch with the noisy ones, VG alone, so the
    # convolutions may round differently (seen: 1e-9 on values up to ~1e-3); equal to float32 precision
    torch.testing.assert_close(est.mean1[:, 0], vg, rtol=1e-5, atol=1e-6 * float(vg.abs().max()))
    zero_scale = sx.estimate(cnn, images, sigmas=[0.3], mixing="additive", n_samples=6, noise_scale=0.0)
    assert zero_scale.n_samples.tolist() == [[1]] * 4
    _, used = sx.smooth_grad(cnn, images, 0.0, n_samples=16, tol=0.1, check_every=4, return_n_samples=True)
    assert used.tolist() == [1] * 4


class _Detached(nn.Module):
    def forward(self, x):
        return torch.ones(x.shape[0], 3) * x.detach().mean()


@pytest.mark.parametrize("call, arg", [
    (lambda m, x: sx.vanilla_grad(m, x[0]), "x"),
    (lambda m, x: sx.vanilla_grad(m, x.long()), "x"),
    (lambda m, x: sx.vanilla_grad(m, x * float("nan")), "x"),
    (lambda m, x: sx.vanilla_grad(m, x[:, :, :0]), "x"),
    (lambda m, x: sx.smooth_grad(m, x, -0.1), "sigma"),
    (lambda m, x: sx.smooth_grad(m, x, 1.5, mixing="convex"), "sigma"),
    (lambda m, x: sx.estimate(m, x, sigmas=1.2, mixing="damping", n_samples=1), "sigma"),
    (lambda m, x: sx.vanilla_grad(m, x[:0]), "x"),
    (lambda m, x: sx.vanilla_grad(m, x, target=5), "target"),
    (lambda m, x: sx.vanilla_grad(m, x, target=-1), "target"),
    (lambda m, x: sx.vanilla_grad(m, x, target=[0, 1]), "target"),
    (lambda m, x: sx.vanilla_grad(lambda t: t.flatten(1)[:, :, None], x), "model"),
    (lambda m, x: sx.vanilla_grad(_Detached(), x), "model"),
    (lambda m, x: sx.smooth_grad(m, x, 0.1, n_samples=0), "n_samples"),
    (lambda m, x: sx.smooth_grad(m, x, 0.1, seed=-1), "seed"),
    (lambda m, x: sx.smooth_grad(m, x, 0.1, image_ids=[0, 1]), "image_ids"),
    (lambda m, x: sx.vanilla_grad(m, x, output="softmax"), "output"),
    (lambda m, x: sx.smooth_grad(m, x, 0.1, mixing="multiplicative"), "mixing"),
])
def test_bad_input_names_the_argument(cnn, images, call, arg):
    with pytest.raises((ValueError, TypeError), match=f"'{arg}'"):
        call(cnn, images)


def test_auto_batch_size_follows_the_memory_budget(images):
    model = small_cnn()
    calls = batch_log(model)
    small = sx.estimate(model, images, sigmas=0.1, mixing="additive", n_samples=8, target=0,
                        memory_budget=60_000)
    sizes_small = [c for c in calls[1:]]  # calls[0]: the one-row probe of the hooks
    calls.clear()
    big = sx.estimate(model, images, sigmas=0.1, mixing="additive", n_samples=8, target=0)
    sizes_big = [c for c in calls[1:]]
    assert max(sizes_small) < max(sizes_big) and sum(sizes_small) == sum(sizes_big) == 32
    torch.testing.assert_close(small.mean2, big.mean2, rtol=1e-5, atol=1e-12)
    assert sx.model_calls.auto_batch_size(model, images, 10**12) == sx.model_calls.MAX_AUTO_ROWS
    assert sx.model_calls.auto_batch_size(model, images, 1) == 1


def test_maps_do_not_depend_on_the_thread_count(cnn, images):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = sx.smooth_grad(cnn, images, 0.2, n_samples=6, seed=4)
        torch.set_num_threads(max(2, threads))
        many = sx.smooth_grad(cnn, images, 0.2, n_samples=6, seed=4)
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(one, many, rtol=1e-5, atol=1e-9)


def test_sample_offset_continues_the_noise_streams(cnn, images):
    kw = dict(sigmas=[0.0, 0.2, 0.5], mixing="convex", powers=(2,), noise_scale=0.5, seed=4, batch_size=7)
    m4 = sx.estimate(cnn, images, n_samples=4, **kw).mean2
    m1 = sx.estimate(cnn, images, n_samples=1, **kw).mean2
    m_rest = sx.estimate(cnn, images, n_samples=3, sample_offset=1, **kw).mean2
    noisy = torch.tensor([False, True, True]).view(1, 3, 1, 1, 1)
    torch.testing.assert_close(torch.where(noisy, (m1 + 3 * m_rest) / 4, m1), m4, rtol=1e-5, atol=1e-9)
    counts = torch.tensor([[1, 2, 3]] * 4)
    est = sx.estimate(cnn, images, n_samples=1, slot_samples=counts, **kw)
    assert est.n_samples.tolist() == [[1, 2, 3]] * 4


def rows_by_loop(active, counts, per_round, limit, S):
    out = []
    for p in active.tolist():
        cap = int(limit[p]) if isinstance(limit, torch.Tensor) else limit
        for i in range(int(counts[p]), min(int(counts[p]) + per_round, cap)):
            out.append((p // S, p % S, i))
    return torch.tensor(out, dtype=torch.int64).reshape(-1, 3)


def test_plan_rows_matches_a_loop_over_slots():
    g = torch.Generator().manual_seed(0)
    for trial in range(200):
        P = int(torch.randint(1, 30, (1,), generator=g))
        S = int(torch.randint(1, 5, (1,), generator=g))
        limits = torch.randint(1, 20, (P,), generator=g)
        counts = torch.minimum(torch.randint(0, 20, (P,), generator=g), limits)  # some slots already full
        k = int(torch.randint(0, P + 1, (1,), generator=g))
        active = torch.randperm(P, generator=g)[:k].sort().values
        per_round = int(torch.randint(1, 10, (1,), generator=g))
        limit = limits if trial % 2 else int(limits.max())
        got = plan_rows(active, counts, per_round, limit, S)
        assert got.dtype == torch.int64
        assert torch.equal(got, rows_by_loop(active, counts, per_round, limit, S))
