"""The column registry: one entry per column, twins that exist, and the table's columns derived from it."""
import pytest

from spectral_xai.audit import columns
from spectral_xai.audit.config import MEASURES
from spectral_xai.audit.store import table_schema
from spectral_xai.methods import BUDGETS, MC_KINDS, METHODS, MethodSpec


def test_every_twin_and_measure_of_the_registry_exists():
    keys = {c.key for c in columns.METHOD_COLUMNS}
    for c in columns.METHOD_COLUMNS:
        assert {t for t in (c.mc_error, c.plugin) if t} <= keys, c.key
        assert columns.spec(c.column("sg2")) is c
    assert {c.measure for c in columns.COLUMNS.values() if c.measure} <= set(MEASURES)
    assert all(s.mc in MC_KINDS and s.budget in BUDGETS for s in METHODS.values())


def test_table_columns_follow_methods_measures_and_ranked_maps():
    cols = columns.table_columns(["vg", "al"], ["ef", "deletion"])
    assert cols[:4] == ["index", "name", "status", "error"] and "sigma_opt" not in cols
    assert "vg_deletion" in cols and "al_deletion" not in cols            # ArgLens ranks no pixels
    assert "vg_gap" not in cols and "vg_samples" in cols and "vg_ef_mc_error" in cols
    schema = table_schema(["vg", "al"], ["ef", "deletion"])
    assert schema.names == cols and str(schema.field("vg_samples").type) == "int64"
    assert schema.field("al_ef").metadata[b"description"].decode() == columns.DATA_DICTIONARY["<method>_ef"]
    with pytest.raises(KeyError):
        columns.spec("vg_no_such_measure")


def test_a_method_spec_refuses_a_monte_carlo_kind_that_contradicts_it():
    with pytest.raises(ValueError, match="budget 'passes'"):
        MethodSpec("x", "X", "x", "gradient", lambda m, x, t: x, budget="passes")
    with pytest.raises(ValueError, match="contradicts seeded"):
        MethodSpec("x", "X", "x", "gradient", lambda m, x, t: x, seeded=True)      # sampled but "deterministic"
