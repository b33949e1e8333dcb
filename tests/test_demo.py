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
