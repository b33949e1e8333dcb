"""spectral_xai.integrations.torchmetrics: the streaming metrics equal sx.* on all the maps at once."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import spectral_xai as sx
from spectral_xai.integrations.torchmetrics import EFStats, ExpectedFrequency, ExplanationGap

HERE = Path(__file__).resolve().parent


def maps(seed: int, n: int = 7, size: int = 10, dtype=torch.float64) -> torch.Tensor:
    """Smooth-ish random maps: white noise plus a blurred copy, so EFs differ between maps."""
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(n, size, size, generator=g, dtype=torch.float64)
    w = torch.rand(n, 1, 1, generator=g, dtype=torch.float64)
    blur = torch.nn.functional.avg_pool2d(m[:, None], 3, 1, 1, count_include_pad=False)[:, 0]
    return (w * m + (1 - w) * 4 * blur).to(dtype)


def stream(metric, *tensors, splits=(0, 3, 4, 7)):
    """Update ``metric`` with uneven batches of ``tensors`` (and return it)."""
    for lo, hi in zip(splits[:-1], splits[1:]):
        metric.update(*(t[lo:hi] for t in tensors))
    return metric


@pytest.mark.parametrize("options", [{}, {"rank_normalize": False}, {"exclude_dc": True},
                                     {"reduction": "authors", "rank_normalize": False}])
def test_compute_is_the_mean_ef_of_all_maps(options):
    m = maps(0)
    ef = sx.expected_frequency(m, **options)
    metric = stream(ExpectedFrequency(**options), m)
    out = metric.compute()
    assert out.dtype == torch.float64 and metric.value_sum.dtype == torch.float64
    torch.testing.assert_close(out, ef.mean(), rtol=1e-14, atol=0)      # float64 rounding of the sums only
    stats = metric.compute_stats()
    assert isinstance(stats, EFStats) and stats.count.item() == 7
    e = ef.numpy()
    np.testing.assert_allclose(stats.stderr.item(), e.std(ddof=1) / np.sqrt(7), rtol=1e-9)
    assert stats.mean.item() == out.item()


def test_float32_maps_score_as_sx_does():
    m = maps(1, dtype=torch.float32)
    ef = sx.expected_frequency(m)                                       # float32 per-map EFs
    out = stream(ExpectedFrequency(), m).compute()
    torch.testing.assert_close(out, ef.double().mean(), rtol=1e-14, atol=0)
    torch.testing.assert_close(out.float(), ef.mean())


@pytest.mark.parametrize("rank_normalize", [True, False])
def test_halves_give_the_cross_or_bias_reduced_ef(rank_normalize):
    a, b = maps(2), maps(3)
    want = sx.expected_frequency(a, b, rank_normalize=rank_normalize).mean()
    got = stream(ExpectedFrequency(rank_normalize=rank_normalize), a, b).compute()
    torch.testing.assert_close(got, want, rtol=1e-14, atol=0)


def test_mean_spectrum_and_its_errors():
    a, b = maps(4), maps(5)
    spec = stream(ExpectedFrequency(size=(10, 10)), a).compute_spectrum()
    torch.testing.assert_close(spec, sx.radial_power_spectrum(a, rank_normalize=True).mean(0), rtol=1e-13, atol=0)
    assert spec.shape == (sx.radial_power_spectrum(a).shape[1],)
    cross = stream(ExpectedFrequency(rank_normalize=False, size=(10, 10)), a, b).compute_spectrum()
    torch.testing.assert_close(cross, sx.radial_power_spectrum(a, b).mean(0), rtol=1e-13, atol=1e-12)
    metric = ExpectedFrequency(size=(10, 10))
    metric.update(a)
    with pytest.raises(ValueError, match="'maps'.*one size"):
        metric.update(maps(6, size=12))
    assert metric.count.item() == 7                                     # the refused batch left no trace
    with pytest.raises(ValueError, match="'b'.*no spectrum"):
        metric.update(a, b)
    with pytest.raises(ValueError, match="'size'"):
        stream(ExpectedFrequency(), a).compute_spectrum()
    with pytest.raises(ValueError, match="no maps"):
        ExpectedFrequency(size=(10, 10)).compute_spectrum()


def test_explanation_gap_streams_sx_explanation_gap():
    ref, meth, meth_b = maps(7), maps(8), maps(9)
    for kw, tensors, extra in [({}, (ref, meth), {}), ({"rank_normalize": False}, (ref, meth), {}),
                               ({"rank_normalize": False}, (ref, meth, meth_b), {"method_b": meth_b})]:
        metric = ExplanationGap(size=(10, 10), **kw)
        for lo, hi in ((0, 5), (5, 7)):
            metric.update(ref[lo:hi], meth[lo:hi], **{k: v[lo:hi] for k, v in extra.items()})
        gap = sx.explanation_gap(ref, meth, **extra, **kw)
        torch.testing.assert_close(metric.compute(), gap.mean(), rtol=1e-14, atol=0)
        np.testing.assert_allclose(metric.compute_stats().stderr.item(), gap.numpy().std(ddof=1) / np.sqrt(7),
                                   rtol=1e-9)
        spectra = metric.compute_spectrum()
        rn = kw.get("rank_normalize", True)
        torch.testing.assert_close(spectra.reference, sx.radial_power_spectrum(ref, rank_normalize=rn).mean(0))
        want = sx.radial_power_spectrum(meth, extra.get("method_b"), rank_normalize=rn).mean(0)
        torch.testing.assert_close(spectra.method, want)


def test_merge_state_equals_one_metric_over_all_maps():
    a, ref = maps(10), maps(11)
    one = stream(ExpectedFrequency(size=(10, 10)), a)
    left, right = ExpectedFrequency(size=(10, 10)), ExpectedFrequency(size=(10, 10))
    left.update(a[:2])
    right.update(a[2:])
    left.merge_state(right)
    for x, y in zip(left.compute_stats(), one.compute_stats()):
        torch.testing.assert_close(x, y, rtol=1e-14, atol=0)
    torch.testing.assert_close(left.compute_spectrum(), one.compute_spectrum(), rtol=1e-14, atol=0)
    g1, g2 = ExplanationGap(), ExplanationGap()
    g1.update(ref[:4], a[:4])
    g2.update(ref[4:], a[4:])
    g1.merge_state(g2)
    torch.testing.assert_close(g1.compute(), sx.explanation_gap(ref, a).mean(), rtol=1e-14, atol=0)


def test_states_are_float64_sums_of_fixed_size():
    metric = ExpectedFrequency(size=(10, 10))
    shapes = {k: v.shape for k, v in metric.metric_state.items()}
    stream(metric, maps(12))
    stream(metric, maps(13))
    assert {k: v.shape for k, v in metric.metric_state.items()} == shapes        # O(K) whatever the maps
    assert all(v.dtype == torch.float64 for v in metric.metric_state.values())
    assert metric.count.item() == 14


def test_two_gloo_processes_sync_to_one_process_over_all_maps(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(HERE / "ddp_worker.py"), str(tmp_path)]
    r = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in (0, 1)]
    assert [r["local_count"] for r in ranks] == [4, 3]                  # each rank kept its own share
    g = torch.Generator
    a, b, ref = (torch.randn(7, 10, 10, generator=g().manual_seed(s), dtype=torch.float64) for s in (0, 1, 2))
    ef = sx.expected_frequency(a)
    gap = sx.explanation_gap(ref, a, exclude_dc=True)
    for res in ranks:                                                   # every rank gets the global result
        np.testing.assert_allclose(res["ef"], ef.mean().item(), rtol=1e-14)
        np.testing.assert_allclose(res["ef_stats"], [ef.mean().item(), ef.std().item() / 7 ** 0.5, 7], rtol=1e-9)
        np.testing.assert_allclose(res["ef_spectrum"], sx.radial_power_spectrum(a, rank_normalize=True).mean(0),
                                   rtol=1e-13)
        np.testing.assert_allclose(res["cross"], sx.expected_frequency(a, b, rank_normalize=False).mean().item(),
                                   rtol=1e-13)
        np.testing.assert_allclose(res["cross_spectrum"], sx.radial_power_spectrum(a, b).mean(0), rtol=1e-12,
                                   atol=1e-12)
        np.testing.assert_allclose(res["gap"], gap.mean().item(), rtol=1e-14)
        np.testing.assert_allclose(res["gap_stats"], [gap.mean().item(), gap.std().item() / 7 ** 0.5, 7], rtol=1e-9)
        np.testing.assert_allclose(res["gap_spectra"][0], sx.radial_power_spectrum(ref, rank_normalize=True).mean(0),
                                   rtol=1e-13)


def test_lightning_style_loop_update_compute_reset():
    """An evaluation loop as Lightning runs it: forward() per step (the batch's value), compute() at the
    epoch end, reset() before the next epoch."""
    metric = ExpectedFrequency(exclude_dc=True)
    for epoch in range(2):
        epoch_maps = [maps(20 + 3 * epoch + step, n=3) for step in range(3)]
        for m in epoch_maps:
            step_value = metric(m)                                       # the batch alone
            torch.testing.assert_close(step_value, sx.expected_frequency(m, exclude_dc=True).mean(), rtol=1e-14,
                                       atol=0)
        torch.testing.assert_close(metric.compute(), sx.expected_frequency(torch.cat(epoch_maps),
                                                                           exclude_dc=True).mean(),
                                   rtol=1e-14, atol=0)
        metric.reset()
        assert metric.count.item() == 0


def test_bad_arguments_fail_at_construction_or_update_naming_them():
    with pytest.raises(ValueError, match="'reduction'"):
        ExpectedFrequency(reduction="sum")
    with pytest.raises(ValueError, match="no_such_option"):
        ExpectedFrequency(no_such_option=1)
    with pytest.raises(ValueError, match="'size'"):
        ExpectedFrequency(size=(10, 0))
    with pytest.raises(TypeError, match="'size'"):
        ExpectedFrequency(size=(10.0, 10))
    with pytest.raises(ValueError, match="'size'"):
        ExpectedFrequency(size=(10, 10, 10))
    metric = ExpectedFrequency()
    with pytest.raises(ValueError, match="'maps'"):
        metric.update(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="'method_maps'"):
        ExplanationGap().update(maps(0), maps(1, n=5))
    assert ExpectedFrequency(sync_on_compute=False).sync_on_compute is False   # torchmetrics' keywords pass on


def test_states_follow_the_metric_to_the_maps_device(device):
    a, ref = maps(14).to(device), maps(15).to(device)
    metric = ExpectedFrequency(size=(10, 10)).to(device)
    stream(metric, a)
    assert metric.value_sum.device.type == device and metric.value_sum.dtype == torch.float64
    torch.testing.assert_close(metric.compute().cpu(), sx.expected_frequency(a.cpu()).mean(), rtol=1e-12, atol=0)
    torch.testing.assert_close(metric.compute_spectrum().cpu(), sx.radial_power_spectrum(a.cpu(), rank_normalize=True)
                               .mean(0), rtol=1e-12, atol=1e-12)
    gap = ExplanationGap().to(device)
    gap.update(ref, a)
    torch.testing.assert_close(gap.compute().cpu(), sx.explanation_gap(ref.cpu(), a.cpu()).mean(), rtol=1e-12, atol=0)
