"""The ECCV24 Table 1 comparison: deletion and insertion AUC of many methods on labelled images,
mean ± std over images, with Welch t-tests marking the methods tied with the best (p >= alpha)."""
from __future__ import annotations

import time

import numpy as np
import torch

from .methods import explain, label
from .metrics import deletion_insertion
from .model_calls import model_scope, prepare_inference, resolve_targets

TABLE1_METHODS = ("occlusion", "rise", "sg", "xig", "ig", "sg2", "xig2", "ig2", "sg2opt", "sl2")


def comparison_table(model, x, labels=None, *, methods=TABLE1_METHODS, method_options=None, baseline="blur",
                     erosion: int = 1, alpha: float = 0.05, batch_size=None):
    """(pandas DataFrame, markdown): per method, deletion AUC (↓) and insertion AUC (↑) as mean ± std over
    images, '*' where a Welch t-test cannot tell the method from the best (p >= alpha), the top-1
    accuracy AUCs when ``labels`` are given, and the seconds spent explaining.  The explained class is
    the label when given, else the model's top-1.  x (B, C, H, W); labels (B,) or None."""
    import pandas as pd
    method_options = method_options or {}
    target = torch.as_tensor(labels, device=x.device) if labels is not None else predicted_classes(model, x, batch_size)
    per_method = {}
    for name in methods:
        t0 = time.perf_counter()
        maps = explain(name, model, x, target, **method_options.get(name, {}))
        seconds = time.perf_counter() - t0
        res = deletion_insertion(model, x, maps, target, baseline=baseline, erosion=erosion, labels=labels,
                                 batch_size=batch_size)
        per_method[name] = (res, seconds)
    p_best = {}
    for col, rule in (("deletion_auc", "min"), ("insertion_auc", "max")):
        values = {n: r[col].double().cpu().numpy() for n, (r, _) in per_method.items()}
        p_best[col] = (best_by_mean(values, rule), welch_best(values, rule, alpha)[1])
    rows = []
    for name, (res, seconds) in per_method.items():
        row = {"method": label(name), "key": name, "explain_s": seconds}
        for col in ("deletion_auc", "insertion_auc"):
            v = res[col].double().cpu()
            top, p = p_best[col]
            tied = name == top or bool(p.get(name, float("nan")) >= alpha)
            row.update({f"{col} mean": float(v.mean()), f"{col} std": float(v.std(correction=0)),
                        f"{col} tied_best": tied})
        if labels is not None:
            for col in ("deletion", "insertion"):
                acc = res[f"{col}_accuracy"].mean(0)
                row[f"{col} accuracy_auc"] = float(torch.trapezoid(acc, res["removed_fraction"].mean(0)))
        rows.append(row)
    df = pd.DataFrame(rows)
    acc_header = " accuracy AUC del / ins |" if labels is not None else ""
    lines = ["| method | deletion AUC ↓ | insertion AUC ↑ |" + acc_header,
             "|---|---|---|" + ("---|" if labels is not None else "")]
    for r in rows:
        cells = [f"{r[c + ' mean']:.3f} ± {r[c + ' std']:.3f}{' *' if r[c + ' tied_best'] else ''}"
                 for c in ("deletion_auc", "insertion_auc")]
        extra = f" {r['deletion accuracy_auc']:.3f} / {r['insertion accuracy_auc']:.3f} |" if labels is not None else ""
        lines.append(f"| {r['method']} | {cells[0]} | {cells[1]} |" + extra)
    lines.append(f"\n`*` = best, or tied with the best (Welch t-test p ≥ {alpha}); "
                 f"baseline {baseline}, erosion {erosion}.")
    return df, "\n".join(lines)


def predicted_classes(model, x: torch.Tensor, batch_size=None) -> torch.Tensor:
    """The model's top-1 classes (B,) for x, in eval mode (restored after), in chunks."""
    with model_scope(model):
        xm, rows = prepare_inference(model, x, batch_size)
        return resolve_targets(model, xm, None, rows)


def best_by_mean(values: dict, rule: str) -> str:
    """The key whose values have the lowest (``rule="min"``) or highest ("max") mean."""
    means = {m: float(np.asarray(v, dtype=float).mean()) for m, v in values.items()}
    return (min if rule == "min" else max)(means, key=means.get)


def welch_best(values: dict[str, np.ndarray], rule: str, alpha: float = 0.05) -> tuple[str | None, dict]:
    """The method whose mean is best under ``rule`` ("min" or "max") when a Welch t-test says it is better
    than every other method (p < alpha), else None; and the p-value against each other method."""
    from scipy.stats import ttest_ind

    vals = {m: np.asarray(v, dtype=float) for m, v in values.items() if len(v) > 0}
    if len(vals) < 2:
        return None, {}
    top = best_by_mean(vals, rule)
    p = {}
    for m, v in vals.items():
        if m != top:
            p[m] = float(ttest_ind(vals[top], v, equal_var=False).pvalue) if min(len(v), len(vals[top])) > 1 \
                else float("nan")
    better = all(np.isfinite(q) and q < alpha for q in p.values())
    return (top if better else None), p
