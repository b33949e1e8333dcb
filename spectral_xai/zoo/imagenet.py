"""ImageNet-1k class names, shipped with the package."""
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def imagenet_classes() -> list[str]:
    """The 1000 class names in index order."""
    text = resources.files(__package__).joinpath("imagenet_classes.txt").read_text(encoding="utf-8")
    names = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(names) == 1000, len(names)
    return names
