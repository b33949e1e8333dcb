"""A user's dataset items (PIL, uint8 arrays, float tensors, tuples, dicts), Hugging Face dataset layouts
(column defaults, splits, parquet and image folders) and the preprocessing that models declare."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spectral_xai.audit import AuditConfig, run_audit
from spectral_xai.audit.sources.items import ItemDataset, as_square
from spectral_xai.audit.model import with_model_defaults

from helpers import audit_cnn


def _image(h=30, w=40, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_every_image_form_is_cropped_and_resized_like_a_folder_file():
    from PIL import Image

    a = _image()
    # Independent truth: the centre 30 x 30 square, antialiased bilinear resize to 16 px.
    want = torch.from_numpy(a[:, 5:35].astype(np.float32) / 255).permute(2, 0, 1)[None]
    want = F.interpolate(want, size=(16, 16), mode="bilinear", antialias=True, align_corners=False)[0].clamp(0, 1)
    chw = torch.from_numpy(a.copy()).permute(2, 0, 1)
    forms = {"pil": Image.fromarray(a), "hwc uint8": a, "chw float": chw.float() / 255, "chw uint8": chw,
             "chw float array": (chw.float() / 255).numpy()}
    for name, img in forms.items():
        torch.testing.assert_close(as_square(img, 16, 3), want, rtol=0, atol=1e-6, msg=name)
    grey = as_square(Image.fromarray(a), 16, 1)
    torch.testing.assert_close(grey, as_square(np.asarray(Image.fromarray(a).convert("L")), 16, 1))
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        as_square(chw.float() / 255 - 0.5, 16, 3)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        as_square(torch.rand(1, 3, 8, 8), 16, 3)


def test_items_tuples_dicts_labels_and_failures():
    img = torch.rand(3, 12, 12, generator=torch.Generator().manual_seed(0))
    items = [img, (img, 2), {"pixel_values": img, "labels": torch.tensor(1)}, {"img": img, "fine_label": None},
             (img, 1, "extra"), {"picture": img}]
    ds = ItemDataset(items, 12, 3)
    got = [ds[i] for i in range(len(items))]
    assert [g.label for g in got] == [None, 2, 1, None, None, None]
    assert [bool(g.error) for g in got] == [False] * 4 + [True, True]
    assert "3 elements" in got[4].error and "no image" in got[5].error
    for g in got[:4]:
        torch.testing.assert_close(g.image, img)                  # 12 px square: no resize
    assert got[0].digest != got[1].digest and ds.digest(1) == got[1].digest  # the label is part of the digest
    assert ItemDataset(items, 12, 3, limit=2).names == ["0", "1"]
    with pytest.raises(TypeError, match="argument 'dataset'.*map-style"):
        ItemDataset(iter(items), 12, 3)


def test_hf_layouts_columns_splits_parquet_and_imagefolder(tmp_path):
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    from spectral_xai.audit.sources import hf

    imgs = [Image.fromarray(_image(seed=k)) for k in range(3)]
    features = datasets.Features({"img": datasets.Image(), "fine_label": datasets.ClassLabel(names=["a", "b"]),
                                  "coarse": datasets.Value("int64")})
    ds = datasets.Dataset.from_dict({"img": imgs, "fine_label": [1, 0, 1], "coarse": [5, 5, 5]}, features=features)
    assert hf.columns(ds, None, None) == ("img", "fine_label", ["a", "b"])        # the CIFAR-100 layout
    assert hf.columns(ds, None, "coarse") == ("img", "coarse", None)
    items = hf.hf_items(ds, 16, 3, source="hf:x", option="data")
    assert items.labels == [1, 0, 1] and items.classes == ["a", "b"]
    torch.testing.assert_close(items[2].image, as_square(imgs[2], 16, 3))
    datasets.DatasetDict({"train": ds, "test": ds.select([0])}).save_to_disk(str(tmp_path / "dd"))
    assert len(hf.load_hf(str(tmp_path / "dd"))) == 3                          # default: train
    assert len(hf.load_hf(str(tmp_path / "dd"), "test")) == 1
    with pytest.raises(ValueError, match="option 'split'.*no split 'val'.*'train', 'test'"):
        hf.load_hf(str(tmp_path / "dd"), "val")
    datasets.DatasetDict({"val": ds, "test": ds}).save_to_disk(str(tmp_path / "two"))
    with pytest.raises(ValueError, match="option 'split'.*none is 'train'; choose one with --split"):
        hf.load_hf(str(tmp_path / "two"))
    ds.to_parquet(str(tmp_path / "pq" / "test-00000-of-00001.parquet"))
    got = hf.load_hf(str(tmp_path / "pq"), cache_dir=str(tmp_path / "cache"))     # the only split
    assert got.num_rows == 3 and hf.columns(got, None, None)[2] == ["a", "b"]
    for k, name in enumerate(("cat", "dog", "dog")):
        (tmp_path / "folder" / name).mkdir(parents=True, exist_ok=True)
        imgs[k].save(tmp_path / "folder" / name / f"{k}.png")
    got = hf.load_hf(str(tmp_path / "folder"), cache_dir=str(tmp_path / "cache"))
    image, label, names = hf.columns(got, None, None)
    assert (image, label, names) == ("image", "label", ["cat", "dog"])
    assert sorted(got["label"]) == [0, 1, 1]
    with pytest.raises(ValueError, match="option 'image_column'.*none of"):
        hf.columns(ds.remove_columns("img").add_column("x", [0, 1, 2]), None, None)


def test_declared_preprocessing_is_a_default_only(tmp_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("timm")
    cfg = transformers.ViTConfig(image_size=40, patch_size=8, hidden_size=16, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=16, num_labels=2,
                                 id2label={0: "hot dog", 1: "not hot dog"}, label2id={"hot dog": 0, "not hot dog": 1})
    vit = transformers.ViTForImageClassification(cfg)
    vit.save_pretrained(tmp_path / "vit")
    d = with_model_defaults(AuditConfig(model=str(tmp_path / "vit")))
    assert (d.size, d.normalize, d.mean) == (40, "none", None)                    # config.json, no preprocessor
    transformers.ViTImageProcessor(size={"height": 36, "width": 36}, image_mean=[0.1, 0.2, 0.3],
                                   image_std=[0.4, 0.5, 0.6]).save_pretrained(tmp_path / "vit")
    d = with_model_defaults(AuditConfig(model=str(tmp_path / "vit")))
    assert (d.size, d.mean, d.std) == (36, [0.1, 0.2, 0.3], [0.4, 0.5, 0.6])
    d = with_model_defaults(AuditConfig(model=str(tmp_path / "vit"), size=24, normalize="none"))
    assert (d.size, d.mean) == (24, None)                                          # the user's values win
    d = with_model_defaults(AuditConfig(model="timm:resnet10t"))
    assert (d.size, d.mean, d.std) == (176, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    assert with_model_defaults(AuditConfig(), vit).size == 40 and with_model_defaults(AuditConfig(), vit).mean is None
    assert with_model_defaults(AuditConfig()).size == 224                         # the built-in: 224, none
    with pytest.raises(ValueError, match="option 'normalize'.*3 channel"):
        with_model_defaults(AuditConfig(model="timm:resnet10t", grayscale=True))
    from spectral_xai.audit.hub_models import hf_class_names

    assert hf_class_names(vit) == ["hot dog", "not hot dog"]
    assert hf_class_names(transformers.ViTForImageClassification(transformers.ViTConfig(
        image_size=8, patch_size=8, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
        intermediate_size=8, num_labels=3))) is None                                  # LABEL_0.. placeholders


def test_a_model_object_is_left_as_it_was(tmp_path):
    net = audit_cnn().train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    items = [(torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(k)), 0) for k in range(2)]
    cfg = AuditConfig(out=str(tmp_path / "r"), size=16, dtype="float64", methods=["vg"], measures=["ef"],
                      quiet=True, report=False)
    table = run_audit(cfg, dataset=items, model=net)["table"]
    assert net.training and all(p.dtype == torch.float32 and p.requires_grad for p in net.parameters())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    # Independent truth: VanillaGrad EF of image 0 from autograd on a float64 copy.
    from spectral_xai import expected_frequency

    ref = audit_cnn().double().eval()
    x = items[0][0].double()[None].requires_grad_(True)
    logp = torch.log_softmax(ref(x), dim=1)
    logp[0, int(logp.argmax())].backward()
    assert table["vg_ef"][0] == pytest.approx(float(expected_frequency(x.grad.sum(1).float())[0]), rel=1e-5)
