"""The audit's Monte Carlo columns (docs/methods.md §11): corrected EF / ΔEF from the halves beside the plug-in values,
per-image Monte Carlo errors, and --target-error; every number against a direct library call or numpy."""
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

import spectral_xai as sx
from spectral_xai.audit import AuditConfig, RunDirError, run_audit
from spectral_xai.audit.sources.folders import FolderDataset
from spectral_xai.audit.mc import AuditMap, ef_columns
from spectral_xai.audit.store import DATA_DICTIONARY

from helpers import AUDIT_MODEL, audit_cli, audit_cnn, audit_inputs

SIZE, N, SAMPLES, SIGMAS = 24, 2, 3, [0.0, 0.5, 1.0]     # odd n: halves of 2 and 1 samples
METHODS = ["vg", "sg", "sg2", "sl2", "al", "sg2opt", "xig"]


@pytest.fixture(scope="module")
def audit(tmp_path_factory):
    """The table of a tiny audit, and the model, images, targets and image ids it saw."""
    out = tmp_path_factory.mktemp("mc") / "run"
    cfg = AuditConfig(data="skimage", model=AUDIT_MODEL, out=str(out), size=SIZE, samples=SAMPLES, limit=N,
                      shard_size=N, methods=METHODS, sigmas=SIGMAS, measures=["ef", "gap", "sigma_opt"],
                      quiet=True, report=False, num_workers=0)
    table = run_audit(cfg)["table"]
    model, x, target, ids = audit_inputs(SIZE, N)
    return table, out, model, x, target, ids


def _col(table, name) -> np.ndarray:
    return table[name].to_numpy(dtype=float)


def _numpy_cross_ef(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """EF of the ring means of Re(FFT2(a)·conj FFT2(b)) (docs/methods.md §7, §11) with numpy alone: fftshift,
    integer radius floor(√(u² + v²)) about (H//2, W//2), ring means, ω_k = k/(K − 1)."""
    a, b = a.double().numpy(), b.double().numpy()
    H, W = a.shape[1:]
    c = np.real(np.fft.fftshift(np.fft.fft2(a), axes=(1, 2)) * np.conj(np.fft.fftshift(np.fft.fft2(b), axes=(1, 2))))
    v, u = np.meshgrid(np.arange(W) - W // 2, np.arange(H) - H // 2)
    k = np.floor(np.sqrt(u**2 + v**2)).astype(int)
    K = k.max() + 1
    rings = np.stack([np.bincount(k.ravel(), weights=ci.ravel(), minlength=K) / np.bincount(k.ravel())
                      for ci in c])
    omega = np.arange(K) / (K - 1)
    return (rings * omega).sum(1) / rings.sum(1)


def _check_ef_columns(table, m, a, b, mp, vg):
    """The EF / ΔEF / MC-error columns of method m against direct calls on its halves a, b and map mp."""
    ef = sx.expected_frequency
    close = dict(rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(_col(table, f"{m}_ef"), ef(a, b).double().numpy(), **close)
    np.testing.assert_allclose(_col(table, f"{m}_ef_unranked"), ef(a, b, rank_normalize=False).double().numpy(),
                               **close)
    np.testing.assert_allclose(_col(table, f"{m}_ef_unranked"), _numpy_cross_ef(a, b), rtol=1e-4)
    # the bias-reduced rank EF is the first-order jackknife of the halves
    jack = 2 * ef(((a.double() + b.double()) / 2).float()) - (ef(a) + ef(b)) / 2
    np.testing.assert_allclose(_col(table, f"{m}_ef"), jack.double().numpy(), **close)
    np.testing.assert_allclose(_col(table, f"{m}_ef_plugin"), ef(mp).double().numpy(), **close)
    np.testing.assert_allclose(_col(table, f"{m}_ef_unranked_plugin"),
                               ef(mp, rank_normalize=False).double().numpy(), **close)
    for key, ranked in (("ef", True), ("ef_unranked", False)):
        half_split = (ef(a, rank_normalize=ranked).double() - ef(b, rank_normalize=ranked).double()).abs() / 2
        np.testing.assert_allclose(_col(table, f"{m}_{key}_mc_error"), half_split.numpy(), **close)
        assert (_col(table, f"{m}_{key}_mc_error") > 0).all()
    np.testing.assert_allclose(_col(table, f"{m}_gap"), (ef(a, b).double() - ef(vg).double()).abs().numpy(),
                               rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(_col(table, f"{m}_gap_plugin"), sx.explanation_gap(vg, mp).double().numpy(),
                               rtol=1e-5, atol=1e-8)
    unranked = (_numpy_cross_ef(a, b) - ef(vg, rank_normalize=False).double().numpy()).__abs__()
    np.testing.assert_allclose(_col(table, f"{m}_gap_unranked"), unranked, rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(_col(table, f"{m}_gap_unranked_plugin"),
                               (ef(mp, rank_normalize=False).double() - ef(vg, rank_normalize=False).double())
                               .abs().numpy(), rtol=1e-5, atol=1e-8)
    assert not np.allclose(_col(table, f"{m}_ef_unranked"), _col(table, f"{m}_ef_unranked_plugin"))


def test_smoothgrad_columns_equal_direct_calls_on_the_halves(audit):
    table, _, model, x, target, ids = audit
    vg = sx.vanilla_grad(model, x, target)
    for m, squared in (("sg", False), ("sg2", True)):
        st = sx.smooth_grad(model, x, 0.15, target, n_samples=SAMPLES, squared=squared, image_ids=ids,
                            return_stats=True)
        assert st.half_counts.tolist() == [[2, 1]] * N
        _check_ef_columns(table, m, *st.halves, st.map, vg)
        np.testing.assert_allclose(_col(table, f"{m}_rel_error"), st.rel_error.double().numpy(), rtol=1e-6)
        se = st.stderr.double().flatten(1).norm(dim=1) / st.map.double().flatten(1).norm(dim=1)
        np.testing.assert_allclose(_col(table, f"{m}_rel_error"), se.numpy(), rtol=1e-5)
        assert table[f"{m}_samples"].tolist() == [SAMPLES] * N


def test_lens_columns_equal_direct_calls_on_the_halves(audit):
    table, _, model, x, target, ids = audit
    vg = sx.vanilla_grad(model, x, target)
    res = sx.spectral_lens(model, x, torch.tensor(SIGMAS), target, n_samples=SAMPLES, noise_scale=0.3,
                           image_ids=ids, return_stats=True, return_per_sigma=True)
    _check_ef_columns(table, "sl2", *res.halves, res.sl2, vg)
    np.testing.assert_allclose(_col(table, "sl2_rel_error"), res.rel_error.double().numpy(), rtol=1e-6)
    star = sx.sigma_star(res.per_sigma, res.sigmas, 0.3)
    assert _col(table, "sigma_opt").tolist() == star.sigma.tolist() and (star.index > 0).all()
    # σ* = 0.5, the largest admissible σ of the grid (σ = 1 is not): at the edge, as sigma_star says
    assert table["sigma_opt_at_edge"].tolist() == star.at_edge.tolist() == [True] * N
    g = res.per_sigma.double().flatten(2).sum(-1).numpy() * res.weights.double().numpy()     # w_j ‖G_j‖₁
    np.testing.assert_allclose(_col(table, "sl2_image_independent"), g[:, 2] / g.sum(1), rtol=1e-6)
    assert (_col(table, "sl2_image_independent") > 0).all()
    at = (torch.arange(N), star.index)
    a, b = (h[at] for h in res.per_sigma_halves)              # SG²_opt: the per-σ halves at each image's σ*
    _check_ef_columns(table, "sg2opt", a, b, star.maps.float(), vg)
    np.testing.assert_allclose(_col(table, "sg2opt_rel_error"), res.per_sigma_rel_error[at].double().numpy(),
                               rtol=1e-6)
    assert table["sl2_samples"].tolist() == table["sg2opt_samples"].tolist() == [1 + 2 * SAMPLES] * N


def test_maps_without_halves_keep_the_plug_in(audit):
    table = audit[0]
    for m in ("vg", "xig", "al"):
        for key in ("ef", "ef_unranked", "gap", "gap_unranked"):
            assert table[f"{m}_{key}"].equals(table[f"{m}_{key}_plugin"]), (m, key)
    for m in ("vg", "xig"):                                     # deterministic: Monte Carlo error exactly 0
        for key in ("rel_error", "ef_mc_error", "ef_unranked_mc_error"):
            assert (table[f"{m}_{key}"] == 0).all(), (m, key)
    for key in ("rel_error", "ef_mc_error", "ef_unranked_mc_error"):     # ArgLens: not estimated
        assert table[f"al_{key}"].isna().all(), key
    assert (table["vg_gap"] == 0).all() and (table["vg_gap_unranked"] == 0).all()


def test_new_columns_are_typed_and_described(audit):
    _, out, *_ = audit
    schema = pq.read_schema(out / "metrics.parquet")
    per_method = ["ef", "ef_unranked", "ef_mc_error", "ef_unranked_mc_error", "ef_plugin", "ef_unranked_plugin",
                  "gap", "gap_plugin", "gap_unranked", "gap_unranked_plugin", "rel_error", "samples"]
    errors = ["gap_mc_error", "gap_unranked_mc_error"]       # added after the existing per-method columns
    assert [n for n in schema.names if n.startswith("sg2_")] == [f"sg2_{k}" for k in per_method + errors]
    types = {f.name: str(f.type) for f in schema}
    for m in METHODS:
        assert all(types[f"{m}_{k}"] == "double" for k in per_method[:-1]) and types[f"{m}_samples"] == "int64"
    for key in ("ef_mc_error", "ef_unranked_mc_error", "ef_plugin", "ef_unranked_plugin", "gap_plugin",
                "rel_error"):
        described = schema.field(f"sg2_{key}").metadata[b"description"].decode()
        assert described == DATA_DICTIONARY[f"<method>_{key}"]
    assert "|EF(A) − EF(B)|/2" in DATA_DICTIONARY["<method>_ef_mc_error"]
    assert "bias-reduced" in DATA_DICTIONARY["<method>_ef"] and "cross spectrum" in \
        DATA_DICTIONARY["<method>_ef_unranked"]
    assert types["sigma_opt_at_edge"] == "bool" and types["sl2_image_independent"] == "double"
    t = pq.read_table(out / "metrics.parquet")
    rel = t.column("al_rel_error")          # not estimated: NaN in a float column, as failed images' measures
    assert rel.null_count == 0 and np.isnan(rel.to_numpy()).all()


def test_gap_exclude_dc_leaves_the_dc_ring_out_of_both_gaps():
    g = torch.Generator().manual_seed(0)
    vg, a, b = (torch.rand(3, 12, 12, generator=g) for _ in range(3))
    am = AuditMap((a + b) / 2, (a, b), torch.zeros(3, dtype=torch.float64), None, "halves")
    ef = sx.expected_frequency
    for exclude in (False, True):
        cols = ef_columns("sg2", am, ["gap"], vg, exclude_dc=exclude)
        for key, ranked in (("gap", True), ("gap_unranked", False)):
            want = (ef(a, b, rank_normalize=ranked, exclude_dc=exclude).double()
                    - ef(vg, rank_normalize=ranked, exclude_dc=exclude).double()).abs()
            torch.testing.assert_close(cols[f"sg2_{key}"].double(), want, rtol=1e-5, atol=1e-9)
            plug = (ef(am.map, rank_normalize=ranked, exclude_dc=exclude).double()
                    - ef(vg, rank_normalize=ranked, exclude_dc=exclude).double()).abs()
            torch.testing.assert_close(cols[f"sg2_{key}_plugin"].double(), plug, rtol=1e-5, atol=1e-9)
    assert not torch.allclose(ef_columns("sg2", am, ["gap"], vg)["sg2_gap"],
                              ef_columns("sg2", am, ["gap"], vg, exclude_dc=True)["sg2_gap"])


@pytest.mark.parametrize("flag", ["gap_exclude_dc", "auc_mc_error"])
def test_switches_reach_the_configuration_and_keep_old_keys(tmp_path, flag):
    from spectral_xai.audit.cli import config_from_args, add_audit_parser
    import argparse

    parser = argparse.ArgumentParser()
    add_audit_parser(parser.add_subparsers())
    on = config_from_args(parser.parse_args(["audit", "skimage", "--out", str(tmp_path),
                                             "--" + flag.replace("_", "-")]))
    off = config_from_args(parser.parse_args(["audit", "skimage", "--out", str(tmp_path)]))
    assert getattr(on, flag) is True and getattr(off, flag) is False and on.key() != off.key()
    assert flag not in off.key_fields()          # runs recorded before the option keep their key
    with pytest.raises(ValueError, match=flag):
        AuditConfig(**{flag: "yes"}).validate()


def _stop_config(out, **kw) -> AuditConfig:
    return AuditConfig(data="skimage", model=AUDIT_MODEL, out=str(out), size=16, samples=8, limit=N, shard_size=N,
                       methods=["sg2", "sl2"], sigmas=[0.0, 1.0], measures=["ef"], quiet=True, report=False,
                       num_workers=0, **kw)


def test_target_error_stops_each_image_and_records_its_samples(tmp_path):
    loose = run_audit(_stop_config(tmp_path / "loose", target_error=0.9, max_samples=32))["table"]
    ds = FolderDataset("skimage", 16, 3, limit=N)
    x = torch.stack([ds[i].image for i in range(N)])
    model = audit_cnn()
    with torch.no_grad():
        target = model(x).argmax(1)
    ids = torch.arange(N)
    st = sx.smooth_grad(model, x, 0.15, target, n_samples=8, target_error=0.9, max_samples=32, image_ids=ids,
                        return_stats=True)
    lens = sx.spectral_lens(model, x, torch.tensor([0.0, 1.0]), target, n_samples=8, noise_scale=0.3,
                            target_error=0.9, max_samples=32, image_ids=ids, return_stats=True)
    assert loose["sg2_samples"].tolist() == st.n_samples.tolist() == [16, 8]   # per image, below the cap
    assert loose["sl2_samples"].tolist() == lens.n_samples.sum(1).tolist() == [1 + 8] * N   # σ = 0 once
    assert (loose["sg2_rel_error"] <= 0.9).all() and (loose["sl2_rel_error"] <= 0.9).all()
    np.testing.assert_allclose(loose["sg2_ef"], sx.expected_frequency(*st.halves).double().numpy(), rtol=1e-5)
    tight = run_audit(_stop_config(tmp_path / "tight", target_error=1e-6, max_samples=24))["table"]
    assert tight["sg2_samples"].tolist() == [24] * N and tight["sl2_samples"].tolist() == [1 + 24] * N
    assert (tight["sg2_rel_error"] > 1e-6).all()                       # the cap, not the target, stopped it


@pytest.mark.parametrize("options, option", [
    (dict(target_error=0.0), "target_error"), (dict(target_error=1.0), "target_error"),
    (dict(target_error=-0.1), "target_error"), (dict(target_error=True), "target_error"),
    (dict(max_samples=32), "max_samples"), (dict(target_error=0.1, max_samples=4), "max_samples"),
    (dict(target_error=0.1, samples=4), "samples")])
def test_target_error_is_validated(options, option):
    with pytest.raises(ValueError, match=f"option '{option}'"):
        AuditConfig(**options).validate()


def test_target_error_option_on_the_command_line(tmp_path):
    r = audit_cli("audit", "skimage", "--out", tmp_path / "r", "--target-error", "1.5")
    assert r.returncode == 2 and "option 'target_error'" in r.stderr and "0 < E < 1" in r.stderr
    assert not (tmp_path / "r").exists()


def test_resume_refuses_a_different_target_error(tmp_path):
    cfg = _stop_config(tmp_path / "run", target_error=0.5)
    cfg.methods, cfg.limit = ["sg2"], 1
    run_audit(cfg)
    with pytest.raises(RunDirError, match=r"different configuration \(target_error: 0.5 -> 0.25\)"):
        run_audit(AuditConfig(**dict(cfg.to_dict(), target_error=0.25, resume=True)))
    with pytest.raises(RunDirError, match=r"max_samples: None -> 16"):
        run_audit(AuditConfig(**dict(cfg.to_dict(), max_samples=16, resume=True)))
    run_audit(AuditConfig(**dict(cfg.to_dict(), resume=True)))                   # the same target: resumes
