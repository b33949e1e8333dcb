"""The named presets of the papers' settings, as docs/defaults.md documents them."""
import re
from pathlib import Path

import pytest
import torch

import spectral_xai as sx

from helpers import small_cnn, tiny_hf_vit


def test_presets(images):
    kw = sx.preset("imagenet-resnet50")
    assert kw["noise_scale"] == 0.3 and kw["sigmas"].tolist() == pytest.approx([i / 10 for i in range(11)])
    assert sx.preset("imagenet-vit-b16")["noise_scale"] == 0.5 and sx.preset("food101")["noise_scale"] == 0.4
    assert sx.preset("food101", "authors-code")["exponent"] == 1.0
    res = sx.spectral_lens(small_cnn(), images, n_samples=2, **sx.preset("imagenet-resnet50", "slt2"))
    torch.testing.assert_close(res.weights, res.sigmas**2.5 / (res.sigmas**2.5).sum())
    with pytest.raises(ValueError, match="'name'"):
        sx.preset("imagenet-vgg")


DEFAULTS_MD = Path(__file__).resolve().parents[1] / "docs" / "defaults.md"


def _documented_presets() -> dict:
    """{preset: (s, σ grid)} from the presets table of docs/defaults.md."""
    rows = re.findall(r'^\| `"([\w-]+)"` \| ([\d.]+) \| ([^|]+) \|', DEFAULTS_MD.read_text(), flags=re.M)
    return {name: (float(s), grid.strip()) for name, s, grid in rows}


def test_documented_presets_are_the_presets():
    documented = _documented_presets()
    assert set(documented) == set(sx.PRESETS)
    for name, (s, grid) in documented.items():
        kw = sx.preset(name)
        assert kw["noise_scale"] == s and grid == "0, 0.1, …, 1.0"
        assert kw["sigmas"].tolist() == pytest.approx([i / 10 for i in range(11)])


def test_vit_preset_on_a_transformers_vit():
    """sx.preset("imagenet-vit-b16") on a tiny ViTForImageClassification (random weights): finite (B, H, W)
    maps, the documented σ grid, and the noiseless σ = 0 slot equal to Σ_c g_c² from plain autograd."""
    pytest.importorskip("transformers")
    model = tiny_hf_vit(size=16)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    kw = sx.preset("imagenet-vit-b16")
    assert kw["noise_scale"] == _documented_presets()["imagenet-vit-b16"][0] == 0.5
    res = sx.spectral_lens(model, x, n_samples=2, return_per_sigma=True, **kw)
    assert res.sl2.shape == res.arglens.shape == (2, 16, 16) and res.per_sigma.shape == (2, 11, 16, 16)
    assert torch.isfinite(res.sl2).all() and torch.isfinite(res.per_sigma).all() and (res.sl2 > 0).any()
    torch.testing.assert_close(res.sigmas, kw["sigmas"].to(res.sigmas))
    xr = x.clone().requires_grad_(True)
    logp = torch.log_softmax(model(pixel_values=xr).logits, dim=1)
    logp.gather(1, logp.argmax(1, keepdim=True)).sum().backward()
    torch.testing.assert_close(res.per_sigma[:, 0], (xr.grad ** 2).sum(1), rtol=1e-4, atol=1e-10)
    assert res.n_samples[:, 0].tolist() == [1, 1] and res.n_samples[:, 1:].eq(2).all()
