"""The audit's Monte Carlo errors of derived numbers (docs/methods.md §11): ΔEF, σ* change rate, inconsistency,
ArgLens agreement and (--auc-mc-error) deletion/insertion AUC, each against a direct computation on the halves."""
import numpy as np
import pytest
import torch

import spectral_xai as sx
from spectral_xai.audit import AuditConfig, run_audit
from spectral_xai.audit.columns import DATA_DICTIONARY, table_columns

from helpers import AUDIT_MODEL, audit_inputs

SIZE, N, SAMPLES, SIGMAS, FRACTIONS = 20, 2, 4, [0.0, 0.3, 0.6, 1.0], 5
METHODS = ["vg", "sg2", "sl2", "al", "sg2opt"]


@pytest.fixture(scope="module")
def audit(tmp_path_factory):
    """A tiny audit with every measure and --auc-mc-error, the SpectralLens result and SG² statistics it saw."""
    out = tmp_path_factory.mktemp("mcd") / "run"
    cfg = AuditConfig(data="skimage", model=AUDIT_MODEL, out=str(out), size=SIZE, samples=SAMPLES, limit=N,
                      shard_size=N, methods=METHODS, sigmas=SIGMAS, fractions=FRACTIONS, auc_mc_error=True,
                      quiet=True, report=False, num_workers=0)
    table = run_audit(cfg)["table"]
    model, x, target, ids = audit_inputs(SIZE, N)
    res = sx.spectral_lens(model, x, torch.tensor(SIGMAS), target, n_samples=SAMPLES, noise_scale=0.3,
                           image_ids=ids, return_stats=True, return_per_sigma=True)
    st = sx.smooth_grad(model, x, 0.15, target, n_samples=SAMPLES, image_ids=ids, return_stats=True)
    return table, model, x, target, res, st


def _col(table, name) -> np.ndarray:
    return table[name].to_numpy(dtype=float)


def test_gap_error_is_the_ef_error_against_a_deterministic_reference(audit):
    table = audit[0]
    for m in ("sg2", "sl2", "sg2opt"):
        for gap, ef in (("gap", "ef"), ("gap_unranked", "ef_unranked")):
            err = _col(table, f"{m}_{gap}_mc_error")
            want = np.sqrt(_col(table, f"{m}_{ef}_mc_error") ** 2 + _col(table, f"vg_{ef}_mc_error") ** 2)
            np.testing.assert_allclose(err, want, rtol=1e-12)
            assert (err > 0).all()
    assert (table["vg_gap_mc_error"] == 0).all() and table["al_gap_mc_error"].isna().all()


def test_sigma_opt_change_and_inconsistency_error_from_the_halves(audit):
    table, *_, res = audit[:5]
    a, b = (h.double() for h in res.per_sigma_halves)
    star = [sx.sigma_star(h, res.sigmas, 0.3).index for h in (a, b)]      # 2 groups: one split, the halves
    np.testing.assert_array_equal(_col(table, "sigma_opt_mc_change"), (star[0] != star[1]).double().numpy())
    inc = [sx.inconsistency(h) for h in (a, b)]
    # a difference of two inconsistencies of float32 maps: to float32 precision of the inconsistencies
    np.testing.assert_allclose(_col(table, "inconsistency_mc_error"), ((inc[0] - inc[1]).abs() / 2).numpy(),
                               rtol=0, atol=1e-7)
    assert (_col(table, "inconsistency_mc_error") > 0).all()


def test_arglens_agreement_is_the_share_of_pixels_whose_halves_agree(audit):
    table, *_, res = audit[:5]
    a, b = res.per_sigma_halves
    want = (a.double().argmax(1) == b.double().argmax(1)).double().flatten(1).mean(1)
    np.testing.assert_allclose(_col(table, "al_mc_agreement"), want.numpy(), rtol=1e-12)
    assert ((want > 0) & (want < 1)).all()
    assert "sg2_mc_agreement" not in table and "al_deletion_mc_error" not in table


def test_auc_errors_from_the_halves_maps(audit):
    table, model, x, target, res, st = audit
    fr = torch.linspace(0, 1, FRACTIONS, dtype=torch.float64)
    for m, halves in (("sg2", st.halves), ("sl2", res.halves)):
        auc = [sx.metrics.deletion_insertion(model, x, h, target, fractions=fr) for h in halves]
        for kind in ("deletion", "insertion"):
            want = (auc[0][f"{kind}_auc"] - auc[1][f"{kind}_auc"]).abs() / 2
            np.testing.assert_allclose(_col(table, f"{m}_{kind}_mc_error"), want.numpy(), rtol=1e-6, atol=1e-12)
    assert (table["vg_deletion_mc_error"] == 0).all() and (table["vg_insertion_mc_error"] == 0).all()


def test_new_error_columns_are_described_with_their_estimator():
    d = DATA_DICTIONARY
    assert "sqrt(<method>_ef_mc_error² + vg_ef_mc_error²)" in d["<method>_gap_mc_error"]
    assert "balanced splits" in d["sigma_opt_mc_change"] and "jackknife" in d["inconsistency_mc_error"]
    assert "|AUC(A) − AUC(B)|/2" in d["<method>_deletion_mc_error"] and "two halves" in d["<method>_mc_agreement"]
    cols = table_columns(["vg", "al"], ["gap", "deletion", "sigma_opt"])
    assert {"vg_gap_mc_error", "vg_deletion_mc_error", "al_mc_agreement", "sigma_opt_mc_change"} <= set(cols)
    assert "vg_mc_agreement" not in cols and "inconsistency_mc_error" not in cols


def test_sampled_auc_errors_are_nan_without_the_switch(audit):
    from spectral_xai.audit.compute import _auc_mc_errors
    from spectral_xai.audit.mc import AuditMap

    _, model, x, target, _, st = audit
    am = AuditMap(st.map, st.halves, st.rel_error.double(), None, "halves")
    fr = torch.linspace(0, 1, FRACTIONS, dtype=torch.float64)
    assert _auc_mc_errors(model, x, target, am, AuditConfig(), fr, None) is None


def test_report_warns_when_the_halves_choose_another_sigma():
    import pandas as pd

    from spectral_xai.audit.report.checks import sigma_change_warning

    assert sigma_change_warning(pd.DataFrame({"sigma_opt_mc_change": [0.0, 0.0]})) is None
    assert sigma_change_warning(pd.DataFrame({"sigma_opt": [0.1]})) is None
    text = sigma_change_warning(pd.DataFrame({"sigma_opt_mc_change": [0.0, 1.0, 0.5, np.nan]}))
    assert "for 2 of 3 images" in text and "50 ± 29 %" in text and "sigma_opt_mc_change" in text
