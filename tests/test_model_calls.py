"""How the model is called: its state restored (training flags, requires_grad, .grad) even after an error, eval
mode used, targets and outputs, device checks, batches in a low-precision model's dtype."""
import types

import pytest
import torch
from torch import nn

import spectral_xai as sx

from helpers import batch_log, small_cnn


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


def test_mismatched_devices(device):
    """A CPU x with the model elsewhere: on the meta device (the cpu case) or on the GPU (the cuda case)."""
    model = small_cnn()
    x = torch.rand(2, 3, 12, 12)
    with pytest.raises(ValueError, match="'x'"):
        sx.vanilla_grad(model.to("meta" if device == "cpu" else device), x)


def test_low_precision_model_gets_batches_in_its_dtype(images):
    model = small_cnn()
    seen = batch_log(model, of=lambda x: x.dtype)
    ref = sx.smooth_grad(model, images, 0.1, n_samples=8, seed=1)
    seen.clear()
    low = sx.smooth_grad(model.to(torch.bfloat16), images, 0.1, n_samples=8, seed=1)
    assert set(seen) == {torch.bfloat16} and low.dtype == torch.float32
    a, b = ref.flatten(), low.flatten()
    ra, rb = a.argsort().argsort().double(), b.argsort().argsort().double()
    assert torch.corrcoef(torch.stack([ra, rb]))[0, 1] > 0.9  # Spearman of bf16 vs fp32 maps


class HFStyle(nn.Module):
    """A model returning an output object with .logits (as Hugging Face's), or a dict with "logits"."""

    def __init__(self, inner, as_dict=False):
        super().__init__()
        self.inner, self.as_dict = inner, as_dict

    def forward(self, x):
        logits = self.inner(x)
        if self.as_dict:
            return {"logits": logits, "hidden": None}
        return types.SimpleNamespace(logits=logits, loss=None)


@pytest.mark.parametrize("as_dict", [False, True])
def test_outputs_with_logits_are_used_everywhere(images, as_dict):
    model = small_cnn()
    wrapped = HFStyle(model, as_dict)
    torch.testing.assert_close(sx.vanilla_grad(wrapped, images), sx.vanilla_grad(model, images))
    torch.testing.assert_close(sx.smooth_grad(wrapped, images, 0.1, n_samples=2),
                               sx.smooth_grad(model, images, 0.1, n_samples=2))
    torch.testing.assert_close(sx.rise(wrapped, images, n_masks=4), sx.rise(model, images, n_masks=4))
    maps = sx.vanilla_grad(model, images)
    a = sx.metrics.deletion_insertion(wrapped, images, maps)["deletion_auc"]
    torch.testing.assert_close(a, sx.metrics.deletion_insertion(model, images, maps)["deletion_auc"])
    with pytest.raises(TypeError, match="argument 'model'.*'logits' tensor"):
        sx.vanilla_grad(lambda x: (model(x),), images)


@pytest.mark.parametrize("call", [
    lambda m, x, t: sx.rise(m, x, t, n_masks=2),
    lambda m, x, t: sx.occlusion(m, x, t),
    lambda m, x, t: sx.metrics.deletion_insertion(m, x, torch.rand(x.shape[0], *x.shape[2:]), t),
    lambda m, x, t: sx.smooth_grad(m, x, 0.1, t, n_samples=1),
])
def test_targets_beyond_the_classes_are_named_on_every_path(images, call):
    with pytest.raises(ValueError, match="argument 'target': class 5 is out of range for a model with 5 outputs"):
        call(small_cnn(), images, 5)
    for bad in ("1", 1.5):
        with pytest.raises(TypeError, match="argument 'target'"):
            call(small_cnn(), images, bad)


def test_string_sigmas_are_named(images):
    for bad in ("0.1", ["0.1"], [True]):
        with pytest.raises(TypeError, match="argument 'sigma'"):
            sx.spectral_lens(small_cnn(), images, bad, n_samples=1)


def test_inference_mode_is_named_not_blamed_on_the_model(images):
    model = small_cnn()
    with torch.inference_mode(), pytest.raises(ValueError, match="inference_mode"):
        sx.vanilla_grad(model, images)
    with torch.no_grad():                                 # no_grad around a call is fine
        assert sx.vanilla_grad(model, images).shape == images[:, 0].shape
