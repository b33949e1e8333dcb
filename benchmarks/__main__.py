"""Entry point: ``python -m benchmarks`` (from the repository root) or ``python benchmarks/__main__.py``."""
import sys
from pathlib import Path

if not __package__:  # run as a file (e.g. ``python -I benchmarks/__main__.py``): make the package importable
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from benchmarks.suite import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
