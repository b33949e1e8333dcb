"""The named presets of the papers' settings."""
import pytest
import torch

import spectral_xai as sx

from helpers import small_cnn


def test_presets(images):
    kw = sx.preset("imagenet-resnet50")
    assert kw["noise_scale"] == 0.3 and kw["sigmas"].tolist() == pytest.approx([i / 10 for i in range(11)])
    assert sx.preset("imagenet-vit-b16")["noise_scale"] == 0.5 and sx.preset("food101")["noise_scale"] == 0.4
    assert sx.preset("food101", "authors-code")["exponent"] == 1.0
    res = sx.spectral_lens(small_cnn(), images, n_samples=2, **sx.preset("imagenet-resnet50", "slt2"))
    torch.testing.assert_close(res.weights, res.sigmas**2.5 / (res.sigmas**2.5).sum())
    with pytest.raises(ValueError, match="'name'"):
        sx.preset("imagenet-vgg")
