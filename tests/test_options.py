"""The options objects as front-end arguments: ``sampling=SamplingOptions(...)`` and
``execution=ExecutionOptions(...)`` give the same maps as the flat keywords (the flat call is the truth),
a setting given both ways must agree, and a field a front-end has no keyword for is refused."""
import inspect

import pytest
import torch

import spectral_xai as sx
from helpers import batch_log, small_cnn
from spectral_xai.options import DELETION_FRACTIONS, MIXINGS, OUTPUTS, one_of

S, E = sx.SamplingOptions, sx.ExecutionOptions
SIGMAS = [0.0, 0.3, 0.6]


@pytest.mark.parametrize("call", [
    lambda m, x, **k: sx.smooth_grad(m, x, 0.2, **k),
    lambda m, x, **k: sx.spectral_lens(m, x, SIGMAS, **k).sl2,
    lambda m, x, **k: sx.optimal_sigma(m, x, SIGMAS, level="pixel", **k),
    lambda m, x, **k: sx.sg2_opt(m, x, SIGMAS, **k)[0],
    lambda m, x, **k: sx.noise_cutoff(m, x, [0.0, 0.5, 1.0], **k).per_image,
    lambda m, x, **k: sx.explain("sg2", m, x, **k),
], ids=["smooth_grad", "spectral_lens", "optimal_sigma", "sg2_opt", "noise_cutoff", "explain"])
def test_objects_equal_flat_keywords(call, cnn, images):
    flat = call(cnn, images, n_samples=4, seed=5, image_ids=[7, 1, 2, 9], batch_size=3)
    objs = call(cnn, images, sampling=S(n_samples=4, seed=5, image_ids=[7, 1, 2, 9]), execution=E(batch_size=3))
    mixed = call(cnn, images, seed=5, sampling=S(n_samples=4, seed=5, image_ids=[7, 1, 2, 9]), batch_size=3)
    assert torch.equal(objs, flat) and torch.equal(mixed, flat)
    assert not torch.equal(call(cnn, images, sampling=S(n_samples=4, seed=6)), call(cnn, images, n_samples=4, seed=5))


def test_noise_design_and_stopping_through_the_object(cnn, images):
    flat = sx.smooth_grad(cnn, images, 0.3, n_samples=5, sampling="lhs", seed=2)
    assert torch.equal(sx.smooth_grad(cnn, images, 0.3, sampling=S(n_samples=5, noise_design="lhs", seed=2)), flat)
    kw = dict(n_samples=64, target_error=0.5, min_samples=4, check_every=4, seed=1)
    st_flat = sx.smooth_grad(cnn, images, 0.3, return_stats=True, **kw)
    st_obj = sx.smooth_grad(cnn, images, 0.3, return_stats=True, sampling=S(**kw))
    assert torch.equal(st_obj.map, st_flat.map) and torch.equal(st_obj.n_samples, st_flat.n_samples)


@pytest.mark.parametrize("call", [
    lambda m, x, **k: sx.vanilla_grad(m, x, **k),
    lambda m, x, **k: sx.integrated_grad(m, x, n_steps=4, **k),
    lambda m, x, **k: sx.occlusion(m, x, window=4, **k),
    lambda m, x, **k: sx.rise(m, x, n_masks=8, **k),
], ids=["vanilla_grad", "integrated_grad", "occlusion", "rise"])
def test_execution_object_on_deterministic_and_forward_only(call, cnn, images):
    assert torch.equal(call(cnn, images, execution=E(batch_size=2)), call(cnn, images, batch_size=2))


@pytest.mark.parametrize("call", [
    lambda m, x, **k: sx.smooth_grad(m, x, 0.1, n_samples=8, **k),
    lambda m, x, **k: sx.spectral_lens(m, x, [0.0, 0.1], n_samples=4, **k).sl2,
    lambda m, x, **k: sx.integrated_grad(m, x, n_steps=8, **k),
], ids=["smooth_grad", "spectral_lens", "integrated_grad"])
def test_memory_budget_reaches_the_engine(call, images):
    model = small_cnn()
    rows = batch_log(model)
    small = call(model, images, execution=E(memory_budget=60_000))
    small_rows = rows[1:]                       # rows[0]: the one-row probe of the hooks
    rows.clear()
    big = call(model, images)
    assert max(small_rows) < max(rows[1:]) and sum(small_rows) == sum(rows[1:])
    torch.testing.assert_close(small, big, rtol=1e-5, atol=1e-7)


def test_conflicts_and_unsupported_fields_are_refused(cnn, images):
    with pytest.raises(ValueError, match="'n_samples'.*given twice"):
        sx.smooth_grad(cnn, images, 0.2, n_samples=8, sampling=S(n_samples=4))
    with pytest.raises(ValueError, match="'batch_size'.*given twice"):
        sx.spectral_lens(cnn, images, SIGMAS, batch_size=8, execution=E(batch_size=4))
    with pytest.raises(ValueError, match="'seed'.*given twice"):
        sx.optimal_sigma(cnn, images, SIGMAS, seed=1, sampling=S(seed=2))
    with pytest.raises(ValueError, match="'sampling'.*integrated_grad has no setting 'n_samples'"):
        sx.integrated_grad(cnn, images, sampling=S(n_samples=4))
    with pytest.raises(ValueError, match="'sampling'.*vanilla_grad has no setting 'noise_design'"):
        sx.vanilla_grad(cnn, images, sampling=S(noise_design="lhs"))
    with pytest.raises(ValueError, match="'execution'.*occlusion has no setting 'memory_budget'"):
        sx.occlusion(cnn, images, execution=E(memory_budget=2**20))
    with pytest.raises(TypeError, match="'execution'"):
        sx.smooth_grad(cnn, images, 0.2, execution={"batch_size": 2})
    with pytest.raises(TypeError, match="'sampling'"):
        sx.vanilla_grad(cnn, images, sampling="lhs")
    with pytest.raises(ValueError, match="'n_samples'"):
        sx.smooth_grad(cnn, images, 0.2, sampling=S(n_samples=0))   # the object's fields are checked as usual


def test_signatures_show_the_objects():
    for fn in (sx.vanilla_grad, sx.smooth_grad, sx.integrated_grad, sx.spectral_lens, sx.optimal_sigma,
               sx.sg2_opt, sx.noise_cutoff, sx.rise, sx.occlusion):
        params = inspect.signature(fn).parameters
        assert "execution" in params and ("sampling" in params or "sampling" in str(inspect.signature(fn)))
    assert inspect.signature(sx.smooth_grad).parameters["n_samples"].default == 32


def test_conventions_in_one_place():
    assert MIXINGS == ("additive", "convex", "damping") and sx.ops.MIXINGS is MIXINGS
    assert one_of(OUTPUTS) == "'log_softmax', 'logit' or 'prob'"
    assert DELETION_FRACTIONS == tuple(round(0.05 * i, 10) for i in range(21))
