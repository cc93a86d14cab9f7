"""MPII Human Pose (Andriluka et al. 2014) from its files, with Tompson et al.'s split (train
22246 persons, validation 2958 from 2729 images) as the stacked-hourglass release lists it.

Layout under ``<data>/mpii/``::

    images/                               the official images (mpii_human_pose_v1.tar.gz)
    annot/train.h5, annot/valid.h5        pose-hg-train's annotations (github.com/princeton-vl/pose-hg-train, data/mpii/annot)
    mpii_human_pose_v1_u12_1.mat          optional: the official annotations

The h5 files hold, per person: ``imgname``, ``index`` and ``person`` (0-based image and person
in the official annotation list), ``center``, ``scale`` (person height / 200 px), ``part``
[16, 2] (0-based pixels; (0, 0) where the joint is not annotated), ``visible`` [16] and
``normalize`` (the head size, 0.6 x the head box's diagonal). Where the official .mat is there
too, joints, head boxes, centres and scales are read from it (1-based MATLAB pixels, made
0-based) and the h5 files give only the split: which (image, person) belongs where.

The crop is Newell's: centre moved down by 15 x scale pixels, side 1.25 x 200 x scale.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...datasets import DataReport
from ...errors import ReproError
from ...registry import DATASETS
from ..keypoints.files import KeypointFiles
from .joints import NUM_JOINTS

OFFICIAL_COUNTS = {"train": 22246, "valid": 2958}
MAT_NAME = "mpii_human_pose_v1_u12_1.mat"
H5_FIELDS = ("imgname", "index", "person", "center", "scale", "part", "visible", "normalize")
CROP_SHIFT, CROP_MARGIN, PERSON_HEIGHT = 15.0, 1.25, 200.0


def paths(root: Path) -> dict[str, Path]:
    return {"images": root / "images", "train": root / "annot" / "train.h5", "valid": root / "annot" / "valid.h5",
            "mat": root / MAT_NAME}


def read_h5(path: Path) -> dict[str, np.ndarray]:
    """The fields of one pose-hg-train annotation file, as arrays."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            missing = [name for name in H5_FIELDS if name not in handle]
            if missing:
                raise ReproError(f"{path}: not a pose-hg-train MPII annotation file (no {', '.join(missing)}): "
                                 f"use annot/train.h5 and annot/valid.h5 of github.com/princeton-vl/pose-hg-train")
            fields = {name: handle[name][()] for name in H5_FIELDS}
    except (OSError, KeyError) as exc:
        raise ReproError(f"{path}: cannot be read as HDF5 ({exc}): the file is damaged or truncated; "
                         f"download it again") from None
    fields["imgname"] = np.array([n.decode() if isinstance(n, bytes) else str(n) for n in fields["imgname"]])
    n = len(fields["imgname"])
    shapes = {"index": (n,), "person": (n,), "center": (n, 2), "scale": (n,), "part": (n, NUM_JOINTS, 2),
              "visible": (n, NUM_JOINTS), "normalize": (n,)}
    for name, shape in shapes.items():
        if fields[name].shape != shape:
            raise ReproError(f"{path}: field '{name}' has shape {fields[name].shape}, expected {shape}: the file is damaged")
    return fields


def read_mat(path: Path) -> dict[tuple[int, int], dict]:
    """The official annotation file: (image index, person index) -> name, joints [16, 2]
    (0-based), labelled [16], visible [16], head box, centre, scale; persons without joints
    or without a position are left out (they are not in any split)."""
    from scipy.io import loadmat

    try:
        release = loadmat(str(path), squeeze_me=True, struct_as_record=False)["RELEASE"]
        annolist = _items(release.annolist)
    except Exception as exc:  # scipy raises several types for a damaged file
        raise ReproError(f"{path}: cannot be read as the official MPII annotation file ({type(exc).__name__}: {exc}): "
                         f"download mpii_human_pose_v1_u12_2.zip again") from None
    persons = {}
    for image_index, entry in enumerate(annolist):
        for person, rect in enumerate(_items(getattr(entry, "annorect", []))):
            points = _items(getattr(getattr(rect, "annopoints", None), "point", []))
            objpos = getattr(rect, "objpos", None)
            if not points or not hasattr(objpos, "x") or not np.size(getattr(rect, "scale", [])):
                continue
            joints, labelled, visible = np.zeros((NUM_JOINTS, 2)), np.zeros(NUM_JOINTS, bool), np.zeros(NUM_JOINTS, bool)
            for point in points:
                joint = int(point.id)
                joints[joint] = (float(point.x) - 1, float(point.y) - 1)
                labelled[joint] = True
                flag = getattr(point, "is_visible", 1)
                visible[joint] = bool(int(flag)) if np.size(flag) and str(flag).strip() else True
            persons[(image_index, person)] = {
                "name": str(entry.image.name), "joints": joints, "labelled": labelled, "visible": visible,
                "head_box": np.array([rect.x1, rect.y1, rect.x2, rect.y2], np.float64) - 1,
                "centre": np.array([float(objpos.x), float(objpos.y)]) - 1, "scale": float(rect.scale)}
    return persons


def _items(value) -> list:
    """A MATLAB struct array as a list (loadmat squeezes one element to the element, none to [])."""
    if isinstance(value, np.ndarray):
        return list(value.flat)
    return [] if value is None else [value]


def load(root: Path, split: str) -> KeypointFiles:
    """The ``train`` or ``valid`` persons of MPII at ``root``."""
    where = paths(root)
    fields = read_h5(where[split])
    if where["mat"].is_file():
        official = read_mat(where["mat"])
        keys = list(zip(fields["index"].tolist(), fields["person"].tolist()))
        absent = [key for key in keys if key not in official]
        if absent:
            raise ReproError(f"{where[split]} lists image {absent[0][0]} person {absent[0][1]} (0-based), which "
                             f"{where['mat']} does not annotate: the two files are from different releases")
        people = [official[key] for key in keys]
        names = [p["name"] for p in people]
        joints = np.stack([p["joints"] for p in people])
        labelled = np.stack([p["labelled"] for p in people])
        occluded = labelled & ~np.stack([p["visible"] for p in people])
        boxes = np.stack([p["head_box"] for p in people])
        centres, scales = np.stack([p["centre"] for p in people]), np.array([p["scale"] for p in people])
    else:
        names, joints = list(fields["imgname"]), fields["part"].astype(np.float64)
        labelled = (joints > 0).any(-1)
        occluded = labelled & (fields["visible"] == 0)
        # Only the head size is stored: a square box whose 0.6 x diagonal is that size, about the head.
        half = fields["normalize"] / (0.6 * np.sqrt(2)) / 2
        head = joints[:, 8:10].mean(1)
        boxes = np.concatenate([head - half[:, None], head + half[:, None]], axis=1)
        centres, scales = fields["center"].astype(np.float64), fields["scale"].astype(np.float64)
    centres = centres + np.stack([np.zeros_like(scales), CROP_SHIFT * scales], axis=1)
    return KeypointFiles(
        paths=[str(where["images"] / name) for name in names],
        keypoints=torch.from_numpy(joints).float(), visible=torch.from_numpy(labelled).bool(),
        boxes=torch.from_numpy(boxes).float(), centres=torch.from_numpy(centres).float(),
        sides=torch.from_numpy(CROP_MARGIN * PERSON_HEIGHT * scales).float(),
        extra={"occluded": torch.from_numpy(occluded)})


SOURCE = ("images: http://human-pose.mpi-inf.mpg.de (mpii_human_pose_v1.tar.gz; the official annotations "
          "mpii_human_pose_v1_u12_2.zip); split: data/mpii/annot/{train,valid}.h5 of github.com/princeton-vl/pose-hg-train")


@DATASETS.register("mpii")
def check(data: Path) -> DataReport:
    root = data / "mpii"
    where = paths(root)
    report = DataReport("mpii", root, SOURCE)
    if not where["images"].is_dir():
        report.missing.append(f"images/: put MPII's images (mpii_human_pose_v1.tar.gz, folder images/) in {where['images']}")
    for split in ("train", "valid"):
        if not where[split].is_file():
            report.missing.append(f"annot/{split}.h5: put pose-hg-train's data/mpii/annot/{split}.h5 at {where[split]}")
    if report.missing:
        return report
    for split in ("train", "valid"):
        persons = load(root, split)
        names = sorted(set(persons.paths))
        absent = [p for p in names if not Path(p).is_file()]
        report.found.append(f"{where[split]}: {len(persons)} persons in {len(names)} images")
        report.counts.append((f"{split} persons", len(persons), OFFICIAL_COUNTS[split]))
        if absent:
            report.missing.append(f"{len(absent)} of the {len(names)} {split} images, e.g. {Path(absent[0]).name}: "
                                  f"put them in {where['images']}")
    if where["mat"].is_file():
        report.found.append(f"{where['mat']}: joints, head boxes, centres and scales read from it (the h5 files give the split)")
    else:
        report.notes.append(f"no {MAT_NAME}: joints, centres and scales from the h5 files, head size from their 'normalize' "
                            f"(the same numbers); put the official file at {where['mat']} to read them from it")
    return report
