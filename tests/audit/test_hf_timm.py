"""Models and data as users have them, offline with the real packages: a tiny Hugging Face ViT saved with
save_pretrained, a timm ResNet with random weights, a datasets.Dataset with ClassLabel labels saved with
save_to_disk; through the Python API (run_audit(cfg, dataset=, model=)) and the command line."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

datasets = pytest.importorskip("datasets")
transformers = pytest.importorskip("transformers")
timm = pytest.importorskip("timm")

from spectral_xai.audit import AuditConfig, RunDirError, run_audit  # noqa: E402
from spectral_xai.audit.rundir import run_dir_config  # noqa: E402
from spectral_xai.audit.store import read_shard_tensors, shard_path  # noqa: E402

from helpers import audit_cli, audit_cnn  # noqa: E402

CLASSES = ["cat", "dog", "fox"]
LABELS = [0, 2, 1, 0]
TINY = dict(methods=["vg", "sg2"], samples=2, fractions=3, shard_size=2, quiet=True, report=False, num_workers=0)
TINY_ARGS = ["--methods", "vg,sg2", "--samples", 2, "--fractions", 3, "--shard-size", 2, "--quiet", "--no-report",
             "--num-workers", 0]


def _pil_images(seed=0):
    """Four RGB PIL images of different shapes (the audit centre-crops and resizes them)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    shapes = [(40, 48), (36, 36), (50, 40), (32, 44)]
    return [Image.fromarray(rng.integers(0, 256, (*s, 3), dtype=np.uint8)) for s in shapes]


def _hf_dataset(images, labels=LABELS):
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=CLASSES)})
    return datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """{"vit": a ViT directory (32 px, patch 8, hidden 32, 2 layers; preprocessor mean = std = 0.5),
    "data": the saved dataset, "timm": a resnet10t state dict (3 classes), "root": a scratch folder}."""
    root = tmp_path_factory.mktemp("hub")
    cfg = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=64, num_labels=3)
    torch.manual_seed(0)
    transformers.ViTForImageClassification(cfg).save_pretrained(root / "vit")
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.5] * 3,
                                   image_std=[0.5] * 3).save_pretrained(root / "vit")
    _hf_dataset(_pil_images()).save_to_disk(str(root / "data"))
    torch.manual_seed(1)
    torch.save(timm.create_model("resnet10t", pretrained=False, num_classes=3).state_dict(), root / "timm.pt")
    return {"vit": root / "vit", "data": root / "data", "timm": root / "timm.pt", "root": root}


def _vit(files):
    return transformers.ViTForImageClassification.from_pretrained(files["vit"], local_files_only=True)


def test_hf_model_dir_and_saved_dataset_cli_equals_python_api(files, tmp_path):
    cli = tmp_path / "cli"
    r = audit_cli("audit", f"hf:{files['data']}", "--model", files["vit"], "--out", cli, "--target", "label",
                  *TINY_ARGS)
    assert r.returncode == 0, r.stderr[-3000:]
    table = pd.read_parquet(cli / "metrics.parquet")
    # Python: the loaded dataset and model objects; a model object gets no normalisation unless cfg says so.
    model = _vit(files)
    py = run_audit(AuditConfig(out=str(tmp_path / "py"), target="label", mean=[0.5] * 3, std=[0.5] * 3, **TINY),
                   dataset=datasets.load_from_disk(str(files["data"])), model=model)["table"]
    pd.testing.assert_frame_equal(table, py, check_exact=True)
    assert table["label"].tolist() == LABELS == table["target"].tolist()
    assert table["label_name"].tolist() == [CLASSES[k] for k in LABELS]       # ClassLabel names
    assert (table["status"] == "ok").all() and np.isfinite(table["sg2_ef"]).all()
    man = [json.loads((d / "manifest.json").read_text()) for d in (cli, tmp_path / "py")]
    assert man[0]["model"]["fingerprint"] == man[1]["model"]["fingerprint"]      # the same fingerprint
    assert man[0]["config"]["size"] == 32 and man[0]["config"]["mean"] == [0.5] * 3   # preprocessor_config.json
    assert man[0]["output_classes"] == CLASSES and man[0]["dataset"]["content_check"].startswith("per-item")
    # The same images as (C, H, W) float tensors in [0, 1] with int labels: the same numbers, no class names.
    tensors = [(torch.from_numpy(np.array(im)).permute(2, 0, 1).float() / 255, lab)
               for im, lab in zip(_pil_images(), LABELS)]
    plain = run_audit(AuditConfig(out=str(tmp_path / "plain"), target="label", mean=[0.5] * 3, std=[0.5] * 3,
                                  **TINY), dataset=tensors, model=model)["table"]
    numeric = ["label", "target", "confidence", "entropy", "vg_ef", "vg_ef_unranked", "sg2_ef", "sg2_gap",
               "sg2_deletion", "sg2_insertion"]
    pd.testing.assert_frame_equal(plain[numeric], table[numeric], check_exact=False, rtol=1e-6, atol=1e-9)
    assert plain["label_name"].isna().all()
    # Independent truth: the stored VanillaGrad map of image 0 is autograd's gradient of log p_label, summed
    # over channels, at the image centre-cropped and resized by hand.
    a = np.asarray(_pil_images()[0], dtype=np.float32) / 255
    assert a.shape == (40, 48, 3)
    x = torch.from_numpy(a[:, 4:44].copy()).permute(2, 0, 1)[None]                # the centre 40 x 40
    x = F.interpolate(x, size=(32, 32), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    x.requires_grad_(True)
    torch.log_softmax(model((x - 0.5) / 0.5).logits, dim=1)[0, LABELS[0]].backward()
    vg = read_shard_tensors(shard_path(cli, (0, 2)))["maps/vg"][0].float()
    torch.testing.assert_close(vg, x.grad[0].sum(0).half().float(), rtol=2e-3, atol=1e-6)
    assert model.training is False and all(p.requires_grad for p in model.parameters())   # left as it was


def test_timm_name_with_weights_cli_equals_python_api(files, tmp_path):
    cli = tmp_path / "cli"
    r = audit_cli("audit", f"hf:{files['data']}", "--model", "timm:resnet10t", "--weights", files["timm"],
                  "--size", 32, "--out", cli, *TINY_ARGS)
    assert r.returncode == 0, r.stderr[-3000:]
    net = timm.create_model("resnet10t", pretrained=False, num_classes=3)
    net.load_state_dict(torch.load(files["timm"], weights_only=True))
    py = run_audit(AuditConfig(out=str(tmp_path / "py"), size=32, normalize="imagenet", **TINY),
                   dataset=datasets.load_from_disk(str(files["data"])), model=net)["table"]
    table = pd.read_parquet(cli / "metrics.parquet")
    # Bit for bit: audit_cli runs the CLI with this process's thread count (see test_thread_count_changes_rounding).
    pd.testing.assert_frame_equal(table, py, check_exact=True)
    assert table["target"].tolist() == py["target"].tolist()
    man = json.loads((cli / "manifest.json").read_text())
    assert man["config"]["mean"] == [0.485, 0.456, 0.406]                      # timm's pretrained_cfg
    assert table["label_name"].tolist() == [CLASSES[k] for k in LABELS]
    fp = json.loads((tmp_path / "py" / "manifest.json").read_text())["model"]["fingerprint"]
    assert man["model"]["fingerprint"] == fp
    assert net.training                                          # the object's mode is restored after the run


def test_resume_with_changed_data_is_refused(files, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(files["data"], data)
    out = tmp_path / "run"
    base = dict(data=f"hf:{data}", model=str(files["vit"]), out=str(out), **{**TINY, "shard_size": 1})
    first = run_audit(AuditConfig(**base))["table"]
    assert run_audit(AuditConfig(**base, resume=True))["table"].equals(first)     # same data: resumes
    images = _pil_images()
    images[2] = images[2].rotate(90, expand=True)                                  # one item changed
    shutil.rmtree(data)
    _hf_dataset(images).save_to_disk(str(data))
    with pytest.raises(RunDirError, match=r"item 2 .*has changed"):
        run_audit(AuditConfig(**base, resume=True))
    # A plain Python dataset: checked the same way; with a dataset_id the id identifies the data instead.
    items = [(torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(k)), k % 5) for k in range(3)]
    cfg = dict(out=str(tmp_path / "py"), size=24, **{**TINY, "shard_size": 1})
    run_audit(AuditConfig(**cfg), dataset=items, model=audit_cnn())
    changed = [items[0], (items[1][0] * 0.5, items[1][1]), items[2]]
    with pytest.raises(RunDirError, match=r"item 1 .*has changed"):
        run_audit(AuditConfig(**cfg, resume=True), dataset=changed, model=audit_cnn())
    with pytest.raises(RunDirError, match="dataset differs"):
        run_audit(AuditConfig(**cfg, resume=True), dataset=items[:2], model=audit_cnn())
    ided = dict(cfg, out=str(tmp_path / "ided"))
    run_audit(AuditConfig(**ided), dataset=items, model=audit_cnn(), dataset_id="v1")
    with pytest.raises(RunDirError, match="dataset differs"):
        run_audit(AuditConfig(**ided, resume=True), dataset=items, model=audit_cnn(), dataset_id="v2")
    # A run of objects cannot be resumed from its recorded options alone (the command line's --resume): it says so.
    with pytest.raises(ValueError, match="started from Python with a dataset object"):
        run_audit(AuditConfig(**run_dir_config(tmp_path / "py"), out=str(tmp_path / "py"), resume=True))


def test_clear_errors_before_anything_is_written(files, tmp_path):
    base = dict(out=str(tmp_path / "x"), data=f"hf:{files['data']}", **TINY)
    cases = [
        (dict(model=str(tmp_path / "no_such_dir/")), "option 'model'.*no such file or directory"),
        (dict(model=str(files["root"])), "not a Hugging Face model directory"),
        (dict(model="timm:resnet10x", weights=str(files["timm"])), "timm has no model 'resnet10x'.*resnet10t"),
        (dict(model="timm:resnet10t"), "option 'weights'.*needs --weights"),
        (dict(model="timm:resnet18", weights=str(files["timm"])), "option 'weights'.*does not fit timm's resnet18"),
        (dict(model=str(files["vit"]), data=f"hf:{tmp_path / 'nothing'}"), "option 'data'.*no such directory"),
        (dict(model=str(files["vit"]), split="test"), "option 'split'.*without splits, not 'test'"),
        (dict(model=str(files["vit"]), image_column="picture"), "option 'image_column'.*no column 'picture'"),
        (dict(model=str(files["vit"]), size=48),
         "option 'size'.*fails on one image.*expects another input size: try --size 32"),
    ]
    for changes, message in cases:
        with pytest.raises(ValueError, match=message):
            run_audit(AuditConfig(**{**base, **changes}))
    assert not (tmp_path / "x").exists()
    normalised = [((torch.rand(3, 8, 8) - 0.5) / 0.2, 0)]
    with pytest.raises(ValueError, match=r"argument 'dataset'.*must be in \[0, 1\]"):
        run_audit(AuditConfig(out=str(tmp_path / "y"), size=10, **TINY), dataset=normalised, model=audit_cnn())
    with pytest.raises(TypeError, match="argument 'model'.*nn.Module"):
        run_audit(AuditConfig(out=str(tmp_path / "z"), **TINY), dataset=normalised, model=lambda x: x)
