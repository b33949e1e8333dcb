"""Engine contracts: determinism, model state, IG completeness, adaptive stopping, validation."""
import pytest
import torch
from torch import nn

import spectral_xai as sx

from conftest import Quadratic, small_cnn


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


def test_model_state_is_restored(images):
    model = small_cnn()
    model.train()
    model[0].weight.requires_grad_(False)
    model[-1].bias.grad = torch.ones_like(model[-1].bias)
    flags = [p.requires_grad for p in model.parameters()]
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    for fn in (lambda: sx.vanilla_grad(model, images), lambda: sx.smooth_grad(model, images, 0.1, n_samples=4),
               lambda: sx.integrated_grad(model, images, n_steps=4)):
        fn()
        assert all(m.training for m in model.modules())
        assert [p.requires_grad for p in model.parameters()] == flags
        for p, g in zip(model.parameters(), grads):
            assert (p.grad is None and g is None) or torch.equal(p.grad, g)
    model.eval()
    sx.vanilla_grad(model, images)
    assert not any(m.training for m in model.modules())


def test_model_state_restored_after_an_error(images):
    model = small_cnn()
    model.train()
    with pytest.raises(ValueError):
        sx.smooth_grad(model, images, -1.0)
    with pytest.raises(ValueError):
        sx.vanilla_grad(model, images, target=99)
    assert all(m.training for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())


def test_eval_mode_is_used(images):
    model = small_cnn()
    model.train()  # dropout active in train mode would make VG random
    a = sx.vanilla_grad(model, images)
    b = sx.vanilla_grad(model, images)
    assert torch.equal(a, b)


def test_xig_completeness_on_quadratic():
    x = torch.rand(3, 2, 5, 4, dtype=torch.float64)
    base = torch.rand(1, 2, 5, 4, dtype=torch.float64)
    model = Quadratic((2, 5, 4))
    xig = sx.integrated_grad(model, x, target=0, output="logit", baseline=base, n_steps=3)
    assert xig.dtype == torch.float64
    with torch.no_grad():
        want = model(x)[:, 0] - model(base.expand_as(x))[:, 0]
    torch.testing.assert_close(xig.sum((1, 2)), want, rtol=1e-10, atol=1e-10)
    # IG (no input factor) = gradient at the path midpoint for a quadratic
    ig = sx.integrated_grad(model, x, target=0, output="logit", baseline=base, n_steps=2, times_input=False,
                            reduce_channels=False)
    mid = (x + base) / 2
    torch.testing.assert_close(ig, 2 * model.q.detach() * mid + model.l.detach(), rtol=1e-10, atol=1e-10)
    ig2 = sx.integrated_grad(model, x, target=0, output="logit", baseline=base, n_steps=4, times_input=False,
                             squared=True, reduce_channels=False)
    # int_0^1 (g_b + a (g_x - g_b))^2 da = (g_b^2 + g_b g_x + g_x^2) / 3
    gx = 2 * model.q.detach() * x + model.l.detach()
    gb = 2 * model.q.detach() * base + model.l.detach()
    torch.testing.assert_close(ig2, (gb * gb + gb * gx + gx * gx) / 3, rtol=1e-10, atol=1e-10)


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


def test_targets_and_outputs(cnn, images):
    with torch.no_grad():
        logits = cnn.eval()(images)
    top = logits.argmax(1)
    torch.testing.assert_close(sx.vanilla_grad(cnn, images), sx.vanilla_grad(cnn, images, target=top))
    torch.testing.assert_close(sx.vanilla_grad(cnn, images, target=[1, 2, 3, 4]),
                               sx.vanilla_grad(cnn, images, target=torch.tensor([1, 2, 3, 4])))
    x = images[:1].clone().requires_grad_(True)
    p = torch.softmax(cnn(x), 1)[0, 2]
    (gp,) = torch.autograd.grad(p, x)
    torch.testing.assert_close(sx.vanilla_grad(cnn, images[:1], target=2, output="prob", reduce_channels=False),
                               gp, rtol=1e-5, atol=1e-8)
    a = sx.vanilla_grad(cnn, images, target=2, output="logit")
    b = sx.vanilla_grad(cnn, images, target=2, output="log_softmax")
    assert not torch.allclose(a, b)


def test_channels_last_and_reduce_channels(cnn, images):
    a = sx.smooth_grad(cnn, images, 0.1, n_samples=4, reduce_channels=False)
    assert a.shape == images.shape and a.dtype == torch.float32
    b = sx.smooth_grad(cnn, images.contiguous(memory_format=torch.channels_last), 0.1, n_samples=4)
    torch.testing.assert_close(a.sum(1), b, rtol=1e-4, atol=1e-8)


def test_estimate_all_sigmas_in_one_pass_count_model_calls(images):
    model = small_cnn()
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    est = sx.estimate(model, images, sigmas=[0.0, 0.1, 0.2], mixing="convex", n_samples=5, powers=(1, 2),
                      batch_size=1000)
    # clean pass for targets + one batch of every sample (sigma = 0 is noiseless: one sample is exact)
    assert sum(calls) == 4 + 4 * (1 + 5 + 5)
    assert est.mean1.shape == (4, 3, 1, 12, 12) and est.n_samples.tolist() == [[1, 5, 5]] * 4


def test_noiseless_slots_are_sampled_once_and_exactly(cnn, images):
    est = sx.estimate(cnn, images, sigmas=[0.0, 0.2], mixing="convex", n_samples=6, powers=(1, 2), seed=2,
                      reduce_channels=False)
    vg = sx.vanilla_grad(cnn, images, reduce_channels=False).double()
    torch.testing.assert_close(est.mean1[:, 0], vg, rtol=1e-6, atol=1e-12)
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


def test_mismatched_devices():
    model = small_cnn()
    x = torch.rand(2, 3, 12, 12)
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="'x'"):
            sx.vanilla_grad(model.cuda(), x)
    with pytest.raises(ValueError, match="'x'"):
        sx.vanilla_grad(model.to("meta"), x)


def test_auto_batch_size_follows_the_memory_budget(images):
    model = small_cnn()
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    small = sx.estimate(model, images, sigmas=0.1, mixing="additive", n_samples=8, target=0,
                        memory_budget=60_000)
    sizes_small = [c for c in calls[1:]]  # calls[0]: the one-row probe of the hooks
    calls.clear()
    big = sx.estimate(model, images, sigmas=0.1, mixing="additive", n_samples=8, target=0)
    sizes_big = [c for c in calls[1:]]
    assert max(sizes_small) < max(sizes_big) and sum(sizes_small) == sum(sizes_big) == 32
    torch.testing.assert_close(small.mean2, big.mean2, rtol=1e-5, atol=1e-12)
    assert sx.models.auto_batch_size(model, images, 10**12) == sx.models.MAX_AUTO_ROWS
    assert sx.models.auto_batch_size(model, images, 1) == 1


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


def test_low_precision_model_gets_batches_in_its_dtype(images):
    model = small_cnn()
    seen = []
    model.register_forward_hook(lambda m, i, o: seen.append(i[0].dtype))
    ref = sx.smooth_grad(model, images, 0.1, n_samples=8, seed=1)
    seen.clear()
    low = sx.smooth_grad(model.to(torch.bfloat16), images, 0.1, n_samples=8, seed=1)
    assert set(seen) == {torch.bfloat16} and low.dtype == torch.float32
    a, b = ref.flatten(), low.flatten()
    ra, rb = a.argsort().argsort().double(), b.argsort().argsort().double()
    assert torch.corrcoef(torch.stack([ra, rb]))[0, 1] > 0.9  # Spearman of bf16 vs fp32 maps
