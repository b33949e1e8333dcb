"""What a new user meets first in the audit: fashion-mnist comes with its own trained, cached model at 28 px;
labels of another label space are refused or dropped, never read by index; >8-bit images keep their scale; a
model given the wrong input size names the size to try; progress comes within a shard."""
import hashlib
import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from spectral_xai.audit import AuditConfig, run_audit
from spectral_xai.audit.model import check_model
from spectral_xai.audit.progress import step_images
from spectral_xai.audit.sources.folders import FolderDataset
from spectral_xai.audit.sources.labels import TINY_CONFIDENCE, warn_tiny_confidence
from spectral_xai.zoo import fashion_cnn, imagenet_classes
from spectral_xai.zoo.fashion_mnist import CLASSES
from spectral_xai.zoo.pretrained import STEPS_ENV, TRAIN_COMMAND, fashion_cnn_info, trained_fashion_cnn

from helpers import write_idx

TINY = dict(methods=["vg"], measures=["ef"], samples=2, fractions=3, quiet=True, report=False, num_workers=0)


def _fashion_like(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n 28-px images whose class k is a bright band at rows 2k..2k+3 over noise, and their labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    imgs = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(labels):
        imgs[i, 2 * k + 4:2 * k + 8] = 230
    return imgs, labels.astype(np.uint8)


@pytest.fixture(scope="module")
def fashion_env(tmp_path_factory):
    """A Fashion-MNIST-shaped IDX directory (train 640, test 40 images), a user cache directory, and the
    built-in fashion-cnn trained once there with 15 steps (the recipe's step count, made small)."""
    root = tmp_path_factory.mktemp("fashion")
    for prefix, n, seed in (("train", 640, 1), ("t10k", 40, 2)):
        imgs, labels = _fashion_like(n, seed)
        write_idx(root / f"{prefix}-images-idx3-ubyte", imgs)
        write_idx(root / f"{prefix}-labels-idx1-ubyte", labels)
    env = {"SPECTRAL_XAI_FASHION_MNIST": str(root), "XDG_CACHE_HOME": str(root / "cache"), STEPS_ENV: "15"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        info = fashion_cnn_info(train=True)
    return env, info


@pytest.fixture
def fashion(fashion_env, monkeypatch):
    env, info = fashion_env
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return info


def test_fashion_mnist_defaults_to_its_own_model_at_28_px(fashion, tmp_path):
    assert AuditConfig(data="fashion-mnist").model == "fashion-cnn"
    assert AuditConfig(data="fashion-mnist:train").model == "fashion-cnn"
    assert AuditConfig(data="skimage").model == "efficientnet-lite0"
    table = run_audit(AuditConfig(data="fashion-mnist", out=str(tmp_path / "run"), target="label", limit=20,
                                  **TINY))["table"]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    cfg = manifest["config"]
    assert (cfg["model"], cfg["size"], cfg["grayscale"]) == ("fashion-cnn", 28, True)
    assert manifest["output_classes"] == list(CLASSES)
    assert table["label"].tolist() == [i % 10 for i in range(20)] == table["target"].tolist()
    assert table["label_name"].tolist() == [CLASSES[i % 10] for i in range(20)]
    # the band classes are learnt in 15 steps: the model is trained, not a random network
    assert fashion["test_accuracy"] > 0.5 and (table["confidence"] > 0.2).mean() > 0.5


def test_the_cached_model_is_checked_and_a_missing_one_names_the_command(fashion, monkeypatch, tmp_path):
    weights = fashion["weights"]
    with open(weights, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == fashion["sha256"]
    model = trained_fashion_cnn(train=False)                     # loaded from the cache, not retrained
    assert model.classes == list(CLASSES)
    torch.testing.assert_close(model.state_dict(), torch.load(weights, weights_only=True), rtol=0, atol=0)
    monkeypatch.setenv(STEPS_ENV, "41")                          # another recipe: not in the cache
    with pytest.raises(ValueError, match=f"not trained yet; train it .* with: {TRAIN_COMMAND}"):
        fashion_cnn_info(train=False)
    monkeypatch.setenv("SPECTRAL_XAI_FASHION_MNIST", str(tmp_path))      # and no training files
    with pytest.raises(ValueError, match=f"cannot be: .*no train-images-idx3-ubyte.*{TRAIN_COMMAND}"):
        fashion_cnn_info(train=True)
    monkeypatch.setenv(STEPS_ENV, "0")
    with pytest.raises(ValueError, match=STEPS_ENV):
        fashion_cnn_info()


def test_a_damaged_cache_is_refused(fashion, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv(STEPS_ENV, "2")
    info = fashion_cnn_info(train=True)
    with open(info["weights"], "ab") as f:
        f.write(b"x")
    with pytest.raises(ValueError, match="do not match the sha256 .* delete"):
        trained_fashion_cnn()


class Named(nn.Module):
    """A 28-px one-channel linear classifier that declares ``classes``."""

    def __init__(self, classes):
        super().__init__()
        self.classes = list(classes)
        self.fc = nn.Linear(28 * 28, len(classes))

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_a_foreign_label_space_is_refused_or_dropped_never_read_by_index(fashion, tmp_path):
    cfg = dict(data="fashion-mnist", size=28, grayscale=True, limit=10, **TINY)
    pets = Named(["cat", "dog", "bird", "fish", "cow", "pig", "hen", "owl", "bee", "ant"])
    with pytest.raises(ValueError, match="option 'target': the dataset's labels are its classes .* not classes of the "
                                         "model.*--labels-are-model-indices"):
        run_audit(AuditConfig(out=str(tmp_path / "a"), target="label", **cfg), model=pets)
    assert not (tmp_path / "a").exists()
    table = run_audit(AuditConfig(out=str(tmp_path / "b"), **cfg), model=pets)["table"]
    assert table["label"].isna().all()                                 # dropped, not mapped by index
    table = run_audit(AuditConfig(out=str(tmp_path / "c"), target="label", labels_are_model_indices=True, **cfg),
                      model=pets)["table"]
    assert table["label"].tolist() == list(range(10)) and table["label_name"].tolist() == pets.classes
    # the model's classes are the dataset's in another order and spelling: mapped by name
    order = [3, 1, 4, 0, 9, 2, 6, 5, 8, 7]
    shuffled = Named([CLASSES[k].replace("/", "_").lower() for k in order])
    table = run_audit(AuditConfig(out=str(tmp_path / "d"), target="label", **cfg), model=shuffled)["table"]
    assert table["label"].tolist() == [order.index(k) for k in range(10)]
    assert table["label_name"].tolist() == [shuffled.classes[order.index(k)] for k in range(10)]


def test_fashion_folders_do_not_match_imagenet_homonyms(tmp_path):
    rng = np.random.default_rng(0)
    for folder in ("T-shirt_top", "Sandal", "Bag", "Trouser"):
        (tmp_path / folder).mkdir()
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(tmp_path / folder / "a.png")
    ds = FolderDataset(str(tmp_path), 8, 1, labels="folders")
    assert ds.resolve_labels(imagenet_classes(), 1000, required=False) == ["Bag", "Sandal", "T-shirt_top", "Trouser"]
    assert ds.labels == [None] * 4                                     # 'Sandal' is not ImageNet's 'sandal'
    with pytest.raises(ValueError, match="are neither class names of the model"):
        ds.resolve_labels(imagenet_classes(), 1000, required=True)
    ds.resolve_labels(list(CLASSES), 10, required=True)                # the safe spelling of 'T-shirt/top'
    assert ds.labels == [CLASSES.index(c) for c in ("Bag", "Sandal", "T-shirt/top", "Trouser")]


def test_tiny_confidence_of_the_explained_label_warns():
    with pytest.warns(UserWarning, match=f"probability below {TINY_CONFIDENCE:g} for 3 of 4 images"):
        warn_tiny_confidence([5e-5, 1e-3, float("nan"), 0.9, 0.002], "label")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_tiny_confidence([5e-5, 1e-3, 0.9], "pred")                # the predicted class: never tiny for most
        warn_tiny_confidence([5e-5, 0.5, 0.9], "label")


@pytest.mark.parametrize("mode", ["I;16", "I", "F"])
def test_wide_images_keep_their_scale(tmp_path, mode):
    ramp = np.linspace(0, 65535, 16 * 16).round().reshape(16, 16)
    if mode == "I;16":
        im = Image.fromarray(ramp.astype(np.uint16))
    elif mode == "I":
        im = Image.fromarray(ramp.astype(np.int32))
    else:
        im = Image.fromarray((ramp / 65535).astype(np.float32))
    assert im.mode == mode
    im.save(tmp_path / ("a.png" if mode == "I;16" else "a.tif"))
    for channels in (1, 3):
        item = FolderDataset(str(tmp_path), 16, channels)[0]
        assert item.error == ""
        x = item.image
        assert float(x.min()) == 0.0 and float(x.max()) == 1.0
        torch.testing.assert_close(x, torch.from_numpy(ramp / 65535).float().expand(channels, 16, 16), rtol=0,
                                   atol=1e-6)


def test_a_negative_mode_i_image_is_a_failed_row(tmp_path):
    Image.fromarray(np.full((8, 8), -5, dtype=np.int32)).save(tmp_path / "neg.tif")
    assert "negative values" in FolderDataset(str(tmp_path), 8, 1)[0].error


def test_the_wrong_input_size_names_the_size_to_try():
    model = fashion_cnn().eval()
    with pytest.raises(ValueError, match=r"option 'size': .*shape \(1, 1, 224, 224\).*the model expects another input "
                                         r"size: try --size 28"):
        check_model(AuditConfig(grayscale=True), model, torch.zeros(1, 1, 224, 224))
    assert check_model(AuditConfig(grayscale=True), model, torch.zeros(1, 1, 28, 28)) == 10


def test_progress_comes_within_a_shard(tmp_path, capsys):
    assert (step_images(224), step_images(112), step_images(28)) == (1, 4, 64)
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (112, 112), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3))
    opts = {**TINY, "quiet": False}
    run_audit(AuditConfig(data=str(tmp_path), out=str(tmp_path / "run"), size=112, grayscale=True, shard_size=6,
                          **opts), model=model)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("audit: shard")]
    assert [ln.split(", ")[1] for ln in lines] == ["4/6 images", "6/6 images"]
    assert lines[0].startswith("audit: shard 1/1") and "img/s" in lines[0] and "ETA" in lines[0]
