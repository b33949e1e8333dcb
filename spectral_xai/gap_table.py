"""The explanation-gap table of ICCV25 (Tables 1-2): EF and ΔEF = |EF(method) − EF(VanillaGrad)| per
method, mean ± std over images.

Methods: VanillaGrad, SmoothGrad (non-squared, σ = 0.1 in the model's normalised input space, 64
samples), IntegratedGradients (zero baseline) from this library; GuidedBackprop, DeepLift,
GuidedGradCam (last conv layer, the authors' "GradCAM") and LRP from Captum.  All explain the target
*logit* (Captum's convention).  Maps are channel-summed (signed) before EF.  A method that the model
does not support (e.g. LRP with custom modules) is reported with the reason instead of numbers.
"""
from __future__ import annotations

import torch

from .captum_methods import CAPTUM_METHODS, captum_attribution
from .comparison import predicted_classes
from .gradients import integrated_grad, smooth_grad, vanilla_grad
from .spectrum import expected_frequency

OURS = ("VanillaGrad", "SmoothGrad", "IntegratedGradients")


def method_maps(model, x, target, *, methods=OURS + CAPTUM_METHODS, input_scale: float = 1.0,
                sg_sigma: float = 0.1, sg_samples: int = 64, ig_steps: int = 32, seed: int = 0,
                batch_size: int | None = None) -> dict:
    """{method: (B, H, W) map or the reason it failed}.  ``input_scale``: d(normalised input)/dx, so the
    SmoothGrad std in x-space is sg_sigma / input_scale (EfficientNet-Lite0 on [0, 1] images: 255/128)."""
    out = {}
    for name in methods:
        try:
            if name == "VanillaGrad":
                m = vanilla_grad(model, x, target, output="logit", batch_size=batch_size)
            elif name == "SmoothGrad":
                m = smooth_grad(model, x, sg_sigma / input_scale, target, n_samples=sg_samples, squared=False,
                                output="logit", seed=seed, batch_size=batch_size)
            elif name == "IntegratedGradients":
                m = integrated_grad(model, x, target, n_steps=ig_steps, output="logit", batch_size=batch_size)
            else:
                m = captum_attribution(name, model, x, target).sum(dim=1)
            out[name] = m.float()
        except Exception as err:  # an unsupported model/method pair is a table entry, not a crash
            out[name] = f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"
    return out


def gap_table(model, x, target=None, *, rank_normalize: bool = True, reduction: str = "mean",
              exclude_dc: bool = False, **map_options):
    """(pandas DataFrame, markdown string): per method EF and ΔEF (mean ± std over images) and notes.

    ``target``: classes to explain (default: the model's arg-max on x).  ``map_options``: see
    :func:`method_maps`.  EF options as :func:`spectral_xai.expected_frequency`.
    """
    import pandas as pd

    if target is None:
        target = predicted_classes(model, x, map_options.get("batch_size"))
    maps = method_maps(model, x, target, **map_options)
    ef_opts = dict(rank_normalize=rank_normalize, reduction=reduction, exclude_dc=exclude_dc)
    ref = maps.get("VanillaGrad")
    ef_ref = expected_frequency(ref, **ef_opts) if isinstance(ref, torch.Tensor) else None
    has_relu = any(type(mod) is torch.nn.ReLU for mod in model.modules())
    rows = []
    for name, m in maps.items():
        if isinstance(m, str):
            rows.append({"method": name, "EF mean": None, "EF std": None, "ΔEF mean": None, "ΔEF std": None,
                         "note": f"not supported: {m}"})
            continue
        ef = expected_frequency(m, **ef_opts)
        note = ""
        if name in ("GuidedBackprop", "GuidedGradCam") and not has_relu:
            note = "the model has no nn.ReLU: Captum's guided backprop then passes plain gradients"
        row = {"method": name, "EF mean": float(ef.mean()), "EF std": float(ef.std(correction=0)), "note": note}
        if ef_ref is not None:
            gap = (ef - ef_ref).abs()
            row.update({"ΔEF mean": float(gap.mean()), "ΔEF std": float(gap.std(correction=0))})
        rows.append(row)
    df = pd.DataFrame(rows, columns=["method", "EF mean", "EF std", "ΔEF mean", "ΔEF std", "note"])
    return df, to_markdown(df)


def to_markdown(df) -> str:
    """A markdown table of the gap table, numbers as mean ± std."""
    lines = ["| method | EF | ΔEF | note |", "|---|---|---|---|"]
    for _, r in df.iterrows():
        ef = "" if r["EF mean"] is None or r["EF mean"] != r["EF mean"] else f"{r['EF mean']:.4g} ± {r['EF std']:.2g}"
        gap = "" if r["ΔEF mean"] is None or r["ΔEF mean"] != r["ΔEF mean"] else \
            f"{r['ΔEF mean']:.3g} ± {r['ΔEF std']:.2g}"
        lines.append(f"| {r['method']} | {ef} | {gap} | {r['note']} |")
    return "\n".join(lines)
