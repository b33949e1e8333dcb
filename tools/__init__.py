"""Repository tools that are not benchmarks: the GPU check (``python3 dev.py gpu-check``) and its probes."""
