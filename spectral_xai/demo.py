"""The demo: EfficientNet-Lite0 on scikit-image's photos, with VG, SG and SG² maps."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from .explain import smooth_grad, vanilla_grad


def run_demo(out_dir: str | Path = "demo_out", size: int = 128, n_samples: int = 32, sigma: float = 0.15,
             seed: int = 0) -> Path:
    """Print the top-1 classes of the bundled photos and write ``explanations.png``; returns its path."""
    from . import viz
    from .zoo import efficientnet_lite0, imagenet_classes, photos

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = efficientnet_lite0()
    x = photos(size)
    names = imagenet_classes()
    with torch.no_grad():
        prob = torch.softmax(model(x), dim=1)
    conf, top = prob.max(dim=1)
    titles = []
    for b in range(x.shape[0]):
        print(f"photo {b}: {names[top[b]]} ({conf[b]:.2f})")
        titles.append(f"{names[top[b]]} ({conf[b]:.2f})")
    t0 = time.perf_counter()
    maps = {
        "VG": vanilla_grad(model, x, target=top),
        f"SG (std {sigma})": smooth_grad(model, x, sigma, target=top, n_samples=n_samples, squared=False, seed=seed),
        f"SG² (std {sigma})": smooth_grad(model, x, sigma, target=top, n_samples=n_samples, seed=seed),
    }
    elapsed = time.perf_counter() - t0
    path = out_dir / "explanations.png"
    viz.maps_figure(x, maps, titles, path=path)
    print(f"explanations of {x.shape[0]} photos at {size} px ({n_samples} samples) in {elapsed:.1f} s -> {path}")
    return path
