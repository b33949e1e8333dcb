"""The report's HTML and figure plumbing: its CSS, figures embedded as data URIs, number formats."""
from __future__ import annotations

import base64
import html
import io
import json

import numpy as np

from ...viz import pyplot

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1180px;
color:#222;line-height:1.45;padding:0 16px}
h1{font-size:1.6em;margin-bottom:0}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;margin-top:4px}table{border-collapse:collapse;font-size:0.88em;margin:8px 0}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right;white-space:nowrap}th{background:#f4f4f4}
td.l,th.l{text-align:left}
td.best{font-weight:bold;background:#eef7ee}figure{margin:12px 0}figcaption{color:#555;font-size:0.9em}
img{max-width:100%;height:auto}.kv td{text-align:left;white-space:normal}.note{color:#666;font-size:0.9em}
.scroll{overflow-x:auto}
tr.groups th{background:#e8ecf2;text-align:center}td.top5{font-size:0.82em;line-height:1.25}
td.wrap{white-space:normal}h3{margin-bottom:4px}#method-table th{white-space:normal}
#method-table{width:100%;font-size:0.8em}#method-table td{white-space:normal}
#method-table td.est{min-width:12em;max-width:16em}
.warn{border-left:4px solid #d9822b;background:#fdf6ec;padding:4px 12px;margin:12px 0}.warn li{margin:4px 0}
#rows-table{font-size:0.78em}#rows-table th{white-space:normal}
#rows-table td.l{white-space:normal;overflow-wrap:anywhere}details{margin:6px 0}summary{cursor:pointer;color:#333}table.per-method{font-size:0.82em}
#data-dictionary td{vertical-align:top}
"""


PAGE_WIDTH_IN = 11.4                                  # figures are drawn at most this wide (1140 px at 100 dpi)
DPI = 100


def _encoded(fig, fmt: str) -> str:
    """The figure as a base64 PNG, or JPEG (quality 80) for image-like panels."""
    buf = io.BytesIO()
    fig.tight_layout()
    extra = {"pil_kwargs": {"quality": 80, "optimize": True}} if fmt == "jpeg" else {}
    fig.savefig(buf, format=fmt, dpi=DPI, **extra)
    pyplot().close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def figure(fig_id: str, fig, caption: str, fmt: str = "png", data: dict | None = None) -> str:
    """``<figure>`` with the embedded image; ``data`` (what the figure shows) goes into ``data-figure``."""
    attr = f" data-figure='{html.escape(json.dumps(data), quote=True)}'" if data is not None else ""
    return (f'<figure id="fig-{fig_id}"{attr}><img alt="{html.escape(caption)}" '
            f'src="data:image/{fmt};base64,{_encoded(fig, fmt)}"><figcaption>{html.escape(caption)}</figcaption>'
            "</figure>")


def missing(fig_id: str, why: str) -> str:
    return f'<figure id="fig-{fig_id}"><p class="note">{html.escape(why)}</p></figure>'


def why_missing(manifest, measure: str) -> str:
    if measure in manifest["config"]["measures"]:
        return f"No {measure} values: no image was audited successfully (see Failed images)."
    return f"{measure} was not measured (add '{measure}' to --measures)."


def fmt(v, digits=4) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    a = abs(float(v))
    return f"{float(v):.{digits}g}" if (a >= 1e-3 or a == 0) else f"{float(v):.3e}"


def class_name(classes, t) -> str:
    if classes is not None and 0 <= int(t) < len(classes):
        return classes[int(t)]
    return f"class {int(t)}"


# The method table's columns (key, title, "min"/"max" when Welch-tested) and each EF column's per-image error.


def kv(d: dict) -> str:
    return "<table class='kv'>" + "".join(
        f"<tr><th class='l'>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in d.items()) \
        + "</table>"


def pct(v) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{100 * v:+.3g} %"
