"""Command line: ``spectral-xai`` (also ``python -m spectral_xai``): demo, audit, report, methods, info."""
from __future__ import annotations

import argparse
import difflib
import json
import sys

from .environment import build_summary


class _PrintVersion(argparse.Action):
    """--version: :func:`build_summary` on one line (argparse's own version action wraps it to the terminal)."""

    def __init__(self, option_strings, dest, **kw):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        print(build_summary())
        parser.exit()


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser and its sub-command parsers by name."""
    from .audit.cli import add_audit_parser, add_methods_parser, add_report_parser

    parser = argparse.ArgumentParser(
        prog="spectral-xai", description="Spectrally aware gradient explanations: SmoothGrad-Squared, SpectralLens, "
                                         "Expected Frequency, and dataset-scale audits of image classifiers.",
        epilog="`spectral-xai COMMAND --help` describes a command.")
    parser.add_argument("--version", action=_PrintVersion,
                        help="show the version, the kernels in the build and its torch, and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="audit EfficientNet-Lite0 on the bundled photos and write the report",
                          description="The embedded default: EfficientNet-Lite0 on scikit-image's bundled photos. "
                                      "Writes OUT/audit (manifest, maps, metrics.parquet, report.html) and, with "
                                      "--figures, the method figures in OUT/figures.")
    demo.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    demo.add_argument("--size", type=int, default=128, help="image size in pixels (default: 128)")
    demo.add_argument("--samples", type=int, default=16, help="samples per σ and for SG² (default: 16)")
    demo.add_argument("--figures", action="store_true", help="also write the single-batch method figures")
    demo.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    commands = {"demo": demo, "audit": add_audit_parser(sub), "report": add_report_parser(sub),
                "methods": add_methods_parser(sub),
                "info": sub.add_parser("info", help="print the library's version and build facts as JSON")}
    return parser, commands


def _parse(argv) -> argparse.Namespace:
    """Parse; an unknown option is reported with its command's usage and the closest known option."""
    parser, commands = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        sub = commands[args.command]
        known = [o for a in sub._actions for o in a.option_strings]
        hints = [f"{e} (did you mean {close[0]}?)" if (close := difflib.get_close_matches(e.split("=")[0], known, 1))
                 else e for e in extra]
        sub.error(f"unrecognized arguments: {' '.join(hints)}")
    return args


def _interrupted(args) -> int:
    if args.command == "audit":
        out = getattr(args, "out", None) or "audit_out"
        print(f"\nspectral-xai: interrupted. Finished shards in {out} are kept; continue with:\n"
              f"  spectral-xai audit --out {out} --resume", file=sys.stderr)
    else:
        print("\nspectral-xai: interrupted", file=sys.stderr)
    return 130


def _run(args) -> None:
    if args.command == "demo":
        from .demo import run_demo

        run_demo(args.out, size=args.size, n_samples=args.samples, figures=args.figures, quiet=args.quiet)
    elif args.command == "audit":
        from .audit import run_audit
        from .audit.cli import config_from_args

        cfg = config_from_args(args)
        args.out = cfg.out
        run_audit(cfg)
    elif args.command == "report":
        from .audit import build_report

        print(build_report(args.run_dir))
    elif args.command == "methods":
        from .audit.cli import print_methods

        print_methods()
    elif args.command == "info":
        from . import build_info

        print(json.dumps(build_info(), indent=2))


def main(argv=None) -> int:
    args = _parse(argv)
    try:
        _run(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return _interrupted(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
