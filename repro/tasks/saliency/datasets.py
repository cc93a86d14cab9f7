"""The salient-object datasets in their distributed layouts: an image folder and a mask folder per
dataset, image and mask paired by file name (stem); `repro data check` knows each of them.

    DUTS-TR    data/DUTS-TR/DUTS-TR-Image/*.jpg        data/DUTS-TR/DUTS-TR-Mask/*.png        10553
    DUTS-TE    data/DUTS-TE/DUTS-TE-Image/*.jpg        data/DUTS-TE/DUTS-TE-Mask/*.png         5019
    ECSSD      data/ECSSD/images/*.jpg                 data/ECSSD/ground_truth_mask/*.png      1000
    HKU-IS     data/HKU-IS/imgs/*                      data/HKU-IS/gt/*.png                    4447
    PASCAL-S   data/PASCAL-S/datasets/imgs/pascal/*    data/PASCAL-S/datasets/masks/pascal/*    850
    DUT-OMRON  data/DUT-OMRON/DUT-OMRON-image/*.jpg    data/DUT-OMRON/pixelwiseGT-new-PNG/*.png 5168

(DUTS-TR.zip / DUTS-TE.zip unpack to their folders; ECSSD's images.zip and ground_truth_mask.zip,
HKU-IS's archive, the salObj release's datasets/ tree and DUT-OMRON's two archives go in the
folder named.) Images are decoded per batch (in DataLoader workers).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ...datasets import DataReport
from ...errors import ReproError
from ...registry import DATASETS

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
MASK_SUFFIXES = {".png", ".bmp", ".jpg"}

SOD_DATASETS = {
    "duts_tr": {"folder": "DUTS-TR", "images": "DUTS-TR-Image", "masks": "DUTS-TR-Mask", "official": 10553,
                "source": "http://saliencydetection.net/duts/ (DUTS-TR.zip)"},
    "duts_test": {"folder": "DUTS-TE", "images": "DUTS-TE-Image", "masks": "DUTS-TE-Mask", "official": 5019,
                  "source": "http://saliencydetection.net/duts/ (DUTS-TE.zip)"},
    "ecssd": {"folder": "ECSSD", "images": "images", "masks": "ground_truth_mask", "official": 1000,
              "source": "https://www.cse.cuhk.edu.hk/leojia/projects/hsaliency/dataset.html (images.zip, ground_truth_mask.zip)"},
    "hku_is": {"folder": "HKU-IS", "images": "imgs", "masks": "gt", "official": 4447,
               "source": "https://sites.google.com/site/ligb86/hkuis (HKU-IS archive: imgs/, gt/)"},
    "pascal_s": {"folder": "PASCAL-S", "images": "datasets/imgs/pascal", "masks": "datasets/masks/pascal", "official": 850,
                 "source": "http://cbs.ic.gatech.edu/salobj/ (salObj release: datasets/imgs/pascal, datasets/masks/pascal)"},
    "dut_omron": {"folder": "DUT-OMRON", "images": "DUT-OMRON-image", "masks": "pixelwiseGT-new-PNG", "official": 5168,
                  "source": "http://saliencydetection.net/dut-omron/ (DUT-OMRON-image.zip, DUT-OMRON-gt-pixelwise.zip)"},
}
TEST_SETS = ("ecssd", "hku_is", "pascal_s", "dut_omron", "duts_test")
TRAIN_SETS = ("duts_tr",)


# Many SOD codebases re-package every benchmark as <Dataset>/Image + <Dataset>/Mask: accepted too.
REPACKAGED = ("Image", "Mask")


def layout(name: str, root: Path) -> tuple[Path, Path]:
    """(image folder, mask folder): the distributed layout, or the common re-packaged one where
    only that exists."""
    spec = SOD_DATASETS[name]
    folder = root / spec["folder"]
    if not (folder / spec["images"]).is_dir() and (folder / REPACKAGED[0]).is_dir():
        return folder / REPACKAGED[0], folder / REPACKAGED[1]
    return folder / spec["images"], folder / spec["masks"]


def _files(folder: Path, suffixes: set[str]) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in suffixes} if folder.is_dir() else {}


@dataclass
class PairSplit:
    """Image and mask files, decoded per batch."""
    images: list[Path]
    masks: list[Path]

    decoded_in_workers = True

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class ArraySplit:
    """Images and masks in memory (the synthetic data): uint8 [N, 3, S, S] and [N, S, S]."""
    images: torch.Tensor
    masks: torch.Tensor

    def __len__(self) -> int:
        return len(self.images)


def pairs(name: str, root: Path) -> PairSplit:
    """Every image of the dataset with its mask; a ReproError naming what is missing."""
    image_dir, mask_dir = layout(name, root)
    images, masks = _files(image_dir, IMAGE_SUFFIXES), _files(mask_dir, MASK_SUFFIXES)
    if not images:
        raise ReproError(f"{name}: no images in {image_dir}: put them there ({SOD_DATASETS[name]['source']})")
    unmatched = sorted(set(images) - set(masks))
    if unmatched:
        raise ReproError(f"{name}: {len(unmatched)} image(s) have no mask in {mask_dir} (first: {unmatched[0]}): "
                         f"put each mask there under its image's name")
    stems = sorted(images)
    return PairSplit([images[s] for s in stems], [masks[s] for s in stems])


def read_image(path: Path, size: int) -> torch.Tensor:
    """uint8 [3, size, size]: RGB, resized (bilinear) to the input size, as CPD's loader."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB").resize((size, size), Image.BILINEAR)
            return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)
    except OSError as exc:
        raise ReproError(f"{path}: cannot be read as an image ({exc}): replace it with the dataset's original file") from None


def read_mask(path: Path, size: int | None = None) -> torch.Tensor:
    """uint8 [H, W] (grey levels); resized (bilinear) to ``size`` x ``size`` where given."""
    try:
        with Image.open(path) as mask:
            mask = mask.convert("L")
            if size is not None:
                mask = mask.resize((size, size), Image.BILINEAR)
            return torch.from_numpy(np.asarray(mask, dtype=np.uint8).copy())
    except OSError as exc:
        raise ReproError(f"{path}: cannot be read as a mask ({exc}): replace it with the dataset's original file") from None


def check(root: Path, name: str) -> DataReport:
    spec = SOD_DATASETS[name]
    image_dir, mask_dir = layout(name, root)
    report = DataReport(name, root / spec["folder"], spec["source"])
    images, masks = _files(image_dir, IMAGE_SUFFIXES), _files(mask_dir, MASK_SUFFIXES)
    if not images:
        report.missing.append(f"{spec['images']}/: put the images in {image_dir}")
    if not masks:
        report.missing.append(f"{spec['masks']}/: put the ground-truth masks in {mask_dir}")
    if images and masks:
        unmatched = sorted(set(images) - set(masks))
        if unmatched:
            report.missing.append(f"{len(unmatched)} mask(s), e.g. {mask_dir / (unmatched[0] + '.png')}: each image needs "
                                  f"its mask under the same name")
        report.found.append(f"{image_dir}: {len(images)} images; {mask_dir}: {len(masks)} masks")
        report.counts.append(("images", len(images), spec["official"]))
        extra = len(set(masks) - set(images))
        if extra:
            report.notes.append(f"{extra} mask(s) without an image (ignored)")
    return report


for _name in SOD_DATASETS:
    DATASETS.register(_name)(partial(check, name=_name))
