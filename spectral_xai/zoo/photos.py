"""scikit-image's bundled photos (public domain / CC0) as a batch of RGB images in [0, 1]."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

PHOTO_NAMES = ("coffee", "chelsea", "astronaut", "rocket")


def photos(size: int = 128, names=PHOTO_NAMES) -> torch.Tensor:
    """(len(names), 3, size, size) float32 in [0, 1]: centre square crop, antialiased resize."""
    try:
        from skimage import data
    except ImportError as err:  # pragma: no cover
        raise ImportError("the bundled photos need scikit-image (the [zoo] extra)") from err
    out = []
    for name in names:
        img = np.asarray(getattr(data, name)(), dtype=np.float32) / 255.0
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        h, w = img.shape[:2]
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        t = torch.from_numpy(np.ascontiguousarray(img[top:top + s, left:left + s, :3])).permute(2, 0, 1)[None]
        out.append(F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False))
    return torch.cat(out).clamp_(0, 1)
