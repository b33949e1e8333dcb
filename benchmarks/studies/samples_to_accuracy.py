"""Samples to accuracy of unbiased Monte Carlo estimators for SG² and SpectralLens SL²: the full study
(the estimators and the measurement are described in ``benchmarks/accuracy.py``, which the suite's
``accuracy`` case runs at reduced settings).

    python benchmarks/studies/samples_to_accuracy.py [--quick] [--part sg2 sl2] [--out ...json] [--analyse]
"""
import sys
from pathlib import Path

if not __package__:  # run as a file: make the benchmarks package importable
    sys.path.append(str(Path(__file__).resolve().parents[2]))
from benchmarks.accuracy import RESULTS, analyse, parse, study  # noqa: E402
from spectral_xai.atomic_io import write_json  # noqa: E402


def main():
    args = parse()
    if args.analyse:
        print(f"wrote {write_json(analyse(args), args.out or RESULTS / 'samples_to_accuracy_analysis.json')}")
        return
    study(args)
    print(f"wrote {args.out or RESULTS}")


if __name__ == "__main__":
    main()
