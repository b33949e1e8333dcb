"""Studies: longer measurements with their own command lines (``python benchmarks/studies/<name>.py``),
built on the suite's case modules and ``benchmarks/common.py``; the suite never imports them."""
