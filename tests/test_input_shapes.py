"""Attributions are input-shaped when channels are not reduced, also for one-channel inputs (as Captum's are);
the Captum-shaped classes take Captum's NoiseTunnel argument names."""
import pytest
import torch

import spectral_xai as sx
from helpers import small_cnn


@pytest.fixture(scope="module")
def gray():
    return small_cnn(channels=1, size=8).eval(), torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))


def test_one_channel_maps_keep_the_channel_axis(gray):
    model, x = gray
    vg = sx.vanilla_grad(model, x, reduce_channels=False)
    assert vg.shape == x.shape
    torch.testing.assert_close(vg[:, 0], sx.vanilla_grad(model, x))          # reduced = the one channel
    st = sx.smooth_grad(model, x, 0.1, n_samples=4, reduce_channels=False, return_stats=True)
    assert st.map.shape == st.stderr.shape == st.halves[0].shape == x.shape
    assert sx.integrated_grad(model, x, n_steps=4, reduce_channels=False).shape == x.shape
    assert sx.integrated_grad(model, x, n_steps=4, times_input=False, reduce_channels=False).shape == x.shape
    for cls in (sx.attribute.VanillaGradient, sx.attribute.SmoothGradSquared, sx.attribute.IntegratedGradients):
        assert cls(model).attribute(x, target=1).shape == x.shape
        assert cls(model).attribute((x,), target=1)[0].shape == x.shape


def test_captum_noise_tunnel_names(gray):
    model, x = gray
    sg2 = sx.attribute.SmoothGradSquared(model)
    want = sg2.attribute(x, target=1, stdevs=0.2, nt_samples=4)
    got = sg2.attribute(x, target=1, nt_type="smoothgrad_sq", stdevs=0.2, nt_samples=4, nt_samples_batch_size=3)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-9)
    with pytest.raises(ValueError, match=r"argument 'nt_type'.*use SmoothGrad for 'smoothgrad'"):
        sg2.attribute(x, target=1, nt_type="smoothgrad")
    with pytest.raises(ValueError, match=r"argument 'nt_type'.*'vargrad' is not offered"):
        sx.attribute.SmoothGrad(model).attribute(x, target=1, nt_type="vargrad")
