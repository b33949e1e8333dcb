"""The demo runs end to end on the embedded default: method figures, the audit of the bundled photos (headless)."""
import matplotlib

matplotlib.use("Agg")


def test_method_figures_on_efficientnet_lite0(tmp_path, capsys):
    from spectral_xai.demo import method_figures

    method_figures(tmp_path, size=64, n_samples=2, lens_samples=1)
    out = capsys.readouterr().out
    assert "photo 1: Egyptian cat" in out and "photo 3: drilling platform" in out  # real ImageNet weights
    assert "noise cutoff s* =" in out
    for name in ("explanations.png", "spectra.png", "spectral_lens.png", "cs_curves.png", "entropy.png",
                 "bandpass.png"):
        assert (tmp_path / name).stat().st_size > 1000


def test_demo_audits_the_bundled_photos(tmp_path, capsys):
    from spectral_xai.demo import run_demo

    run_dir = run_demo(tmp_path, size=32, n_samples=1)
    out = capsys.readouterr().out
    assert "demo audit of 8 photos" in out and "chelsea" in out
    html = (run_dir / "report.html").read_text()
    assert html.count(";base64,") == 5 and "SL²" in html
    run_demo(tmp_path, size=32, n_samples=1)                    # a finished demo is resumed, not redone
    assert "0 already done" not in capsys.readouterr().out


def test_demo_prints_the_plug_in_bias_of_the_sampled_maps(capsys):
    import pandas as pd

    from spectral_xai.audit import AuditConfig
    from spectral_xai.demo import print_plugin_bias

    cfg = AuditConfig(methods=["vg", "sg2"], samples=4)
    table = pd.DataFrame({"status": ["ok", "ok"], "vg_ef": [0.1, 0.2], "vg_ef_plugin": [0.1, 0.2],
                          "sg2_ef": [0.2, 0.4], "sg2_ef_plugin": [0.25, 0.5], "sg2_ef_unranked": [0.1, 0.1],
                          "sg2_ef_unranked_plugin": [0.2, 0.3]})
    print_plugin_bias(table, cfg)
    out = capsys.readouterr().out.strip().splitlines()
    # means 0.375 vs 0.3 (+25 %) and 0.25 vs 0.1 (+150 %); VG is deterministic: no line
    assert out == ["plug-in vs corrected, SG²: EF 0.375 vs 0.3 (+25.0 %); unranked EF 0.25 vs 0.1 (+150.0 %)"]
    print_plugin_bias(table, AuditConfig(methods=["vg", "sg2"], samples=1))
    assert "not measured (one sample per σ" in capsys.readouterr().out
