"""The classification task: readers on tiny fake datasets, finalize checks, augmentation, loss, scores."""
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from repro.config import resolve
from repro.data import batches
from repro.errors import ReproError
from repro.plugins import get_paper
from repro.tasks import get_task
from repro.tasks.classification import ClassificationTask, digits, pad_crop

TASK = ClassificationTask()


def table9_config(row="resnet56_cifar10", profile="paper", **data):
    config = resolve(get_paper("liu2020").table("9"), get_paper("liu2020").table("9").row(row), profile, 0).config
    config["data"].update(data)
    return config


def write_cifar(root, name, n=6):
    rng = np.random.default_rng(0)
    folder, files, key = {"cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], b"labels"),
                          "cifar100": ("cifar-100-python", ["train", "test"], b"fine_labels")}[name]
    (root / folder).mkdir(parents=True)
    for i, file in enumerate(files):
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), key: [(i + j) % 10 for j in range(n)]}
        with open(root / folder / file, "wb") as handle:
            pickle.dump(batch, handle)
    return batch


def test_task_is_registered():
    assert get_task("classification").name == "classification"


@pytest.mark.parametrize("name,n_train", [("cifar10", 5 * 6), ("cifar100", 6)])
def test_cifar_reader_on_fake_pickles(tmp_path, monkeypatch, name, n_train):
    monkeypatch.setenv("REPRO_DATA_DIR", str(tmp_path))
    last = write_cifar(tmp_path, name)
    config = table9_config(row=f"resnet56_{name}")
    train, val = TASK.load_data(config)
    assert train.images.shape == (n_train, 3, 32, 32) and train.images.dtype == torch.uint8
    assert len(val) == 6
    # the row-major 3072 bytes are R plane, G plane, B plane (CIFAR's layout)
    assert torch.equal(val.images[0, 1].flatten(), torch.from_numpy(last[b"data"][0, 1024:2048]))
    labels_key = b"labels" if name == "cifar10" else b"fine_labels"
    assert val.labels.tolist() == last[labels_key]
    images, labels = next(batches(TASK, train, config, seed=0))
    assert images.shape == (min(n_train, 128), 3, 32, 32) and images.dtype == torch.float32


def test_missing_cifar_is_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_DATA_DIR", str(tmp_path))
    with pytest.raises(ReproError, match=r"cifar100 is not ready: .*cifar-100-python.*--profile proxy"):
        TASK.check_data(table9_config(row="resnet56_cifar100"))


def write_folder(root, classes=("ant", "bee"), per_class=3, size=(40, 30)):
    rng = np.random.default_rng(1)
    for split in ("train", "val"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                array = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(array).save(root / split / c / f"{i}.png")


def test_image_folder_reader(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_DATA_DIR", str(tmp_path))
    write_folder(tmp_path / "imagenet_subset")
    config = table9_config(row="resnet56_imagenet_sub", classes=2)
    config["model"]["n_classes"] = 2
    TASK.check_data(config)
    train, val = TASK.load_data(config)
    assert len(train) == 6 and train.classes == ["ant", "bee"] and train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    images, labels = next(batches(TASK, val, config, train=False))
    assert images.shape == (6, 3, 32, 32)  # 40x30 -> shorter side 32 (43x32) -> centre 32x32
    # centre crop of the resized image, then normalization: undo it and compare with PIL
    with Image.open(val.paths[0]) as im:
        expected = np.asarray(im.convert("RGB").resize((43, 32), Image.BILINEAR).crop((6, 0, 38, 32)))
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    restored = ((images[0] * std + mean) * 255).round().permute(1, 2, 0).numpy()
    assert np.abs(restored - expected).max() <= 1


def test_image_folder_class_count_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_DATA_DIR", str(tmp_path))
    write_folder(tmp_path / "imagenet_subset")
    with pytest.raises(ReproError, match="2 class folders, data.classes says 100"):
        TASK.check_data(table9_config(row="resnet56_imagenet_sub"))


def test_missing_imagenet_is_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_DATA_DIR", str(tmp_path))
    table = get_paper("bulat2019").table("4")
    config = resolve(table, table.row("xnor_resnet18"), "paper", 0).config
    with pytest.raises(ReproError, match=r"imagenet is not ready: .*train/<class>/"):
        TASK.check_data(config)


def test_finalize_rejects_inconsistent_sizes():
    table = get_paper("bulat2019").table("4")
    row = table.row("xnor_alexnet")
    assert resolve(table, row, "paper", 0).config["data"]["input_size"] == 227
    assert resolve(table, row, "proxy", 0).config["data"]["input_size"] == 72  # the table's proxy size
    config = resolve(table, row, "paper", 0).config
    config["eval"]["center_crop"] = 224
    with pytest.raises(ReproError, match="eval.center_crop 224 differs from data.crop 227"):
        TASK.finalize(config)
    config = table9_config(resize=36)
    with pytest.raises(ReproError, match="cifar10 images are 32x32"):
        TASK.finalize(config)


def test_profiles_use_the_digits():
    for profile in ("smoke", "proxy"):
        config = table9_config(row="resnet_lbb56_imagenet_sub", profile=profile)
        assert config["data"]["name"] == "digits" and config["model"]["n_classes"] == 10
        assert config["model"]["block"] == "lbb"


def test_digits_are_deterministic_and_split():
    a, la = digits.render(20, 32, 0, "train")
    b, lb = digits.render(20, 32, 0, "train")
    assert torch.equal(a, b) and torch.equal(la, lb) and a.shape == (20, 3, 32, 32)
    c, _ = digits.render(20, 32, 0, "val")
    assert not torch.equal(a, c)
    _, labels = digits.render(500, 16, 1, "train")
    assert set(labels.tolist()) == set(range(10))


def test_pad_crop_shifts_by_at_most_pad():
    images = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6) + 1
    out = pad_crop(images, 2, torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    for k in range(2):  # every output is a shifted window of the zero-padded image
        padded = torch.nn.functional.pad(images[k], (2, 2, 2, 2))
        assert any(torch.equal(out[k], padded[:, y:y + 6, x:x + 6]) for y in range(5) for x in range(5))


def test_evaluate_topk():
    class Fixed(torch.nn.Module):
        def forward(self, x):  # class scores: 9 > 8 > ... > 0, whatever the input
            return torch.arange(10.0).expand(len(x), 10)

    from repro.tasks.classification.datasets import ArraySplit
    split = ArraySplit(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.tensor([9, 5, 0, 7]))
    config = {"data": {"name": "digits", "classes": 10, "augment": {}}, "train": {"batch_size": 3}}
    scores = TASK.evaluate(Fixed(), split, config)
    assert scores["top1_acc"] == 25.0 and scores["top5_acc"] == 75.0  # 9; 9, 5, 7
    assert scores["top1_err"] == 75.0 and scores["top5_err"] == 25.0


def test_loss_with_distillation(tmp_path):
    """The distillation recipe mixes the task's loss with the cross-entropy against a teacher's
    softmax: (1 - w) CE(labels) + w CE(teacher)."""
    import json

    from repro.config import resolve
    from repro.plugins import get_paper
    from repro.recipes import Context, Distillation

    table = get_paper("bulat2019").table("4")
    teacher_config = resolve(table, table.row("real_resnet18"), "smoke", 0).config
    teacher = TASK.build_model(teacher_config).eval()
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "config.json").write_text(json.dumps(teacher_config))
    torch.save(teacher.state_dict(), tmp_path / "t" / "model.pt")
    recipe = Distillation({"teacher": "real_resnet18", "teacher_hash": "t", "weight": 0.25},
                          Context(TASK, teacher_config, tmp_path))
    images, labels = torch.randn(4, 3, 32, 32), torch.tensor([1, 2, 3, 4])
    logits = torch.randn(4, 10)
    plain = TASK.loss(logits, labels, teacher_config)
    assert torch.allclose(plain, torch.nn.functional.cross_entropy(logits, labels))
    with torch.no_grad():
        soft = torch.softmax(teacher(images), dim=1)
    soft_ce = -(soft * logits.log_softmax(1)).sum(1).mean()
    assert torch.allclose(recipe.loss(plain, images, logits), 0.75 * plain + 0.25 * soft_ce)
