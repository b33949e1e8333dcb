"""Figures are produced (headless) and the demo runs end to end on the embedded default."""
import matplotlib

matplotlib.use("Agg")


import spectral_xai as sx  # noqa: E402
from spectral_xai import viz  # noqa: E402

from conftest import small_cnn  # noqa: E402


def test_figures_are_written(tmp_path, images):
    model = small_cnn()
    lens = sx.spectral_lens(model, images, n_samples=2, return_per_sigma=True)
    fig = viz.spectral_lens_figure(images, lens, path=tmp_path / "sl.png")
    assert len(fig.axes) == 4 * 3 + 4 and (tmp_path / "sl.png").stat().st_size > 1000
    curves, _ = sx.cs_curves(lens.per_sigma.double(), lens.sigmas)
    viz.cs_curves_figure(lens.sigmas, curves, path=tmp_path / "cs.png")
    cut = sx.noise_cutoff(model, images, [0.0, 0.5, 1.0], n_samples=2)
    viz.entropy_figure(cut, path=tmp_path / "h.png")
    viz.bandpass_figure(path=tmp_path / "bp.png")
    viz.maps_figure(images, {"VG": sx.vanilla_grad(model, images)}, path=tmp_path / "maps.png")
    viz.spectra_figure({"VG": sx.vanilla_grad(model, images), "SG": sx.smooth_grad(model, images, 0.1, n_samples=2)},
                       path=tmp_path / "spec.png")
    viz.ef_vs_beta_figure([0.5, 2.0, None], [0.1, 0.2, 0.3], [0.01, 0.01, 0.02], path=tmp_path / "ef.png")
    for name in ("cs.png", "h.png", "bp.png", "maps.png", "spec.png", "ef.png"):
        assert (tmp_path / name).stat().st_size > 1000


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
