"""The method registry, and Quantus consuming our methods through explain_func."""
import warnings

import numpy as np
import pytest
import torch

import spectral_xai as sx

from helpers import small_cnn


def test_every_method_gives_a_map(images):
    model = small_cnn()
    fast = {"sg": {"n_samples": 2}, "sg2": {"n_samples": 2}, "ig": {"n_steps": 2}, "ig2": {"n_steps": 2},
            "xig": {"n_steps": 2}, "xig2": {"n_steps": 2}, "sl2": {"n_samples": 1}, "al": {"n_samples": 1},
            "sg2opt": {"n_samples": 1}, "rise": {"n_masks": 16}, "occlusion": {"window": 4}}
    for name in sx.METHODS:
        m = sx.explain(name, model, images, **fast.get(name, {}))
        assert m.shape == (4, 12, 12) and bool(torch.isfinite(m).all()), name
    torch.testing.assert_close(sx.explain("sg2", model, images, n_samples=3, seed=1),
                               sx.smooth_grad(model, images, 0.15, n_samples=3, seed=1))
    with pytest.raises(ValueError, match="'method'"):
        sx.explain("gradcam", model, images)


def test_quantus_metric_consumes_our_explain_func(images):
    import quantus

    model = small_cnn().eval()
    x = images.numpy()
    y = model(images).argmax(1).numpy()
    a = sx.quantus_explain_func(model, x, y, method="sg2", n_samples=4)
    assert a.shape == (4, 1, 12, 12) and a.dtype == np.float32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metric = quantus.PixelFlipping(features_in_step=12, perturb_baseline="black", disable_warnings=True,
                                       display_progressbar=False)
        scores = metric(model=model, x_batch=x, y_batch=y, a_batch=None, explain_func=sx.quantus_explain_func,
                        explain_func_kwargs={"method": "sg2", "n_samples": 4}, device="cpu")
    assert len(scores) == 4 and all(np.all(np.isfinite(s)) for s in scores)
