"""Calls from several threads on one model (a web service, a thread pool) give the serial results and leave the
model as it was: model_scope holds a per-model re-entrant lock for its whole duration."""
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import nn

import spectral_xai as sx
from helpers import small_cnn

POOL = 6
CALLS = 12


def _bn_model() -> nn.Module:
    """A train-mode CNN with BatchNorm and Dropout (both change their output, and BN its state, in train mode)."""
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5),
                         nn.Flatten(), nn.Linear(4 * 8 * 8, 5)).train()


def _explain(model, x, k):
    """Two library calls of another kind per job, so that scopes of different calls interleave."""
    sg = sx.smooth_grad(model, x, 0.1, n_samples=4, seed=k)
    return sg, sx.vanilla_grad(model, x)


def _threaded_equals_serial(model, x):
    serial = [_explain(model, x, k % 3) for k in range(CALLS)]
    with ThreadPoolExecutor(POOL) as pool:
        threaded = list(pool.map(lambda k: _explain(model, x, k % 3), range(CALLS)))
    for (sg, vg), (sg_t, vg_t) in zip(serial, threaded):
        assert torch.equal(sg, sg_t) and torch.equal(vg, vg_t)


def test_eval_model_from_a_pool_of_threads():
    model = small_cnn(size=8).eval()
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    _threaded_equals_serial(model, x)
    assert all(p.requires_grad for p in model.parameters())          # not left frozen by an interleaved restore
    assert not model.training


def test_train_mode_batchnorm_model_from_a_pool_of_threads():
    model = _bn_model()
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    stats = {k: v.clone() for k, v in model.state_dict().items()}
    _threaded_equals_serial(model, x)
    assert model.training and all(m.training for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())
    for k, v in model.state_dict().items():                            # BN running stats untouched
        assert torch.equal(v, stats[k]), k
