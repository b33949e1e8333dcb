"""A model whose output or gradient is NaN/Inf raises a ValueError naming the model, the images and the σ."""
import pytest
import torch
from torch import nn

import spectral_xai as sx


class BlowsUp(nn.Module):
    """logits (B, 2): finite for inputs with mean < 5, Inf (output) or NaN-gradient (sqrt at 0) otherwise."""

    def __init__(self, where: str):
        super().__init__()
        self.where = where
        self.lin = nn.Linear(9, 2).double()

    def forward(self, x):
        out = self.lin(x.flatten(1))
        big = x.flatten(1).mean(1, keepdim=True) > 5
        if self.where == "output":
            return torch.where(big, torch.full_like(out, float("inf")), out)
        # finite logits; for the big rows only, the gradient of sqrt(|x - x|) at 0 is NaN
        idx = big.view(-1).nonzero().view(-1)
        d = (x[idx] - x[idx].detach()).abs().sqrt().flatten(1).sum(1, keepdim=True)
        return out + torch.zeros_like(out[:, :1]).index_add(0, idx, d)


def _x():
    x = torch.randn(4, 1, 3, 3, dtype=torch.float64)
    x[1] += 50
    x[3] += 50
    return x


@pytest.mark.parametrize("where", ["output", "gradient"])
@pytest.mark.parametrize("method", ["vanilla", "smooth", "smooth_target_error", "integrated", "lens"])
def test_nonfinite_model_raises_naming_the_images(where, method):
    model, x = BlowsUp(where), _x()
    calls = {
        "vanilla": lambda: sx.vanilla_grad(model, x, target=0),
        "smooth": lambda: sx.smooth_grad(model, x, 0.3, target=0, n_samples=4, batch_size=3),
        "smooth_target_error": lambda: sx.smooth_grad(model, x, 0.3, target=0, target_error=0.1),
        "integrated": lambda: sx.integrated_grad(model, x, target=0, n_steps=2),
        "lens": lambda: sx.spectral_lens(model, x, [0.0, 0.01], target=0, n_samples=2),
    }
    with pytest.raises(ValueError, match=r"argument 'model'.*BlowsUp.*image\(s\) \[1, 3\]") as info:
        calls[method]()
    if method in ("smooth", "smooth_target_error"):
        assert "at sigma 0.3" in str(info.value)


def test_only_the_bad_sigma_is_named():
    class BadAtLargeNoise(nn.Module):
        def forward(self, x):
            f = x.flatten(1).sum(1, keepdim=True)
            spread = (x - x.mean()).abs().amax()
            return torch.cat([f, f * 0], 1) / (spread < 20).to(x.dtype)   # Inf logits under large noise

    x = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"image\(s\) \[0\] at sigma 100 \(") as info:
        sx.smooth_grad(BadAtLargeNoise(), x, 100.0, target=0, n_samples=2)
    assert "sigma 0.1" not in str(info.value)
    sx.smooth_grad(BadAtLargeNoise(), x, 0.1, target=0, n_samples=2)       # finite: no error


@pytest.mark.parametrize("method", ["rise", "occlusion", "deletion", "noise_cutoff", "optimal_sigma", "targets"])
def test_nonfinite_outputs_of_forward_only_paths_raise_naming_the_model(method):
    """Deletion/insertion, RISE, occlusion, the noise cutoff and the clean arg-max run without gradients: their
    forward passes are checked too (before: NaN AUCs and maps, an IndexError from noise_cutoff)."""
    model, x = BlowsUp("output"), _x()
    calls = {
        "rise": lambda: sx.rise(model, x, 0, n_masks=2),
        "occlusion": lambda: sx.occlusion(model, x, 0),
        "deletion": lambda: sx.metrics.deletion_insertion(model, x, torch.rand(4, 3, 3), 0),
        "noise_cutoff": lambda: sx.noise_cutoff(model, x, [0.0, 0.5], n_samples=2),
        "optimal_sigma": lambda: sx.optimal_sigma(model, x, [0.2, 0.5], n_samples=2),
        "targets": lambda: sx.vanilla_grad(model, x),
    }
    with pytest.raises(ValueError, match=r"argument 'model': its output is NaN/Inf \(BlowsUp\)"):
        calls[method]()
