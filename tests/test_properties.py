"""Property-based tests of the public functions (hypothesis): for drawn shapes, dtypes, layouts, σ, targets and
hostile values, every call either returns finite results of the documented shape, dtype and device, or raises
a ValueError / TypeError whose message names an argument ("argument '<name>'")."""
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import spectral_xai as sx

K = 3
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
HOSTILE_NUMBERS = st.sampled_from([math.nan, math.inf, -math.inf, -1.0, -1e-9, 1e300, 0.0])


def tiny_model(channels: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.Softplus(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(16, K))


@st.composite
def images(draw, hostile=True):
    """(B, C, H, W) float tensors in several dtypes and layouts, some with NaN/Inf."""
    b, c = draw(st.integers(1, 3)), draw(st.sampled_from([1, 3]))
    h, w = draw(st.integers(3, 9)), draw(st.integers(3, 9))
    dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.float16]))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    x = torch.rand(b, c, h, w, generator=g, dtype=torch.float64).to(dtype)
    layout = draw(st.sampled_from(["contiguous", "channels_last", "strided"]))
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "strided":
        x = torch.cat([x, x], dim=3)[..., ::2]
    if hostile and draw(st.booleans()) and draw(st.booleans()):
        x = x.clone()
        x[0, 0, 0, 0] = draw(st.sampled_from([math.nan, math.inf]))
    return x


TARGETS = st.one_of(st.none(), st.integers(-2, K + 1), st.sampled_from(["1", 1.5, True, [0], [0, 1, 2, 0]]))
SIGMAS = st.one_of(st.floats(-0.5, 1.5, allow_nan=False), HOSTILE_NUMBERS, st.sampled_from(["0.1", [0.1], None]))


def check_outcome(call, x: torch.Tensor, shape, tried: list) -> None:
    """Run ``call``: a finite result of ``shape`` in the result dtype on x's device, or a named error."""
    tried.append(1)
    try:
        out = call()
    except (ValueError, TypeError) as err:
        assert "argument '" in str(err) or "option '" in str(err), f"error does not name an argument: {err!r}"
        return
    want = torch.float64 if x.dtype == torch.float64 else torch.float32
    assert tuple(out.shape) == tuple(shape), (out.shape, shape)
    assert out.dtype == want and out.device == x.device
    assert bool(torch.isfinite(out).all()), "non-finite result"


TRIED: list = []


@SETTINGS
@given(x=images(), target=TARGETS, squared=st.booleans())
def test_vanilla_grad(x, target, squared):
    model = tiny_model(x.shape[1])
    check_outcome(lambda: sx.vanilla_grad(model, x, target, squared=squared), x,
                  (x.shape[0], *x.shape[2:]), TRIED)


@SETTINGS
@given(x=images(), sigma=SIGMAS, target=TARGETS, n=st.sampled_from([1, 2, 0, -1, 2.0]),
       mixing=st.sampled_from(["additive", "convex", "damping", "bogus"]))
def test_smooth_grad(x, sigma, target, n, mixing):
    model = tiny_model(x.shape[1])
    check_outcome(lambda: sx.smooth_grad(model, x, sigma, target, n_samples=n, mixing=mixing), x,
                  (x.shape[0], *x.shape[2:]), TRIED)


@SETTINGS
@given(x=images(), target=TARGETS, steps=st.sampled_from([1, 3, 0, "2"]), times_input=st.booleans())
def test_integrated_grad(x, target, steps, times_input):
    model = tiny_model(x.shape[1])
    check_outcome(lambda: sx.integrated_grad(model, x, target, n_steps=steps, times_input=times_input), x,
                  (x.shape[0], *x.shape[2:]), TRIED)


@SETTINGS
@given(x=images(), sigmas=st.one_of(st.none(), st.lists(st.floats(-0.2, 1.2, allow_nan=False), min_size=0,
                                                        max_size=3), st.sampled_from([[0.1, math.nan], "0.5"])),
       target=TARGETS, estimator=st.sampled_from(["grid", "stratified", "neyman", "other"]))
def test_spectral_lens(x, sigmas, target, estimator):
    model = tiny_model(x.shape[1])
    check_outcome(lambda: sx.spectral_lens(model, x, sigmas, target, n_samples=2, estimator=estimator).sl2, x,
                  (x.shape[0], *x.shape[2:]), TRIED)


@SETTINGS
@given(x=images(), target=TARGETS, level=st.sampled_from(["image", "pixel", "dataset", "x"]))
def test_optimal_sigma(x, target, level):
    model = tiny_model(x.shape[1])
    shape = {"image": (x.shape[0],), "dataset": (), "pixel": (x.shape[0], *x.shape[2:])}.get(level, ())
    check_outcome(lambda: sx.optimal_sigma(model, x, [0.2, 0.5], target, level=level, n_samples=2), x, shape,
                  TRIED)


@SETTINGS
@given(x=images(), target=TARGETS, method=st.sampled_from(["rise", "occlusion"]))
def test_perturbation_explainers(x, target, method):
    model = tiny_model(x.shape[1])
    opts = {"n_masks": 4} if method == "rise" else {}
    check_outcome(lambda: sx.explain(method, model, x, target, **opts), x, (x.shape[0], *x.shape[2:]), TRIED)


@SETTINGS
@given(x=images(), target=TARGETS, fractions=st.one_of(st.none(), st.lists(st.floats(-0.5, 1.5), max_size=4)))
def test_deletion_insertion(x, target, fractions):
    model = tiny_model(x.shape[1])
    maps = torch.rand(x.shape[0], *x.shape[2:], generator=torch.Generator().manual_seed(1))
    check_outcome(lambda: sx.metrics.deletion_insertion(model, x, maps, target, fractions=fractions)["deletion_auc"]
                  .to(torch.float64 if x.dtype == torch.float64 else torch.float32), x, (x.shape[0],), TRIED)


@st.composite
def map_batches(draw):
    """(B, H, W) maps (float32/float64, some constant, some with NaN) for the spectral measures."""
    b, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 12)), draw(st.integers(1, 12))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    kind = draw(st.sampled_from(["random", "zeros", "nan", "signed"]))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    m = torch.rand(b, h, w, generator=g, dtype=dtype)
    if kind == "zeros":
        m = torch.zeros_like(m)
    elif kind == "signed":
        m = m - 0.5
    elif kind == "nan":
        m.view(-1)[-1] = math.nan
    return m


@SETTINGS
@given(maps=map_batches(), rank=st.booleans(), measure=st.sampled_from(["ef", "gap", "spectrum"]))
def test_spectral_measures(maps, rank, measure):
    if measure == "ef":
        call, shape = lambda: sx.expected_frequency(maps, rank_normalize=rank), (maps.shape[0],)
    elif measure == "gap":
        call, shape = lambda: sx.explanation_gap(maps, maps.flip(-1), rank_normalize=rank), (maps.shape[0],)
    else:
        def call():
            return sx.radial_power_spectrum(maps, rank_normalize=rank)
        shape = None
    try:
        out = call()
    except (ValueError, TypeError) as err:
        TRIED.append(1)
        assert "argument '" in str(err), err
        return
    TRIED.append(1)
    assert out.dtype == maps.dtype and bool(torch.isfinite(out).all())
    assert shape is None or tuple(out.shape) == shape


@SETTINGS
@given(maps=map_batches(), s=st.integers(1, 4), measure=st.sampled_from(["cosine", "dssim", "other"]),
       downsample=st.sampled_from([1, 2, 5, 0, -3, 2.5]))
def test_inconsistency(maps, s, measure, downsample):
    per_sigma = maps.unsqueeze(1).repeat(1, s, 1, 1)
    TRIED.append(1)
    try:
        out = sx.inconsistency(per_sigma, measure=measure, downsample=downsample)
    except (ValueError, TypeError) as err:
        assert "argument '" in str(err), err
        return
    assert out.shape == (maps.shape[0],) and out.dtype == maps.dtype and bool(torch.isfinite(out).all())
    if s > 1:
        torch.testing.assert_close(out, torch.zeros_like(out), atol=1e-5, rtol=0)    # identical maps


def test_report_how_many_cases_were_tried():
    """Runs last in this file: the number of cases the property tests tried (printed with -s)."""
    print(f"property cases tried: {len(TRIED)}")
    if TRIED:
        assert len(TRIED) >= 100
    else:
        pytest.skip("run together with the property tests to count the cases")
