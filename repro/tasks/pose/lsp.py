"""Leeds Sports Pose (Johnson & Everingham 2010) and its extended training set LSPET (2011), from
their files. Both annotate 14 joints in LSP's order (the ``lsp`` joint set)::

    <data>/lsp/joints.mat     'joints' 3 x 14 x 2000: x, y, and 1 where the joint is OCCLUDED
    <data>/lsp/images/im0001.jpg ... im2000.jpg
    <data>/lspet/joints.mat   'joints' 14 x 3 x 10000: x, y, and 1 where the joint is VISIBLE
    <data>/lspet/images/im00001.jpg ... im10000.jpg

LSP: the first 1000 images train, the last 1000 test (liu2020 sec. 4.2.1, the dataset's own
split); every joint has a position (occluded ones estimated), so all 14 are labelled and scored.
The crop is the whole image about its centre ("the image center as the body position and ...
the body scale by the image size", liu2020 sec. 4.2.1). LSPET (all training): a joint with
flag 0 has no reliable position and is not labelled; the crop is centred on the labelled
joints' extent, 1.25 x its longer side (LSPET images are not cropped to the person).
Coordinates are taken as 1-based MATLAB pixels and made 0-based.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ...datasets import DataReport
from ...errors import ReproError
from ...registry import DATASETS
from ..keypoints.files import KeypointFiles

LSP_SPLITS = {"train": range(0, 1000), "test": range(1000, 2000)}
OFFICIAL_COUNTS = {"lsp": 2000, "lspet": 10000}
FILE_NAMES = {"lsp": "im{:04d}.jpg", "lspet": "im{:05d}.jpg"}
LSPET_MARGIN = 1.25


def read_joints(path: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(joints [N, 14, 2] 0-based, flag [N, 14]) of ``lsp`` or ``lspet``'s joints.mat, as stored
    (the flag means occluded in LSP, visible in LSPET)."""
    from scipy.io import loadmat

    try:
        joints = np.asarray(loadmat(str(path))["joints"], np.float64)
    except Exception as exc:  # scipy raises several types for a damaged file
        raise ReproError(f"{path}: cannot be read as {name}'s joints.mat ({type(exc).__name__}: {exc}): download it again") from None
    if name == "lsp":
        if joints.ndim != 3 or joints.shape[:2] != (3, 14):
            raise ReproError(f"{path}: 'joints' is {joints.shape}, LSP's is 3 x 14 x 2000: is this LSPET's file?")
        joints = joints.transpose(2, 1, 0)
    else:
        if joints.ndim != 3 or joints.shape[:2] != (14, 3):
            raise ReproError(f"{path}: 'joints' is {joints.shape}, LSPET's is 14 x 3 x 10000: is this LSP's file?")
        joints = joints.transpose(2, 0, 1)
    return joints[..., :2] - 1, joints[..., 2]


def load(root: Path, name: str, split: str = "train") -> KeypointFiles:
    """LSP's ``train`` or ``test`` split, or all of LSPET (``name="lspet"``), at ``root/<name>``."""
    folder = root / name
    joints, flags = read_joints(folder / "joints.mat", name)
    indices = list(LSP_SPLITS[split]) if name == "lsp" else list(range(len(joints)))
    if name == "lsp" and len(joints) != OFFICIAL_COUNTS["lsp"]:
        raise ReproError(f"{folder / 'joints.mat'} has {len(joints)} images, LSP has 2000: the file is not LSP's")
    joints, flags = joints[indices], flags[indices]
    image_paths = [str(folder / "images" / FILE_NAMES[name].format(i + 1)) for i in indices]
    if name == "lsp":
        labelled = np.ones(flags.shape, bool)
        occluded = flags > 0
        sizes = np.array([_image_size(p) for p in image_paths], np.float64)
        centres, sides = (sizes - 1) / 2, sizes.max(1)
    else:
        labelled = flags > 0
        occluded = np.zeros(flags.shape, bool)
        masked = np.where(labelled[..., None], joints, np.nan)
        low, high = np.nanmin(masked, axis=1), np.nanmax(masked, axis=1)
        if np.isnan(low).any():
            raise ReproError(f"{folder / 'joints.mat'}: image {int(np.isnan(low).any(1).argmax()) + 1} has no visible joint")
        centres, sides = (low + high) / 2, LSPET_MARGIN * (high - low).max(1)
    return KeypointFiles(
        paths=image_paths, keypoints=torch.from_numpy(joints).float(), visible=torch.from_numpy(labelled),
        boxes=torch.full((len(indices), 4), float("nan")),  # LSP has no head boxes: PCK is normalized by the torso
        centres=torch.from_numpy(centres).float(), sides=torch.from_numpy(sides).float(),
        extra={"occluded": torch.from_numpy(occluded)})


def _image_size(path: str) -> tuple[int, int]:
    try:
        with Image.open(path) as image:  # reads the header only
            return image.size
    except OSError as exc:
        raise ReproError(f"{path}: cannot be read as an image ({exc}): put LSP's images in {Path(path).parent}") from None


SOURCES = {"lsp": "http://sam.johnson.io/research/lsp.html (lsp_dataset.zip)",
           "lspet": "http://sam.johnson.io/research/lspet.html (lspet_dataset.zip)"}


def _check(data: Path, name: str) -> DataReport:
    folder = data / name
    report = DataReport(name, folder, SOURCES[name])
    if not (folder / "joints.mat").is_file():
        report.missing.append(f"joints.mat: put {name}'s joints.mat at {folder / 'joints.mat'}")
    if not (folder / "images").is_dir():
        report.missing.append(f"images/: put {name}'s images ({FILE_NAMES[name].format(1)} ...) in {folder / 'images'}")
    if report.missing:
        return report
    joints, _ = read_joints(folder / "joints.mat", name)
    count = len(joints)
    report.counts.append(("images", count, OFFICIAL_COUNTS[name]))
    report.found.append(f"{folder / 'joints.mat'}: {count} annotated images"
                        + (", the first 1000 train, the last 1000 test" if name == "lsp" else ", all training"))
    files = [folder / "images" / FILE_NAMES[name].format(i + 1) for i in range(count)]
    absent = [f for f in files if not f.is_file()]
    if absent:
        report.missing.append(f"{len(absent)} of the {count} images, e.g. {absent[0].name}: put them in {folder / 'images'}")
    return report


for _name in ("lsp", "lspet"):
    DATASETS.register(_name)(partial(_check, name=_name))
