"""AFLW (Koestinger et al. 2011) from its files: 25993 faces in 21997 Flickr images, up to 21
landmarks each, a face rectangle and a head pose.

Layout under ``<data>/aflw/``::

    aflw.sqlite            the database as distributed (tables FaceImages, Faces, FaceRect,
                           FacePose, FeatureCoords)
    flickr/0/ flickr/2/ flickr/3/   the image folders (FaceImages.filepath is relative to flickr/)
    test_faces.txt         optional: face_ids of the test set, one a line

Landmarks: ``FeatureCoords.feature_id`` 1-21 in AFLW's order (landmarks.py); a landmark without
a row is not labelled. The NME's box is the face rectangle; yaw is ``FacePose.yaw`` (radians,
made degrees). The crop: the rectangle's centre, side 200 x (w + h) / 195 (Bulat's
face-alignment convention). Coordinates are taken as 0-based pixels, as stored.

Test split: bulat2017 uses "the test set used in [23]" (All-in-One, Ranjan et al.), whose face
list was not published with it: HyperFace / All-in-One test on 1000 images drawn at random. Put
that list in ``test_faces.txt`` when you have it; without it the test set is the faces of 1000
images drawn with ``data.seed`` (recorded as an assumption), and every other face trains.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import torch

from ...datasets import DataReport
from ...errors import ReproError
from ...registry import DATASETS
from ..keypoints.files import KeypointFiles
from .landmarks import LANDMARK_NAMES

OFFICIAL_COUNTS = {"faces": 25993, "images": 21997}
TEST_IMAGES = 1000
TABLES = ("FaceImages", "Faces", "FaceRect", "FacePose", "FeatureCoords")


def read(root: Path) -> dict[str, np.ndarray]:
    """Every face of ``root/aflw.sqlite`` that has a rectangle and a pose."""
    path = root / "aflw.sqlite"
    if not path.is_file():
        raise ReproError(f"{path} not found: put AFLW's aflw.sqlite there")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            present = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            missing = [t for t in TABLES if t not in present]
            if missing:
                raise ReproError(f"{path}: no table {', '.join(missing)}: not AFLW's database (or a damaged copy): download it again")
            faces = db.execute(
                "SELECT f.face_id, i.filepath, i.file_id, r.x, r.y, r.w, r.h, p.yaw FROM Faces f "
                "JOIN FaceImages i ON i.file_id = f.file_id JOIN FaceRect r ON r.face_id = f.face_id "
                "JOIN FacePose p ON p.face_id = f.face_id ORDER BY f.face_id").fetchall()
            coords = db.execute("SELECT face_id, feature_id, x, y FROM FeatureCoords").fetchall()
    except sqlite3.DatabaseError as exc:
        raise ReproError(f"{path}: cannot be read as SQLite ({exc}): the file is damaged or truncated; download it again") from None
    ids = np.array([f[0] for f in faces], np.int64)
    row_of = {face_id: i for i, face_id in enumerate(ids.tolist())}
    landmarks = np.full((len(faces), len(LANDMARK_NAMES), 2), np.nan)
    for face_id, feature, x, y in coords:
        if face_id in row_of and 1 <= feature <= len(LANDMARK_NAMES):
            landmarks[row_of[face_id], feature - 1] = (x, y)
    rect = np.array([f[3:7] for f in faces], np.float64).reshape(-1, 4)
    return {"face_id": ids, "filepath": np.array([f[1] for f in faces]), "file_id": np.array([str(f[2]) for f in faces]),
            "landmarks": landmarks, "boxes": np.concatenate([rect[:, :2], rect[:, :2] + rect[:, 2:]], axis=1),
            "yaw": np.degrees(np.array([f[7] for f in faces], np.float64))}


def test_mask(root: Path, faces: dict[str, np.ndarray], seed: int) -> np.ndarray:
    """Which faces are in the test set: ``test_faces.txt`` if present, else the faces of 1000
    images drawn with ``seed``."""
    listed = root / "test_faces.txt"
    if listed.is_file():
        try:
            ids = {int(line) for line in listed.read_text().split()}
        except ValueError:
            raise ReproError(f"{listed}: expected one AFLW face_id (an integer) a line") from None
        unknown = ids - set(faces["face_id"].tolist())
        if unknown:
            raise ReproError(f"{listed} names face {min(unknown)}, which aflw.sqlite does not have (with a rectangle and a pose)")
        return np.isin(faces["face_id"], list(ids))
    images = np.unique(faces["file_id"])
    chosen = np.random.default_rng(seed).permutation(images)[:min(TEST_IMAGES, len(images) // 2)]
    return np.isin(faces["file_id"], chosen)


def load(root: Path, split: str, seed: int) -> KeypointFiles:
    """AFLW's ``train`` or ``test`` faces at ``root``."""
    faces = read(root)
    keep = test_mask(root, faces, seed)
    keep = keep if split == "test" else ~keep
    boxes = faces["boxes"][keep]
    landmarks = faces["landmarks"][keep]
    size = boxes[:, 2:] - boxes[:, :2]
    return KeypointFiles(
        paths=[str(root / "flickr" / p) for p in faces["filepath"][keep]],
        keypoints=torch.from_numpy(np.nan_to_num(landmarks, nan=-1.0)).float(),
        visible=torch.from_numpy(~np.isnan(landmarks).any(-1)),
        boxes=torch.from_numpy(boxes).float(), centres=torch.from_numpy((boxes[:, :2] + boxes[:, 2:]) / 2).float(),
        sides=torch.from_numpy(200.0 * size.sum(1) / 195.0).float(),
        extra={"yaw": torch.from_numpy(faces["yaw"][keep]).float(), "face_id": torch.from_numpy(faces["face_id"][keep])})


SOURCE = "request it from its authors: https://www.tugraz.at/institute/icg/research/team-bischof/lrs/downloads/aflw/"


@DATASETS.register("aflw")
def check(data: Path) -> DataReport:
    root = data / "aflw"
    report = DataReport("aflw", root, SOURCE)
    if not (root / "aflw.sqlite").is_file():
        report.missing.append(f"aflw.sqlite: put AFLW's database at {root / 'aflw.sqlite'}")
    if not (root / "flickr").is_dir():
        report.missing.append(f"flickr/: put AFLW's image folders (flickr/0, flickr/2, flickr/3) in {root / 'flickr'}")
    if report.missing:
        return report
    faces = read(root)
    report.counts += [("faces", len(faces["face_id"]), OFFICIAL_COUNTS["faces"]),
                      ("images", len(np.unique(faces["file_id"])), OFFICIAL_COUNTS["images"])]
    labelled = (~np.isnan(faces["landmarks"]).any(-1)).sum(1)
    report.found.append(f"{root / 'aflw.sqlite'}: {len(faces['face_id'])} faces with a rectangle and a pose, "
                        f"{labelled.mean():.1f} of 21 landmarks a face on average")
    files = sorted(set(faces["filepath"].tolist()))
    absent = [f for f in files if not (root / "flickr" / f).is_file()]
    if absent:
        report.missing.append(f"{len(absent)} of the {len(files)} images, e.g. flickr/{absent[0]}: put them in {root / 'flickr'}")
    listed = root / "test_faces.txt"
    if listed.is_file():
        report.found.append(f"{listed}: the test set's face_ids")
    else:
        report.notes.append(f"no test_faces.txt: the test set is the faces of {TEST_IMAGES} images drawn with data.seed "
                            f"(HyperFace / All-in-One's protocol, whose list is not published); put the face_ids at {listed} to use yours")
    return report
