"""Command line: ``spectral-xai`` (also ``python -m spectral_xai``): demo, audit, report, info."""
from __future__ import annotations

import argparse
import json
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="spectral-xai", description="Spectrally aware gradient explanations: SmoothGrad-Squared, SpectralLens, "
                                         "Expected Frequency, and dataset-scale audits of image classifiers.")
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
    from .audit.cli import add_audit_parser, add_report_parser, config_from_args

    add_audit_parser(sub)
    add_report_parser(sub)
    sub.add_parser("info", help="print the build facts as JSON")
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            from .demo import run_demo

            run_demo(args.out, size=args.size, n_samples=args.samples, figures=args.figures, quiet=args.quiet)
        elif args.command == "audit":
            from .audit import run_audit

            run_audit(config_from_args(args))
        elif args.command == "report":
            from .audit import build_report

            print(build_report(args.run_dir))
        elif args.command == "info":
            from . import build_info

            print(json.dumps(build_info(), indent=2))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
