"""Command line: ``python -m spectral_xai demo`` (also the ``spectral-xai`` console script)."""
from __future__ import annotations

import argparse
import json
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="spectral-xai", description="Spectrally aware gradient explanations.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="explain EfficientNet-Lite0 on the bundled photos and write a PNG")
    demo.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    demo.add_argument("--size", type=int, default=128, help="image size in pixels (default: 128)")
    demo.add_argument("--samples", type=int, default=32, help="SmoothGrad samples (default: 32)")
    sub.add_parser("info", help="print the build facts as JSON")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        run_demo(args.out, size=args.size, n_samples=args.samples)
    elif args.command == "info":
        from . import build_info

        print(json.dumps(build_info(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
