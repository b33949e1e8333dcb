"""Shared test material: analytic models and their closed forms, small CNNs, region models, files the tests
write (photo folders, IDX files) and the audit command line.

Kept free of fixtures so that the audit CLI can load it as a model file (``AUDIT_MODEL``)."""
import gzip
import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
AUDIT_MODEL = f"{HERE / 'helpers.py'}:audit_cnn"     # the audit's --model spec of `audit_cnn`
PHOTOS = ("coffee", "chelsea", "astronaut", "rocket", "camera")


# F(x) = sum_i a_i sin(w_i x_i) and its closed forms --------------------------------------------------------------

class Sinusoid(nn.Module):
    """logits (B, 2): F(x) = sum_i a_i sin(w_i x_i) in column 0, zeros in column 1."""

    def __init__(self, a: torch.Tensor, w: torch.Tensor):
        super().__init__()
        self.register_buffer("a", a)
        self.register_buffer("w", w)

    def forward(self, x):
        f = (self.a * torch.sin(self.w * x)).flatten(1).sum(1)
        return torch.stack([f, torch.zeros_like(f)], dim=1)


def sinusoid(seed: int = 0, batch: int = 2, same_w: bool = False, size: int = 6, spatial: tuple | None = None):
    """(model, a, w, x): a (1, 1, size, size) in [0.5, 1.5), w in [0.5, 3.5) (all 2 if same_w),
    x (batch, 1, size, size) in [-2, 2), float32, drawn in that order from one seeded generator.
    ``spatial``: other map axes instead of (size, size), e.g. (L,) for signals or (D, H, W) for volumes."""
    g = torch.Generator().manual_seed(seed)
    sp = tuple(spatial) if spatial is not None else (size, size)
    a = torch.rand(1, 1, *sp, generator=g) + 0.5
    w = torch.full((1, 1, *sp), 2.0) if same_w else torch.rand(1, 1, *sp, generator=g) * 3 + 0.5
    x = torch.rand(batch, 1, *sp, generator=g) * 4 - 2
    return Sinusoid(a, w), a, w, x


def sinusoid_grad(a, w, x) -> torch.Tensor:
    """∂F/∂x = a w cos(w x), (B, *spatial) in the inputs' dtype (float32 inputs round w x as the model does)."""
    return (a * w * torch.cos(w * x))[:, 0]


def sg_exact(a, w, x, spread: float, keep: float = 1.0) -> torch.Tensor:
    """E[∂F] at x̃ = keep·x + spread·ε: a w cos(w·keep·x) e^{−w² spread²/2}, float64 (B, H, W).
    Additive noise: keep = 1, spread = s; convex mixing: keep = 1 − σ, spread = σ s."""
    a, w, x = a.double(), w.double(), x.double()
    return (a * w * torch.cos(w * keep * x) * torch.exp(-(w**2) * spread**2 / 2))[:, 0]


def sg2_exact(a, w, x, spread: float, keep: float = 1.0) -> torch.Tensor:
    """E[(∂F)²] at x̃ = keep·x + spread·ε: a²w²·½(1 + cos(2w·keep·x)·e^{−2w² spread²}), float64 (B, H, W)."""
    a, w, x = a.double(), w.double(), x.double()
    return (a**2 * w**2 * 0.5 * (1 + torch.cos(2 * w * keep * x) * torch.exp(-2 * w**2 * spread**2)))[:, 0]


def convex_sg2_grid(a, w, x, sigmas, s: float) -> torch.Tensor:
    """E[(∂F)²] under x̃ = (1 − σ)x + σ s ε for every σ of `sigmas`, float64 (B, S, H, W)."""
    return torch.stack([sg2_exact(a, w, x, float(sg) * s, 1 - float(sg)) for sg in sigmas], dim=1)


def sg2_sd_bound(a, w) -> torch.Tensor:
    """Upper bound of the sd of one squared-gradient sample, (∂F)² in [0, a²w²]: a²w²/2, float64 (1, H, W)."""
    return (a.double() ** 2 * w.double() ** 2 / 2)[:, 0]


def assert_within(est, exact, bound_sd, n: int, k: float = 5.0) -> None:
    """|est − exact| <= k standard errors per pixel (sd bounded from above by bound_sd), and no bias on
    average over pixels; est, exact, bound_sd broadcast to one shape."""
    est, exact = est.double(), exact.double()
    se = bound_sd.double().expand_as(exact) / math.sqrt(n)
    assert bool(((est - exact).abs() <= k * se).all()), float(((est - exact).abs() / se).max())
    assert abs(float((est - exact).mean() / se.mean())) <= k / math.sqrt(est.numel()) * 3


def assert_unbiased(est, exact, k: float = 5.0) -> None:
    """est (R, ...): R independent replicas; exact (...). Per element |mean − exact| <= k standard errors
    (from the replicas' spread), and the mean z-score ~ N(0, 1/n)."""
    R = est.shape[0]
    mean, se = est.mean(0), est.std(0) / math.sqrt(R)
    z = (mean - exact) / se
    assert bool((z.abs() <= k).all()), float(z.abs().max())
    assert abs(float(z.mean())) <= k / math.sqrt(z.numel()), float(z.mean())


class Quadratic(nn.Module):
    """logits (B, 2): F(x) = sum_i q_i x_i^2 + l_i x_i in column 0, −F in column 1."""

    def __init__(self, shape):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.q = nn.Parameter(torch.randn(shape, generator=g, dtype=torch.float64))
        self.l = nn.Parameter(torch.randn(shape, generator=g, dtype=torch.float64))

    def forward(self, x):
        f = (self.q * x * x + self.l * x).flatten(1).sum(1)
        return torch.stack([f, -f], dim=1)


class BlockModel(nn.Module):
    """logits (B, 2): class 0 = gain · (mean of x over rows × cols) + bias, class 1 = 0."""

    def __init__(self, rows: slice, cols: slice, gain: float, bias: float):
        super().__init__()
        self.rows, self.cols, self.gain, self.bias = rows, cols, gain, bias

    def forward(self, x):
        f = self.gain * x[:, :, self.rows, self.cols].mean(dim=(1, 2, 3)) + self.bias
        return torch.stack([f, torch.zeros_like(f)], dim=1)


# small CNNs -------------------------------------------------------------------------------------------------------

def small_cnn(channels=3, classes=5, size=12, seed=0, width=6, dropout=True) -> nn.Sequential:
    """(B, channels, size, size) -> (B, classes): conv-BN-ReLU-pool, conv-ReLU[-dropout], linear; weights from
    torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 8, 3, padding=1), nn.ReLU(), *([nn.Dropout(0.5)] if dropout else []), nn.Flatten(),
        nn.Linear(8 * (size // 2) ** 2, classes))


def tiny_hf_vit(size: int = 16, classes: int = 4, seed: int = 0) -> nn.Module:
    """A transformers ViTForImageClassification from a small ViTConfig, random weights (offline), eval mode:
    (B, 3, size, size) -> ImageClassifierOutput with (B, classes) logits; 2 layers of GELUActivation."""
    import transformers

    cfg = transformers.ViTConfig(image_size=size, patch_size=4, num_channels=3, hidden_size=16, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=32, num_labels=classes, hidden_act="gelu")
    torch.manual_seed(seed)
    return transformers.ViTForImageClassification(cfg).eval()


def batch_log(model: nn.Module, of=lambda x: x.shape[0]) -> list:
    """The list that a forward hook on `model` fills with of(input) at every call (default: the batch rows)."""
    log = []
    model.register_forward_hook(lambda m, i, o: log.append(of(i[0])))
    return log


def audit_cnn(classes: int = 5) -> nn.Module:
    """(B, 3, S, S) in [0, 1] -> (B, classes), any S >= 8; weights from a fixed generator, eval mode.
    The audit loads it as ``AUDIT_MODEL``."""
    g = torch.Generator().manual_seed(7)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                        nn.Linear(8 * 16, classes))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return net.eval()


def audit_inputs(size: int, n: int):
    """What a skimage audit of ``AUDIT_MODEL`` at ``size`` px over its first n photos sees: (model, x (n, 3, size,
    size), the explained classes (n,) (the clean arg-max), image ids (n,))."""
    from spectral_xai.audit.sources.folders import FolderDataset

    ds = FolderDataset("skimage", size, 3, limit=n)
    x = torch.stack([ds[i].image for i in range(n)])
    model = audit_cnn()
    with torch.no_grad():
        target = model(x).argmax(1)
    return model, x, target, torch.arange(n)


# files ------------------------------------------------------------------------------------------------------------

def make_photo_folder(root: Path) -> Path:
    """The bundled photos of PHOTOS saved in class sub-folders (animals/, things/; jpg and png, their own
    sizes) plus one corrupt file things/broken.jpg."""
    from PIL import Image
    from skimage import data

    for k, name in enumerate(PHOTOS):
        sub = root / ("animals" if name == "chelsea" else "things")
        sub.mkdir(exist_ok=True)
        Image.fromarray(getattr(data, name)()).save(sub / f"{name}.{'png' if k % 2 else 'jpg'}")
    (root / "things" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    return root


def write_idx(path, arr: np.ndarray, code: int = 0x08, compress: bool = False) -> None:
    """Write `arr` as an IDX file (big-endian; `code` 0x08 uint8, 0x0D float32), gzip-compressed if asked."""
    header = struct.pack(">HBB", 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = header + arr.astype(arr.dtype.newbyteorder(">") if arr.dtype.itemsize > 1 else arr.dtype).tobytes()
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(data)


# the audit command line -------------------------------------------------------------------------------------------

def audit_cli(*args, env=None, **kw) -> subprocess.CompletedProcess:
    """`python -m spectral_xai *args` run from tests/ (the installed package), output captured, with this
    process's intra-op thread count: CPU convolutions round differently with another thread count, so a CLI
    table equals a Python-API table of this process bit for bit only with the same count."""
    cmd = [sys.executable, "-m", "spectral_xai", *map(str, args)]
    e = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()), **(env or {}))
    return subprocess.run(cmd, env=e, cwd=HERE, capture_output=True, text=True, **kw)


def tiny_audit_args(data, out, *extra) -> list:
    """Arguments of a small audit of `data` into `out` with `audit_cnn`: 24 px, 3 samples, one image a shard."""
    return ["audit", data, "--out", out, "--model", AUDIT_MODEL, "--size", 24, "--samples", 3, "--shard-size", 1,
            "--methods", "vg,sg2,sl2,al,xig", "--fractions", 5, "--quiet", "--num-workers", 0, *extra]


def tiny_audit(data, out, *extra) -> None:
    """Run the audit of `tiny_audit_args` through the command line; it must succeed."""
    r = audit_cli(*tiny_audit_args(data, out, *extra))
    assert r.returncode == 0, r.stderr
