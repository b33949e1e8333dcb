"""report.html read as a browser would: the HTML parsed, the figures' data and images decoded, and every
number checked against the run's own table, scipy or numpy."""
import base64
import io
import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image
from scipy.stats import ttest_ind

from spectral_xai.audit import AuditConfig, build_report, run_audit
from spectral_xai.audit.report.tables import method_table as _method_table
from spectral_xai.comparison import welch_best
from spectral_xai.audit.store import read_shard_tensors, shard_path
from spectral_xai.spectrum import expected_frequency

TESTS = Path(__file__).resolve().parents[1]
CLASSES = ["alpha", "beta", "gamma", "delta", "epsilon"]
METHODS = ["vg", "sg2", "sl2", "al"]
HALVES = ["sg2", "sl2"]                        # the methods whose maps come with halves
N_IMAGES = 4


class Page(HTMLParser):
    """The parts of report.html the tests read: title, figures (attributes, image sources) and tables by id
    (rows of (tag, attributes, text) cells)."""

    def __init__(self, text: str):
        super().__init__()
        self.title, self.figures, self.tables = "", {}, {}
        self._stack, self._figure, self._table, self._cell = [], None, None, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self._stack.append(tag)
        if tag == "figure":
            self._figure = a["id"]
            self.figures[self._figure] = dict(a, images=[])
        elif tag == "img" and self._figure:
            self.figures[self._figure]["images"].append(a["src"])
        elif tag == "table" and "id" in a:
            self._table = a["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = [tag, a, ""]
            self.tables[self._table][-1].append(self._cell)
        elif tag == "br" and self._cell:
            self._cell[2] += "\n"

    def handle_endtag(self, tag):
        if self._stack:
            self._stack.pop()
        if tag == "figure":
            self._figure = None
        elif tag == "table":
            self._table = None
        elif tag in ("td", "th"):
            self._cell = None

    def handle_data(self, data):
        if self._stack and self._stack[-1] == "title":
            self.title += data
        if self._cell:
            self._cell[2] += data


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished and then resumed audit of 4 noise images under a 5-class CNN with class names."""
    root = tmp_path_factory.mktemp("report")
    data = root / "images"
    data.mkdir()
    rng = np.random.default_rng(0)
    for k in range(N_IMAGES):
        Image.fromarray(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)).save(data / f"noise_{k}.png")
    (root / "named.py").write_text(
        f"import sys\nsys.path.insert(0, {str(TESTS)!r})\nfrom helpers import audit_cnn\n\n\n"
        f"def named():\n    net = audit_cnn()\n    net.classes = {CLASSES!r}\n    return net\n")
    out = root / "my-run"
    cfg = dict(data=str(data), out=str(out), model=f"{root / 'named.py'}:named", size=24, samples=2,
               methods=METHODS, sigmas=[0.0, 0.5, 1.0], fractions=3, shard_size=2, panels=3, quiet=True,
               num_workers=0, maps_dtype="float32")
    run_audit(AuditConfig(**cfg))
    run_audit(AuditConfig(**dict(cfg, resume=True)))          # a second session: every shard already done
    return out


@pytest.fixture(scope="module")
def page(run):
    return Page((run / "report.html").read_text(encoding="utf-8"))


def test_title_names_the_run_model_and_data(run, page):
    assert "my-run" in page.title and "named" in page.title and "images" in page.title
    assert page.title != "spectral_xai audit: audit"


def test_ef_histograms_bin_each_method_on_its_own_range_and_count_whole_images(run, page):
    table = pd.read_parquet(run / "metrics.parquet")
    fig = json.loads(page.figures["fig-ef-histograms"]["data-figure"])
    assert set(fig) == {"ef", "ef_unranked"}
    for recipe, d in fig.items():
        assert set(d["counts"]) == set(METHODS) and set(d["plugin_counts"]) == set(HALVES)
        for m in METHODS:
            v = table[f"{m}_{recipe}"].dropna().to_numpy()
            plugin = table[f"{m}_{recipe}_plugin"].to_numpy() if m in HALVES else np.empty(0)
            both = np.concatenate([v, plugin])               # the plug-in values are drawn on the same bins
            edges = np.asarray(d["edges"][m])
            assert edges[0] == pytest.approx(both.min()) and edges[-1] == pytest.approx(both.max())
            counts = d["counts"][m]
            assert all(isinstance(c, int) for c in counts) and sum(counts) == N_IMAGES
            assert counts == np.histogram(v, bins=edges)[0].tolist()
            if m in HALVES:
                assert d["plugin_counts"][m] == np.histogram(plugin, bins=edges)[0].tolist()
            # error bars: the mean ± its standard error across images, and the rms per-image Monte Carlo error
            assert d["mean"][m] == pytest.approx(v.mean()) and d["se"][m] == pytest.approx(v.std(ddof=1) / 2)
        for m in HALVES:
            err = table[f"{m}_{recipe}_mc_error"].to_numpy()
            assert d["mc_error"][m] == pytest.approx(np.sqrt(np.mean(err**2))) and d["mc_error"][m] > 0
        assert d["mc_error"]["vg"] == 0 and np.isnan(d["mc_error"]["al"])


def test_curves_have_a_standard_error_band_from_every_images_curve(run, page):
    fig = json.loads(page.figures["fig-deletion-insertion"]["data-figure"])
    t = {}
    for span in ((0, 2), (2, 4)):
        for k, v in read_shard_tensors(shard_path(run, span), prefix="curves/").items():
            t.setdefault(k, []).append(v.double().numpy())
    assert set(fig) == set(t) and "curves/vg/deletion" in fig
    for k, parts in t.items():
        v = np.concatenate(parts)
        assert fig[k]["n"] == N_IMAGES
        np.testing.assert_allclose(fig[k]["mean"], v.mean(0), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(fig[k]["se"], v.std(0, ddof=1) / np.sqrt(N_IMAGES), rtol=1e-6, atol=1e-12)


def test_warnings_count_edge_images_and_quote_the_image_independent_share_of_sl2(run):
    text = (run / "report.html").read_text(encoding="utf-8")
    table = pd.read_parquet(run / "metrics.parquet")
    assert table["sigma_opt_at_edge"].dtype == bool
    k = int(table["sigma_opt_at_edge"].sum())
    assert k == N_IMAGES                     # grid 0, 0.5, 1: σ = 1 is not admissible, σ* is an end of {0, 0.5}
    warn = text[text.index("id='warnings'"):text.index("<h2>Run</h2>")]
    assert f"end of the admissible grid for {k} of {N_IMAGES} images" in warn
    share = table["sl2_image_independent"].to_numpy()
    assert (share > 0).all() and (share < 1).all()
    assert f"{100 * share.mean():.3g} ± {100 * share.std(ddof=1) / 2:.2g} % of ‖SL²‖₁" in warn


def test_flat_arglens_maps_are_named_not_informative():
    from spectral_xai.audit.report.checks import arglens_warning

    assert arglens_warning({0: 0.5, 1: 0.59}, 16) is None
    said = arglens_warning({0: 0.95, 1: 0.5, 2: 1.0}, 16)
    assert "not informative for 2 of 3 images (#0, #2)" in said and "16 samples per σ" in said


def test_arglens_colourbar_gives_each_sigma_its_own_slot(run):
    import torch
    from spectral_xai.audit.report.figures import arglens_image

    idx, s = arglens_image(torch.tensor([[1.0, 0.5], [0.0, 0.4998]], dtype=torch.float16), [1.0, 0.0, 0.5])
    assert s.tolist() == [0.0, 0.5, 1.0] and idx.tolist() == [[2, 1], [0, 1]]


def test_plugin_ef_column_is_the_ef_of_the_stored_map(run, page):
    table = pd.read_parquet(run / "metrics.parquet")
    maps = read_shard_tensors(shard_path(run, (0, 2)))
    for m in METHODS:
        want = expected_frequency(maps[f"maps/{m}"], rank_normalize=False)
        assert np.allclose(table[f"{m}_ef_unranked_plugin"].to_numpy()[:2], want.numpy(), rtol=1e-6)
        assert not np.allclose(table[f"{m}_ef_unranked"], table[f"{m}_ef"])
        corrected_is_plugin = np.array_equal(table[f"{m}_ef_unranked"], table[f"{m}_ef_unranked_plugin"])
        assert corrected_is_plugin == (m not in HALVES)        # vg: exact; al: no halves, not corrected
    head = [c[2] for c in page.tables["method-table"][0]]
    assert any("rank-normalised" in h for h in head) and any("no rank normalisation" in h for h in head)


def test_report_names_each_ef_estimator_and_shows_mc_errors(run, page):
    table = pd.read_parquet(run / "metrics.parquet")
    head, *rows = page.tables["method-table"]
    heads = [c[2] for c in head]
    est = heads.index("EF estimator")
    ef = heads.index("EF, rank-normalised map (ICCV25 recipe)")
    by_method = {r[0][2]: r for r in rows}
    assert by_method["SG²"][est][2] == by_method["SL²"][est][2] == \
        "bias-reduced rank EF and group cross-spectrum EF from the sample groups, delete-a-group jackknife errors"
    assert by_method["VG"][est][2].startswith("plug-in (deterministic map: exact")
    assert by_method["ArgLens"][est][2].startswith("plug-in (sampled, no halves: not corrected")
    for m, name in (("sg2", "SG²"), ("sl2", "SL²")):
        v, err = table[f"{m}_ef"].to_numpy(), table[f"{m}_ef_mc_error"].to_numpy()
        mean, se, mc = by_method[name][ef][2].split("\n")
        shown_mean, shown_se = (float(t) for t in mean.split(" ± "))
        assert shown_mean == pytest.approx(v.mean(), rel=1e-3)
        assert shown_se == pytest.approx(v.std(ddof=1) / 2, rel=0.01)           # se across 4 images
        assert mc.startswith("MC error ") and float(mc.split()[2]) == pytest.approx(np.sqrt(np.mean(err**2)),
                                                                                    rel=0.01)
    assert by_method["VG"][ef][2].endswith("MC error 0 (exact)")
    assert by_method["ArgLens"][ef][2].endswith("MC error not estimated")
    words = (run / "report.html").read_text(encoding="utf-8")
    for phrase in ("bias-reduced rank EF G·EF(m) − (G−1)·mean_g EF(m without group g)", "group cross spectrum",
                   "plug-in EF, which is exact", "delete-a-group jackknife over the map's G interleaved sample groups"):
        assert phrase in words.replace("&#x27;", "'"), phrase
    assert "not estimated yet" not in words


def test_plugin_bias_section_equals_the_table(run, page):
    table = pd.read_parquet(run / "metrics.parquet")
    head, *rows = page.tables["plugin-bias"]
    assert [c[2] for c in head][:4] == ["method", "measure", "plug-in mean", "corrected mean"]
    shown = {(r[0][2], r[1][2]): r for r in rows}
    assert {m for m, _ in shown} == {"SG²", "SL²"}                  # only the maps with halves
    for m, name in (("sg2", "SG²"), ("sl2", "SL²")):
        for key, measure in (("ef", "EF (rank)"), ("ef_unranked", "EF unranked"), ("gap", "ΔEF")):
            r = shown[name, measure]
            plug, corr = table[f"{m}_{key}_plugin"].to_numpy(), table[f"{m}_{key}"].to_numpy()
            assert float(r[2][2]) == pytest.approx(plug.mean(), rel=1e-3)
            assert float(r[3][2]) == pytest.approx(corr.mean(), rel=1e-3)
            d = plug - corr
            assert float(r[4][2].split(" ± ")[0]) == pytest.approx(d.mean(), rel=1e-2)
            assert float(r[5][2].rstrip(" %")) == pytest.approx(100 * d.mean() / abs(corr.mean()), rel=1e-2)
    # with two samples the unranked plug-in EF of SG² is biased upwards: noise adds high-frequency power
    assert float(shown["SG²", "EF unranked"][4][2].split(" ± ")[0]) > 0


def test_panels_are_a_page_wide_jpeg_with_a_colourbar_per_map(page):
    fig = page.figures["fig-panels"]
    info = json.loads(fig["data-figure"])
    assert info["images"] == [0, 1, 2] and info["methods"] == METHODS
    assert info["colourbars"] == len(info["images"]) * len(METHODS)
    (src,) = fig["images"]
    assert src.startswith("data:image/jpeg;base64,")
    img = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
    assert img.format == "JPEG" and img.width <= 1180
    assert [t.split("\n")[0] for t in info["titles"]] == [f"#{i} noise_{i}.png" for i in range(3)]


def test_every_session_is_listed_after_a_resume(run, page):
    sessions = json.loads((run / "sessions.json").read_text())
    rows = page.tables["sessions"][1:]
    assert len(sessions) == 2 and len(rows) == 2
    assert [int(r[2][2]) for r in rows] == [N_IMAGES, 0]          # the resume computed nothing
    assert [r[1][2] for r in rows] == [s["finished"] for s in sessions]


def test_per_image_table_has_grouped_headers_and_one_class_column(page):
    groups, subs, *rows = page.tables["rows-table"]
    assert sum(int(c[1]["colspan"]) for c in groups) == len(subs)
    names = [c[2] for c in groups]
    assert names == ["image", "prediction", "SpectralLens grid"]
    heads = [c[2] for c in subs]
    assert "class" not in heads and heads.count("target_name") == 1 and "sigma_opt_at_edge" in heads
    assert len(rows) == N_IMAGES and all(len(r) == len(subs) for r in rows)


def test_per_method_measures_are_images_by_methods_tables(run, page):
    table = pd.read_parquet(run / "metrics.parquet")
    for key in ("ef", "ef_unranked_mc_error", "gap_unranked", "samples"):
        head, *rows = page.tables[f"rows-{key}"]
        assert [c[2] for c in head] == ["#", "name", "VG", "SG²", "SL²", "ArgLens"]
        for (_, r), cells in zip(table.iterrows(), rows):
            assert int(cells[0][2]) == r["index"] and cells[1][2] == r["name"]
            for m, c in zip(METHODS, cells[2:]):
                v = r[f"{m}_{key}"]
                assert c[2] == "–" if not np.isfinite(v) else float(c[2]) == pytest.approx(v, rel=1e-3)


def test_top5_is_the_softmax_top5_with_class_names(run, page):
    table = pd.read_parquet(run / "metrics.parquet")
    _, subs, *rows = page.tables["rows-table"]
    col = [c[2] for c in subs].index("top5")
    for (_, r), cells in zip(table.iterrows(), rows):
        k, p = list(r["top5_classes"]), np.asarray(r["top5_probs"])
        assert sorted(k) == list(range(5)) and np.all(np.diff(p) <= 0)
        assert p.sum() == pytest.approx(1.0) and k[0] == r["target"] and p[0] == pytest.approx(r["confidence"])
        shown = cells[col][2].split("\n")
        assert [s.rsplit(" ", 1)[0] for s in shown] == [CLASSES[i] for i in k]
        assert [float(s.rsplit(" ", 1)[1]) for s in shown] == pytest.approx(p, abs=0.005)


def test_data_dictionary_lists_every_column_with_the_tables_description(run, page):
    described = json.loads(pq.read_schema(run / "metrics.parquet").metadata[b"spectral_xai.data_dictionary"])
    rows = {r[0][2].split("\n")[0]: (r[0][2].split("\n")[1:], r[1][2]) for r in page.tables["data-dictionary"][1:]}
    assert "<method>_ef_unranked" in rows and "top5_classes" in rows and "vg_ef_unranked" not in rows
    for c, d in described.items():                          # each per-method description once, with its methods
        key = next((k for k in rows if k.startswith("<method>_") and c.startswith(tuple(
            f"{m}_" for m in METHODS)) and c.split("_", 1)[1] == k.split("_", 1)[1]), c)
        assert rows[key][1] == d, c
    assert rows["<method>_ef"][0] == [", ".join(METHODS)]
    assert rows["<method>_deletion"][0] == [", ".join(m for m in METHODS if m != "al")]


def _constructed(deltas: dict[str, float], n=8, noise=0.1) -> tuple[pd.DataFrame, dict]:
    """Deletion AUCs 0.5 + delta + noise·z per method: z standardised (mean 0, sd 1), shuffled per method."""
    z = np.random.default_rng(0).standard_normal(n)
    z = (z - z.mean()) / z.std(ddof=1)
    cols = {f"{m}_deletion": 0.5 + d + noise * np.roll(z, k) for k, (m, d) in enumerate(deltas.items())}
    return pd.DataFrame(dict(status=["ok"] * n, **cols)), {m: cols[f"{m}_deletion"] for m in deltas}


def test_bold_only_where_welch_says_better():
    close, v = _constructed({"vg": 0.0, "sg2": -0.02})     # means 0.02 apart, noise 0.1, n = 8
    assert ttest_ind(v["sg2"], v["vg"], equal_var=False).pvalue >= 0.05
    assert welch_best(v, "min") == (None, {"vg": pytest.approx(ttest_ind(v["sg2"], v["vg"],
                                                                         equal_var=False).pvalue)})
    assert 'class="best"' not in _method_table(close, ["vg", "sg2"])
    far, v = _constructed({"vg": 0.0, "sg2": -0.3, "sl2": -0.05})
    best, p = welch_best(v, "min")
    assert best == "sg2" and max(p.values()) < 0.05
    html = Page(_method_table(far, ["vg", "sg2", "sl2"]))
    bold = [(r[0][2], c[2]) for r in html.tables["method-table"][1:] for c in r if c[1].get("class") == "best"]
    assert len(bold) == 1 and bold[0][0] == "SG²"
    mean, se = v["sg2"].mean(), v["sg2"].std(ddof=1) / np.sqrt(8)
    assert bold[0][1].startswith(f"{mean:.4g} ± {se:.2g}")


def test_report_rebuilds_from_the_run_directory(run):
    (run / "report.html").unlink()
    build_report(run)
    again = Page((run / "report.html").read_text(encoding="utf-8"))
    assert len(again.tables["sessions"]) == 3 and set(again.figures) == set(Page(
        (run / "report.html").read_text(encoding="utf-8")).figures)
