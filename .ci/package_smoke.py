"""Smoke test of an installed spectral_xai, run by .ci/package-check with the fresh venv's Python, outside the tree.

    VENV/bin/python -I package_smoke.py --not-under SOURCE_TREE --not-under BUILD_VENV --op perturb --op ...

The package must come from this interpreter's own environment (not the source tree, not the venv it borrows
torch from); every op named with --op is registered with a CPU kernel; smooth_grad and expected_frequency give
their closed forms; the `spectral-xai` command of this environment prints its version and the methods.
"""
from __future__ import annotations

import argparse
import math
import subprocess
import sys
from pathlib import Path

import torch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--not-under", action="append", default=[], type=Path)
    parser.add_argument("--op", action="append", default=[])
    args = parser.parse_args(argv)

    import spectral_xai as sx
    from spectral_xai.methods import METHODS

    where = Path(sx.__file__).resolve()
    assert where.is_relative_to(Path(sys.prefix).resolve()), f"spectral_xai from {where}, not from {sys.prefix}"
    for other in args.not_under:
        assert not where.is_relative_to(other.resolve()), f"spectral_xai from {where}, inside {other}"
    info = sx.build_info()
    assert info["spectral_xai"] == sx.__version__ and info["torch_version"] == torch.__version__.split("+")[0], info

    assert args.op, "no op names given"
    for name in args.op:
        getattr(torch.ops.spectral_xai, name)      # AttributeError when the schema is not registered
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"spectral_xai::{name}", "CPU"), name

    # SmoothGrad-Squared of a linear model: the gradient is the target's weight row whatever the noise, so the
    # map is the channel sum of its squares, exactly.
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    x = torch.rand(2, 3, 8, 8)
    target = torch.tensor([1, 3])
    sg2 = sx.smooth_grad(model, x, 0.2, target, n_samples=4, output="logit")
    want = (model[1].weight.detach()[target].reshape(2, 3, 8, 8) ** 2).sum(1)
    torch.testing.assert_close(sg2.float(), want, rtol=1e-5, atol=1e-7)

    # EF of cos(2π·3·x/16): all power on ring 3 of K = isqrt(8² + 8²) + 1 rings (docs/methods.md), EF = 3/(K − 1).
    cols = torch.arange(16, dtype=torch.float64)
    maps = torch.cos(2 * math.pi * 3 * cols / 16).expand(1, 16, 16).contiguous()
    ef = sx.expected_frequency(maps, rank_normalize=False)
    torch.testing.assert_close(ef, torch.tensor([3 / (math.isqrt(128))], dtype=torch.float64))

    cli = Path(sys.executable).parent / "spectral-xai"
    version = subprocess.run([cli, "--version"], check=True, capture_output=True, text=True).stdout.strip()
    kernels = "CPU and CUDA kernels" if info["cuda"] else "CPU kernels only"
    assert version.startswith(f"spectral-xai {sx.__version__} ({kernels}; built with torch"), version
    methods = subprocess.run([cli, "methods"], check=True, capture_output=True, text=True).stdout.split("\n")
    assert [line.split()[0] for line in methods if line.strip()] == list(METHODS), methods
    print(f"smoke ok: {version}; {where.parent}; ops {', '.join(args.op)}; sg2 and EF match their closed forms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
