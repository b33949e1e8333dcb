"""The ICCV25 gap table on a small ReLU CNN (Captum methods included)."""
import math
import warnings

import torch

from spectral_xai.gap_table import gap_table
from spectral_xai.zoo import fashion_cnn


def test_gap_table_rows_and_numbers():
    torch.manual_seed(0)
    model = fashion_cnn()
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df, md = gap_table(model, x, sg_samples=8, ig_steps=8, rank_normalize=False)
    assert list(df["method"]) == ["VanillaGrad", "SmoothGrad", "IntegratedGradients", "GuidedBackprop",
                                  "DeepLift", "GuidedGradCam", "LRP"]
    vg = df.set_index("method").loc["VanillaGrad"]
    assert vg["ΔEF mean"] == 0.0 and 0 < vg["EF mean"] < 1
    supported = df[df["note"].str.startswith("not supported") == False]  # noqa: E712
    assert len(supported) >= 6
    assert all(math.isfinite(v) and 0 <= v <= 1 for v in supported["EF mean"])
    # SmoothGrad is the gradient of a smoothed model: smoother (lower EF) than VanillaGrad
    assert df.set_index("method").loc["SmoothGrad", "EF mean"] < vg["EF mean"]
    assert md.startswith("| method | EF | ΔEF | note |") and "GuidedGradCam" in md
