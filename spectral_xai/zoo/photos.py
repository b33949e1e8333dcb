"""scikit-image's bundled photos (public domain / CC0) as a batch of RGB images in [0, 1], and the square
crop-and-resize every image of the library goes through (also the audit's image folders)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

PHOTO_NAMES = ("coffee", "chelsea", "astronaut", "rocket")


def to_square(img: np.ndarray, size: int, channels: int = 3) -> torch.Tensor:
    """(H, W[, C]) uint8/uint16/bool/float image -> (channels, size, size) float32 in [0, 1]: centre square
    crop, antialiased bilinear resize; grey is repeated to RGB, RGB becomes luma for one channel, alpha dropped."""
    a = np.asarray(img)
    a = a.astype(np.float32) / (255.0 if a.dtype == np.uint8 else (65535.0 if a.dtype == np.uint16 else 1.0))
    if a.ndim == 2:
        a = a[:, :, None]
    a = a[:, :, :3]
    if channels == 3 and a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    elif channels == 1 and a.shape[2] == 3:
        a = (a @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[:, :, None]
    h, w = a.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    t = torch.from_numpy(np.ascontiguousarray(a[top:top + s, left:left + s])).permute(2, 0, 1)[None]
    if s != size:
        t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return t[0].clamp_(0, 1).contiguous()


def photos(size: int = 128, names=PHOTO_NAMES) -> torch.Tensor:
    """(len(names), 3, size, size) float32 in [0, 1]: centre square crop, antialiased resize."""
    try:
        from skimage import data
    except ImportError as err:  # pragma: no cover
        raise ImportError("the bundled photos need scikit-image (the [zoo] extra)") from err
    return torch.stack([to_square(getattr(data, name)(), size) for name in names])
