"""``spectral-xai audit`` and ``spectral-xai report``: argparse front-ends of :func:`run_audit` and
:func:`build_report`.  Precedence: built-in defaults < ``--config run.toml`` < flags on the command line."""
from __future__ import annotations

import argparse
from dataclasses import fields

from ..fastpath import COMPILE_MODES
from ..options import OUTPUTS, PRIORS
from ..methods import METHOD_NAMES
from .config import (AUTOCAST_DTYPES, DELETION_BASELINES, DTYPES, LABEL_SOURCES, MAP_DTYPES, MEASURES,
                     NORMALIZATIONS, TARGETS, AuditConfig, load_toml)
from .errors import fail
from .rundir import MANIFEST, run_dir_config

S = argparse.SUPPRESS


def _names(text: str) -> list[str]:
    return [t for t in text.replace(" ", ",").split(",") if t]


def _floats(text: str) -> list[float]:
    """"0,0.1,0.5" or "start:stop:count" (inclusive linspace)."""
    try:
        if text.count(":") == 2:
            a, b, n = text.split(":")
            n = int(n)
            if n < 1:
                raise ValueError("count must be >= 1")
            return [round(float(a) + (float(b) - float(a)) * i / max(n - 1, 1), 12) for i in range(n)]
        values = [float(t) for t in _names(text)]
        if not values:
            raise ValueError("no numbers")
        return values
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, or start:stop:count with an "
                                         f"integer count (e.g. 0:1:11); got {text!r} ({err})") from None


def method_summaries() -> dict[str, str]:
    """Every method of the table of methods by name with its one-line summary."""
    from ..methods import METHODS

    return {name: spec.summary for name, spec in METHODS.items()}


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Adds "(default: X)" from AuditConfig's defaults to every option that does not say its default."""

    def _get_help_string(self, action):
        text = action.help or ""
        defaults = AuditConfig()
        if "default" in text or not hasattr(defaults, action.dest) or action.nargs == 0:
            return text
        value = getattr(defaults, action.dest)
        if value is None or isinstance(value, bool):
            return text
        shown = ",".join(map(str, value)) if isinstance(value, list) else value
        return f"{text} (default: {shown})"


EXAMPLES = """examples:
  spectral-xai audit photos/ --out run1                     # EfficientNet-Lite0, the default methods
  spectral-xai audit photos/ --out run1 --size 224 --methods vg,sg2,sl2 --samples 16
  spectral-xai audit pets/ --out run2 --labels folders --target label   # folders named like ImageNet classes
  spectral-xai audit data/ --model mynet.py:build --weights w.pt --normalize imagenet --out run3
  spectral-xai audit hf:saved_ds/ --split test --model hf_checkpoint/ --out run4   # save_to_disk + save_pretrained
  spectral-xai audit hf:parquet_dir/ --image-column img --label-column fine_label --model timm:resnet18 \
      --weights resnet18.pth --out run5                     # timm architecture, your weights (never downloaded)
  spectral-xai audit --out run1 --resume                    # continue with the run's own options
  spectral-xai audit --config run.toml                      # the same options from a TOML file
  torchrun --nproc_per_node=8 -m spectral_xai audit photos/ --out run1
  spectral-xai methods                                      # the method names and what they compute
"""


def _hf_options(p: argparse.ArgumentParser) -> None:
    """The audit's Hugging Face datasets (hf:PATH) options."""
    g = p.add_argument_group("Hugging Face datasets (hf:PATH)")
    g.add_argument("--split", help="the split of a DatasetDict (default: 'train', or its only split)")
    g.add_argument("--image-column", dest="image_column", help="the image column (default: image, img or "
                                                               "pixel_values, else the first Image column)")
    g.add_argument("--label-column", dest="label_column", help="the label column, class indices of the model; "
                   "a ClassLabel's names fill label_name (default: label, labels or fine_label, if present)")


def _model_options(p: argparse.ArgumentParser) -> None:
    """The audit's model and preprocessing options."""
    g = p.add_argument_group("model and preprocessing")
    g.add_argument("--model", help="'efficientnet-lite0' (ImageNet; the default), 'fashion-cnn' (28 px, trained "
                                  "once on Fashion-MNIST and cached; the default for fashion-mnist), "
                                  "'package.module:factory', 'file.py:factory', a "
                                  "torch.export .pt2 or TorchScript file, a local Hugging Face model directory "
                                  "(save_pretrained; its id2label names the classes) or 'timm:NAME' with --weights")
    g.add_argument("--weights", help="a state dict to load into the model (torch.load, weights_only); with "
                                    "timm:NAME its classifier gives the number of classes")
    g.add_argument("--size", type=int, help="square input size in pixels (default: the model's declared size - "
                                           "a Hugging Face preprocessor_config.json or config.json, timm's "
                                           "pretrained_cfg - else 224)")
    g.add_argument("--normalize", choices=list(NORMALIZATIONS), help="normalisation put in front of the model; "
                   "'auto': the one a Hugging Face directory's preprocessor_config.json or timm's "
                   "pretrained_cfg declares, else none; maps are always w.r.t. the image in [0, 1]")
    g.add_argument("--mean", type=_floats, help="per-channel mean (instead of --normalize)")
    g.add_argument("--std", type=_floats, help="per-channel std (instead of --normalize)")
    g.add_argument("--grayscale", action="store_true", help="feed one channel instead of RGB")
    g.add_argument("--labels", choices=LABEL_SOURCES, help="labels from class sub-folders, named like the "
                   "model's classes (e.g. 'tabby', 'golden_retriever' for EfficientNet-Lite0) or class indices")
    g.add_argument("--labels-are-model-indices", action="store_true", dest="labels_are_model_indices",
                   help="take the dataset's labels as the model's class indices even when the model's class names "
                        "differ from the dataset's (by default such labels are refused or dropped, not mapped)")
    g.add_argument("--target", choices=TARGETS, help="explain the predicted class or the label")


def _method_options(p: argparse.ArgumentParser) -> None:
    """The audit's methods, sampling and measures options."""
    g = p.add_argument_group("methods and measures")
    g.add_argument("--methods", type=_names, help=f"comma-separated: {' '.join(METHOD_NAMES)} (see `spectral-xai "
                                                  "methods`)")
    g.add_argument("--measures", type=_names, help=f"comma-separated: {' '.join(MEASURES)}")
    g.add_argument("--sigmas", type=_floats, help="SpectralLens σ grid, 'start:stop:count' or a list")
    g.add_argument("--samples", type=int, help="samples per σ (SpectralLens) and for SG/SG²")
    g.add_argument("--target-error", type=float, dest="target_error",
                   help="stop each image's SG/SG²/SL² once its relative Monte Carlo error ||se||/||map|| is <= E "
                        "(0 < E < 1), checked every 8 samples from 8 on; <m>_samples then records the samples used")
    g.add_argument("--max-samples", type=int, dest="max_samples",
                   help="cap per image (per σ) with --target-error (default: --samples)")
    g.add_argument("--prior", choices=PRIORS, help="SpectralLens prior over σ")
    g.add_argument("--noise-scale", type=float, dest="noise_scale", help="SpectralLens noise scale s")
    g.add_argument("--sg-sigma", type=float, dest="sg_sigma", help="SG/SG² additive std")
    g.add_argument("--ig-steps", type=int, dest="ig_steps", help="IG quadrature nodes")
    g.add_argument("--rise-masks", type=int, dest="rise_masks", help="RISE masks")
    g.add_argument("--output", choices=OUTPUTS, help="explained output of the target")
    g.add_argument("--deletion-baseline", choices=DELETION_BASELINES, dest="deletion_baseline",
                   help="what removed pixels become in deletion/insertion: a blurred copy or black")
    g.add_argument("--erosion", type=int, help="erosion window of removed pixels (odd)")
    g.add_argument("--fractions", type=int, help="removal fractions 0..1")
    g.add_argument("--gap-exclude-dc", action="store_true", dest="gap_exclude_dc",
                   help="ΔEF columns (<m>_gap, <m>_gap_unranked) from EFs without the DC ring (rank "
                        "normalisation puts most power there; the unranked ΔEF is <m>_gap_unranked)")
    g.add_argument("--auc-mc-error", action="store_true", dest="auc_mc_error",
                   help="also the deletion/insertion AUC of each half of the samples' maps (SG, SG², SL², SG²_opt): "
                        "<m>_deletion_mc_error, <m>_insertion_mc_error = |AUC(A) − AUC(B)|/2; triples those "
                        "methods' deletion/insertion forward passes (default methods and 21 fractions: 168 -> 420 "
                        "per image, 1.7x the audit's time measured on EfficientNet-Lite0 at 64 px, 8 samples)")


def _output_options(p: argparse.ArgumentParser) -> None:
    """The audit's what is stored options."""
    g = p.add_argument_group("output")
    g.add_argument("--keep-maps", type=_names, dest="keep_maps", help="methods whose maps are stored (default: all)")
    g.add_argument("--maps-dtype", choices=list(MAP_DTYPES), dest="maps_dtype", help="stored maps' dtype")
    g.add_argument("--panels", type=int, help="images shown with their maps in the report")
    g.add_argument("--shard-size", type=int, dest="shard_size", help="images per shard")
    g.add_argument("--no-report", action="store_false", dest="report", help="skip report.html")


def _execution_options(p: argparse.ArgumentParser) -> None:
    """The audit's how it runs options."""
    g = p.add_argument_group("execution")
    g.add_argument("--seed", type=int, help="noise seed (same seed => same numbers)")
    g.add_argument("--device", help="auto, cpu or cuda (under torchrun: each process its LOCAL_RANK GPU)")
    g.add_argument("--dtype", choices=list(DTYPES), help="model and input dtype")
    g.add_argument("--autocast", choices=AUTOCAST_DTYPES, help="fast path: gradient passes under "
                   "autocast (check agreement with float32 on your model first)")
    g.add_argument("--channels-last", action="store_true", dest="channels_last",
                   help="fast path: model and batches in channels_last")
    g.add_argument("--compile", choices=COMPILE_MODES, help="fast path: torch.compile the model's passes "
                                                             "(reduce-overhead = CUDA graphs)")
    g.add_argument("--batch-size", type=int, dest="batch_size", help="model rows per pass (default: by memory)")
    g.add_argument("--num-workers", type=int, dest="num_workers", help="DataLoader workers (default: 2 for folders, 0 for built-ins)")
    g.add_argument("--limit", type=int, help="only the first N images")
    g.add_argument("--resume", action="store_true", help="continue the run in --out with its recorded options, "
                   "skipping finished shards; options given must agree with the run's")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bar, progress lines or messages")


def add_audit_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "audit", help="explain every image of a folder or built-in dataset; write maps, a table and a report",
        description="Audit a model's gradient explanations over a dataset. Writes RUN_DIR/manifest.json, "
                    "shards/*.safetensors (maps), metrics.parquet (one row per image) and report.html. "
                    "Resumable (--resume), and under torchrun every process takes a share of the shards.",
        epilog=EXAMPLES, formatter_class=_HelpFormatter, argument_default=S)
    p.add_argument("data", nargs="?", help="image folder (recursive), 'skimage', 'fashion-mnist[:train]' or "
                   "'hf:PATH' (a Hugging Face dataset saved with save_to_disk, or a folder of parquet files or "
                   "of images, read with the 'datasets' package)")
    p.add_argument("--out", "-o", help="run directory")
    p.add_argument("--config", help="TOML file with the same options (an [audit] table or top-level keys)")
    _hf_options(p)
    _model_options(p)
    _method_options(p)
    _output_options(p)
    _execution_options(p)
    return p


def config_from_args(args: argparse.Namespace) -> AuditConfig:
    """Defaults, then (with --resume) the run directory's recorded options, then the config file, then the
    flags given on the command line.  Options that disagree with a resumed run are refused by the run."""
    given = {k: v for k, v in vars(args).items() if k in {f.name for f in fields(AuditConfig)}}
    values = load_toml(given["config"]) if given.get("config") else {}
    values.update(given)
    if values.get("resume"):
        out = values.get("out", AuditConfig.out)
        recorded = run_dir_config(out)
        if recorded is None:
            fail("resume", f"{out} holds no audit run to continue (no {MANIFEST}); check --out, or drop --resume "
                           "to start a new run there")
        values = {**recorded, **values}
    return AuditConfig(**values).validate()


def add_report_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("report", help="rebuild RUN_DIR/report.html from a finished audit",
                       description="Rebuild the self-contained HTML report of an audit run directory.")
    p.add_argument("run_dir", help="the audit's --out directory")
    return p


def add_methods_parser(sub) -> argparse.ArgumentParser:
    return sub.add_parser("methods", help="list the explanation methods (names for --methods) with a line each",
                          description="The explanation methods by name, as --methods and sx.explain take them.")


def print_methods() -> None:
    summaries = method_summaries()
    width = max(map(len, summaries))
    for name, line in summaries.items():
        print(f"{name:<{width}}  {line}")
