"""Readers for the real datasets: CIFAR-10/100 (the python pickle folders) and image-folder trees
(ImageNet: ``<root>/<split>/<class>/<image>``, read with PIL; classes are the sorted folder names).

CIFAR splits are loaded into memory (uint8); image folders stay on disk and are decoded per batch.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ...datasets import DataReport
from ...errors import ReproError
from ...registry import DATASETS

CIFAR = {
    "cifar10": {"folder": "cifar-10-batches-py", "train": [f"data_batch_{i}" for i in range(1, 6)],
                "val": ["test_batch"], "labels": b"labels"},
    "cifar100": {"folder": "cifar-100-python", "train": ["train"], "val": ["test"], "labels": b"fine_labels"},
}
IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png", ".bmp", ".ppm", ".webp"}


@dataclass
class ArraySplit:
    """Images held in memory at the network's input size."""
    images: torch.Tensor  # uint8 [N, 3, H, W]
    labels: torch.Tensor  # int64 [N]

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class FolderSplit:
    """Image files decoded per batch (resized, then cropped), in DataLoader workers (repro/data.py)."""
    paths: list[Path]
    labels: torch.Tensor  # int64 [N]
    classes: list[str]

    decoded_in_workers = True

    def __len__(self) -> int:
        return len(self.labels)


def cifar_missing(root: Path, name: str) -> list[str]:
    spec = CIFAR[name]
    return [f for f in spec["train"] + spec["val"] if not (root / spec["folder"] / f).is_file()]


def load_cifar(root: Path, name: str, split: str) -> ArraySplit:
    spec = CIFAR[name]
    images, labels = [], []
    for file in spec[split]:
        path = root / spec["folder"] / file
        try:
            with open(path, "rb") as handle:
                batch = pickle.load(handle, encoding="bytes")
            images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.extend(batch[spec["labels"]])
        except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError, AttributeError) as exc:
            raise ReproError(f"{path}: not a readable {name} batch ({type(exc).__name__}): the file is damaged or "
                             f"truncated; unpack the python version's archive again") from None
    return ArraySplit(torch.from_numpy(np.concatenate(images)), torch.tensor(labels, dtype=torch.long))


def folder_classes(split_dir: Path) -> list[str]:
    return sorted(d.name for d in split_dir.iterdir() if d.is_dir()) if split_dir.is_dir() else []


def load_folder(split_dir: Path, classes: list[str]) -> FolderSplit:
    """Every image file under ``split_dir/<class>/`` (classes indexed as given, sorted names)."""
    paths, labels = [], []
    for index, name in enumerate(classes):
        folder = split_dir / name
        if not folder.is_dir():
            raise ReproError(f"{split_dir} has no folder for class '{name}' (the classes must match the training split's)")
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        paths += files
        labels += [index] * len(files)
    if not paths:
        raise ReproError(f"no images found under {split_dir}/<class>/")
    return FolderSplit(paths, torch.tensor(labels, dtype=torch.long), classes)


def decode(path: Path, resize: int | None, crop: int, offset: tuple[float, float] | None) -> torch.Tensor:
    """Read an image as uint8 [3, crop, crop]: shorter side resized to ``resize`` (bilinear; None
    keeps the size), then a crop at relative ``offset`` (fractions of the free room; None = centre)."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            return _resize_crop(image, path, resize, crop, offset)
    except OSError as exc:  # PIL's UnidentifiedImageError and "image file is truncated" are OSErrors
        raise ReproError(f"{path}: cannot be read as an image ({exc}): replace it with the dataset's original file") from None


def _resize_crop(image: Image.Image, path: Path, resize: int | None, crop: int, offset) -> torch.Tensor:
    if resize:
        w, h = image.size
        scale = resize / min(w, h)
        image = image.resize((max(resize, round(w * scale)), max(resize, round(h * scale))), Image.BILINEAR)
    w, h = image.size
    if w < crop or h < crop:
        raise ReproError(f"{path} is {w}x{h} after resizing, smaller than the {crop}px crop (set data.resize)")
    fx, fy = offset if offset is not None else (0.5, 0.5)
    left, top = round(fx * (w - crop)), round(fy * (h - crop))
    array = np.asarray(image.crop((left, top, left + crop, top + crop)), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


CIFAR_COUNTS = {"train": 50000, "val": 10000}
IMAGENET_COUNTS = {"classes": 1000, "train": 1281167, "val": 50000}
SOURCES = {"cifar10": "https://www.cs.toronto.edu/~kriz/cifar.html (CIFAR-10 python version)",
           "cifar100": "https://www.cs.toronto.edu/~kriz/cifar.html (CIFAR-100 python version)",
           "imagenet": "https://image-net.org (ILSVRC2012 train and validation images)"}


def _check_cifar(data: Path, name: str) -> DataReport:
    folder = data / CIFAR[name]["folder"]
    report = DataReport(name, folder, SOURCES[name])
    missing = cifar_missing(data, name)
    if missing:
        report.missing.append(f"{', '.join(missing)}: unpack the python version's archive in {data} (they go in {folder})")
        return report
    for split in ("train", "val"):
        try:
            count = len(load_cifar(data, name, split))
        except ReproError as exc:
            report.missing.append(str(exc))
            return report
        report.counts.append((f"{split} images", count, CIFAR_COUNTS[split]))
    report.found.append(f"{folder}: {', '.join(CIFAR[name]['train'] + CIFAR[name]['val'])}")
    return report


for _name in CIFAR:
    DATASETS.register(_name)(partial(_check_cifar, name=_name))


def _check_folders(data: Path, name: str, official: dict[str, int]) -> DataReport:
    root = data / name
    report = DataReport(name, root, SOURCES["imagenet"])
    for split in ("train", "val"):
        classes = folder_classes(root / split)
        if not classes:
            report.missing.append(f"{split}/: put the {split} images in {root / split}/<class>/ (one folder per class)")
            continue
        count = sum(1 for c in classes for p in (root / split / c).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        report.counts += [(f"{split} classes", len(classes), official.get("classes")),
                          (f"{split} images", count, official.get(split))]
        report.found.append(f"{root / split}: {count} images in {len(classes)} class folders")
    if not report.missing and folder_classes(root / "train") != folder_classes(root / "val"):
        report.missing.append(f"{root / 'val'}: its class folders differ from train/'s: sort the validation images into the same classes")
    return report


DATASETS.register("imagenet")(partial(_check_folders, name="imagenet", official=IMAGENET_COUNTS))
DATASETS.register("imagenet_subset")(partial(_check_folders, name="imagenet_subset", official={}))  # liu2020 Table 9
