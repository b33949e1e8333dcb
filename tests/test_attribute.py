"""The Captum-shaped front-end agrees with Captum itself where the methods are deterministic."""
import pytest
import torch

from spectral_xai import attribute as A

from helpers import small_cnn

from captum import attr as captum_attr  # noqa: E402  (a test requirement)


@pytest.fixture
def setup():
    model = small_cnn().eval()
    x = torch.rand(3, 3, 12, 12, generator=torch.Generator().manual_seed(5))
    return model, x, torch.tensor([0, 2, 4])


def test_vanilla_matches_captum_saliency(setup):
    model, x, t = setup
    ours = A.VanillaGradient(model).attribute(x, target=t)
    theirs = captum_attr.Saliency(model).attribute(x, target=t, abs=False)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-7)


def test_integrated_gradients_matches_captum(setup):
    model, x, t = setup
    base = torch.rand_like(x)
    (ours,) = A.IntegratedGradients(model).attribute((x,), target=t, baselines=base, n_steps=16)
    theirs = captum_attr.IntegratedGradients(model).attribute(x, baselines=base, target=t, n_steps=16,
                                                              method="gausslegendre")
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)


def test_smoothgrad_squared_shapes_and_aliases(setup):
    model, x, t = setup
    a = A.SmoothGradSquared(model).attribute(x, target=t, stdevs=0.1, nt_samples=8, seed=2)
    b = A.SmoothGradSquared(model).attribute(x, target=t, sigma=0.1, n_samples=8, seed=2)
    assert a.shape == x.shape and bool((a >= 0).all())
    torch.testing.assert_close(a, b)
    with pytest.raises(TypeError, match="'inputs'"):
        A.SmoothGrad(model).attribute((x, x), target=t)


def test_generic_explainer_per_method(setup):
    import spectral_xai as sx

    model, x, t = setup
    (sl2,) = A.Explainer(model, "sl2").attribute((x,), target=t, n_samples=2, seed=1)
    torch.testing.assert_close(sl2, sx.spectral_lens(model, x, target=t, n_samples=2, seed=1,
                                                     **sx.preset("imagenet-resnet50")).sl2)
    assert A.Explainer(model, "occlusion").attribute(x, target=t, window=4).shape == (3, 12, 12)
    with pytest.raises(ValueError, match="'method'"):
        A.Explainer(model, "lime")
