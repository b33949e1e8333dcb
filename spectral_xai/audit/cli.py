"""``spectral-xai audit`` and ``spectral-xai report``: argparse front-ends of :func:`run_audit` and
:func:`build_report`.  Precedence: built-in defaults < ``--config run.toml`` < flags on the command line."""
from __future__ import annotations

import argparse
from dataclasses import fields

from .config import DTYPES, MAP_DTYPES, MEASURES, NORMALIZATIONS, AuditConfig, load_toml

S = argparse.SUPPRESS


def _names(text: str) -> list[str]:
    return [t for t in text.replace(" ", ",").split(",") if t]


def _floats(text: str) -> list[float]:
    """"0,0.1,0.5" or "start:stop:count" (inclusive linspace)."""
    if text.count(":") == 2:
        a, b, n = text.split(":")
        n = int(n)
        if n < 1:
            raise argparse.ArgumentTypeError("count must be >= 1")
        return [round(float(a) + (float(b) - float(a)) * i / max(n - 1, 1), 12) for i in range(n)]
    try:
        return [float(t) for t in _names(text)]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas or start:stop:count: {err}") from err


def add_audit_parser(sub) -> argparse.ArgumentParser:
    d = AuditConfig()
    p = sub.add_parser(
        "audit", help="explain every image of a folder or built-in dataset; write maps, a table and a report",
        description="Audit a model's gradient explanations over a dataset. Writes RUN_DIR/manifest.json, "
                    "shards/*.safetensors (maps), metrics.parquet (one row per image) and report.html. "
                    "Resumable (--resume), and under torchrun every process takes a share of the shards.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter, argument_default=S)
    p.add_argument("data", nargs="?", help=f"image folder (recursive), 'skimage' or 'fashion-mnist[:train]' "
                                           f"(default {d.data})")
    p.add_argument("--out", "-o", help=f"run directory (default {d.out})")
    p.add_argument("--config", help="TOML file with the same options (an [audit] table or top-level keys)")
    g = p.add_argument_group("model and preprocessing")
    g.add_argument("--model", help=f"'efficientnet-lite0', 'package.module:factory', 'file.py:factory' or a "
                                   f"torch.export .pt2 or TorchScript file (default {d.model})")
    g.add_argument("--weights", help="a state dict to load into the model (torch.load, weights_only)")
    g.add_argument("--size", type=int, help=f"square input size in pixels (default {d.size})")
    g.add_argument("--normalize", choices=list(NORMALIZATIONS), help="normalisation put in front of the model; "
                                                                    "maps are always w.r.t. the image in [0, 1]")
    g.add_argument("--mean", type=_floats, help="per-channel mean (instead of --normalize)")
    g.add_argument("--std", type=_floats, help="per-channel std (instead of --normalize)")
    g.add_argument("--grayscale", action="store_true", help="feed one channel instead of RGB")
    g.add_argument("--labels", choices=["none", "folders"], help="labels from class sub-folder names")
    g.add_argument("--target", choices=["pred", "label"], help="explain the predicted class or the label")
    g = p.add_argument_group("methods and measures")
    g.add_argument("--methods", type=_names, help="comma-separated: vg vg2 sg sg2 ig ig2 xig xig2 sl2 al sg2opt "
                                                  f"rise occlusion (default {','.join(d.methods)})")
    g.add_argument("--measures", type=_names, help=f"comma-separated: {' '.join(MEASURES)} (default all)")
    g.add_argument("--sigmas", type=_floats, help="SpectralLens σ grid, '0:1:11' or a list (default 0:1:11)")
    g.add_argument("--samples", type=int, help=f"samples per σ (SpectralLens) and for SG/SG² (default {d.samples})")
    g.add_argument("--prior", choices=["uniform", "beta", "power"], help="SpectralLens prior over σ")
    g.add_argument("--noise-scale", type=float, dest="noise_scale", help=f"SpectralLens noise scale s "
                                                                        f"(default {d.noise_scale})")
    g.add_argument("--sg-sigma", type=float, dest="sg_sigma", help=f"SG/SG² additive std (default {d.sg_sigma})")
    g.add_argument("--ig-steps", type=int, dest="ig_steps", help=f"IG quadrature nodes (default {d.ig_steps})")
    g.add_argument("--rise-masks", type=int, dest="rise_masks", help=f"RISE masks (default {d.rise_masks})")
    g.add_argument("--output", choices=["log_softmax", "logit", "prob"], help="explained output of the target")
    g.add_argument("--deletion-baseline", choices=["blur", "black"], dest="deletion_baseline")
    g.add_argument("--erosion", type=int, help="erosion window of removed pixels (odd)")
    g.add_argument("--fractions", type=int, help=f"removal fractions 0..1 (default {d.fractions})")
    g = p.add_argument_group("output")
    g.add_argument("--keep-maps", type=_names, dest="keep_maps", help="methods whose maps are stored (default all)")
    g.add_argument("--maps-dtype", choices=list(MAP_DTYPES), dest="maps_dtype", help="stored maps' dtype")
    g.add_argument("--panels", type=int, help=f"images shown with their maps in the report (default {d.panels})")
    g.add_argument("--shard-size", type=int, dest="shard_size", help=f"images per shard (default {d.shard_size})")
    g.add_argument("--no-report", action="store_false", dest="report", help="skip report.html")
    g = p.add_argument_group("execution")
    g.add_argument("--seed", type=int, help="noise seed (same seed => same numbers)")
    g.add_argument("--device", help="auto, cpu or cuda (under torchrun: each process its LOCAL_RANK GPU)")
    g.add_argument("--dtype", choices=list(DTYPES), help="model and input dtype")
    g.add_argument("--autocast", choices=["bfloat16", "float16"], help="fast path: gradient passes under "
                   "autocast (check agreement with float32 on your model first)")
    g.add_argument("--channels-last", action="store_true", dest="channels_last",
                   help="fast path: model and batches in channels_last")
    g.add_argument("--compile", choices=["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs",
                                         "cudagraphs"], help="fast path: torch.compile the model's passes "
                                                             "(reduce-overhead = CUDA graphs)")
    g.add_argument("--batch-size", type=int, dest="batch_size", help="model rows per pass (default: by memory)")
    g.add_argument("--num-workers", type=int, dest="num_workers", help="DataLoader workers (default 2 for folders)")
    g.add_argument("--limit", type=int, help="only the first N images")
    g.add_argument("--resume", action="store_true", help="continue the run in --out, skipping finished shards")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bar or messages")
    return p


def config_from_args(args: argparse.Namespace) -> AuditConfig:
    """Defaults, then the config file, then the flags given on the command line."""
    given = {k: v for k, v in vars(args).items() if k in {f.name for f in fields(AuditConfig)}}
    values = load_toml(given["config"]) if given.get("config") else {}
    values.update(given)
    return AuditConfig(**values).validate()


def add_report_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("report", help="rebuild RUN_DIR/report.html from a finished audit",
                       description="Rebuild the self-contained HTML report of an audit run directory.")
    p.add_argument("run_dir", help="the audit's --out directory")
    return p
