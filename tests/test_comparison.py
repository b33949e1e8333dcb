"""The ECCV24 Table 1 runner on a small CNN."""
import torch

from spectral_xai.comparison import comparison_table

from helpers import small_cnn


def test_comparison_table_runs_and_marks_the_best(images):
    model = small_cnn()
    labels = model.eval()(images).argmax(1)
    opts = {"sg": {"n_samples": 2}, "sl2": {"n_samples": 1}, "rise": {"n_masks": 32}, "occlusion": {"window": 4}}
    df, md = comparison_table(model, images, labels, methods=("sg", "sl2", "rise", "occlusion"),
                              method_options=opts, baseline="black")
    assert list(df["method"]) == ["SG", "SL²", "RISE", "Occlusion"]
    for col in ("deletion_auc", "insertion_auc"):
        assert df[f"{col} tied_best"].any()
        assert bool(((df[f"{col} mean"] >= 0) & (df[f"{col} mean"] <= 1)).all())
    best_del = df.loc[df["deletion_auc mean"].idxmin()]
    assert best_del["deletion_auc tied_best"]
    assert md.startswith("| method | deletion AUC ↓ | insertion AUC ↑ | accuracy AUC del / ins |")
    assert "accuracy_auc" in " ".join(df.columns) and (df["explain_s"] > 0).all()
    assert torch.is_tensor(images)
