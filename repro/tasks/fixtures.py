"""Tiny datasets written in the real on-disk formats (the .mat, .h5, .sqlite, pickle and image
folders of MPII, LSP / LSPET, AFLW, CIFAR, ImageNet and the saliency benchmarks), for the tests and ``repro data bench``.

Each image is a smooth random background with sensor noise (so a JPEG is about as costly to
decode as a photograph) and a white disc at every labelled keypoint, so a test can check that a
crop put the keypoints where the pixels are. Returned are the annotations written, in 0-based
pixels, so tests compare what a loader reads against what was written.
"""
from __future__ import annotations

import pickle
import sqlite3
from pathlib import Path

import cv2
import numpy as np

from .face.landmarks import LANDMARK_NAMES

DISC_RADIUS = 3


def image(rng: np.random.Generator, width: int, height: int, points=(), radius: int = DISC_RADIUS,
          photo: bool = False) -> np.ndarray:
    """BGR uint8 [height, width, 3] with white discs at ``points``, over a smooth background with
    noise or, with ``photo``, over tiles of real photographs at their own resolution (scikit-learn's
    sample images), so that a JPEG costs what a photograph costs to decode."""
    if photo:
        picture = _photo_tiles(rng, width, height)
    else:
        coarse = rng.integers(30, 160, size=(max(2, height // 64), max(2, width // 64), 3), dtype=np.uint8)
        picture = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.int16)
        picture += rng.integers(-12, 13, size=picture.shape, dtype=np.int16)
        picture = np.clip(picture, 0, 200).astype(np.uint8)
    for x, y in points:
        cv2.circle(picture, (int(round(x)), int(round(y))), radius, (255, 255, 255), -1)
    return picture


def _photo_tiles(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    from sklearn.datasets import load_sample_image

    photos = [load_sample_image(name)[..., ::-1] for name in ("china.jpg", "flower.jpg")]  # 640 x 427, RGB -> BGR
    tile_h, tile_w = min(360, height), min(640, width)
    picture = np.zeros((height, width, 3), np.uint8)
    for y in range(0, height, tile_h):
        for x in range(0, width, tile_w):
            source = photos[rng.integers(len(photos))]
            h, w = min(tile_h, height - y), min(tile_w, width - x)
            top, left = rng.integers(0, source.shape[0] - h + 1), rng.integers(0, source.shape[1] - w + 1)
            tile = source[top:top + h, left:left + w]
            picture[y:y + h, x:x + w] = tile[:, ::-1] if rng.random() < 0.5 else tile
    return picture


def write_jpeg(path: Path, picture: np.ndarray, quality: int = 90) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), picture, [cv2.IMWRITE_JPEG_QUALITY, quality])


def _struct_array(records: list[dict]) -> np.ndarray:
    """A MATLAB 1 x n struct array for scipy's savemat."""
    array = np.empty((1, len(records)), dtype=[(key, object) for key in records[0]])
    for i, record in enumerate(records):
        for key, value in record.items():
            array[0, i][key] = value
    return array


def _person(rng: np.random.Generator, width: int, height: int, scale: float) -> dict:
    """A person of height 200 x ``scale`` px inside the image: 16 MPII joints, head box, centre."""
    centre = np.array([rng.uniform(0.4, 0.6) * width, rng.uniform(0.45, 0.55) * height])
    unit = 200 * scale
    offsets = np.array([[-.08, .45], [-.07, .25], [-.06, .05], [.06, .05], [.07, .25], [.08, .45], [0, .05], [0, -.22],
                        [0, -.27], [0, -.42], [-.2, 0], [-.17, -.1], [-.1, -.22], [.1, -.22], [.17, -.1], [.2, 0]])
    joints = centre + unit * (offsets + rng.normal(0, 0.01, offsets.shape))
    head = joints[8:10]
    half = 0.06 * unit
    box = np.array([head[:, 0].min() - half, head[:, 1].min(), head[:, 0].max() + half, head[:, 1].max()])
    return {"joints": joints, "head_box": box, "centre": centre, "scale": scale}


def write_mpii(root: Path, n_train: int = 6, n_valid: int = 4, size=(320, 240), mat: bool = True, seed: int = 0,
               scale_range: tuple[float, float] | None = None, photo: bool = False) -> dict:
    """MPII at ``root`` (images/, annot/train.h5, annot/valid.h5 and, with ``mat``, the official
    .mat): one person an image (the last image two, the second of them unannotated); joint 6
    (pelvis) of each person unlabelled, joint 0 occluded. Persons are 200 x scale pixels tall,
    scale drawn from ``scale_range`` (default: 35-50% of the image's height). Returns the
    split's persons."""
    import h5py
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    width, height = size
    n_images = n_train + n_valid
    people, annolist = [], []
    for index in range(n_images):
        low, high = scale_range or (0.35 * height / 200, 0.5 * height / 200)
        person = _person(rng, width, height, rng.uniform(low, high))
        person.update(index=index, name=f"{index:09d}.jpg", split="train" if index < n_train else "valid")
        labelled = np.ones(16, bool)
        labelled[6] = False
        occluded = np.zeros(16, bool)
        occluded[0] = True
        person.update(labelled=labelled, occluded=occluded)
        people.append(person)
        write_jpeg(root / "images" / person["name"], image(rng, width, height, person["joints"][labelled], photo=photo))
        points = [{"x": float(x + 1), "y": float(y + 1), "id": j, "is_visible": "0" if occluded[j] else "1"}
                  for j, (x, y) in enumerate(person["joints"]) if labelled[j]]
        rects = [{"x1": person["head_box"][0] + 1, "y1": person["head_box"][1] + 1, "x2": person["head_box"][2] + 1,
                  "y2": person["head_box"][3] + 1, "annopoints": {"point": _struct_array(points)},
                  "scale": person["scale"], "objpos": {"x": person["centre"][0] + 1, "y": person["centre"][1] + 1}}]
        if index == n_images - 1:  # a second, unannotated person (no joints, no position): in no split
            rects.append({"x1": 1.0, "y1": 1.0, "x2": 9.0, "y2": 9.0, "annopoints": np.zeros((0, 0)),
                          "scale": np.zeros((0, 0)), "objpos": np.zeros((0, 0))})
        annolist.append({"image": {"name": person["name"]}, "annorect": _struct_array(rects)})
    (root / "annot").mkdir(parents=True, exist_ok=True)
    if mat:
        savemat(str(root / "mpii_human_pose_v1_u12_1.mat"),
                {"RELEASE": {"annolist": _struct_array(annolist), "img_train": np.ones((1, n_images))}})
    for split in ("train", "valid"):
        chosen = [p for p in people if p["split"] == split]
        with h5py.File(root / "annot" / f"{split}.h5", "w") as handle:
            handle["imgname"] = np.array([p["name"].encode() for p in chosen])
            handle["index"] = np.array([p["index"] for p in chosen])
            handle["person"] = np.zeros(len(chosen), np.int64)
            handle["center"] = np.stack([p["centre"] for p in chosen])
            handle["scale"] = np.array([p["scale"] for p in chosen])
            handle["part"] = np.stack([np.where(p["labelled"][:, None], p["joints"], 0.0) for p in chosen])
            handle["visible"] = np.stack([(p["labelled"] & ~p["occluded"]).astype(np.float64) for p in chosen])
            handle["normalize"] = np.array([0.6 * np.hypot(*(p["head_box"][2:] - p["head_box"][:2])) for p in chosen])
    return {split: [p for p in people if p["split"] == split] for split in ("train", "valid")}


def write_lsp(root: Path, name: str = "lsp", n: int | None = None, size=(48, 64), seed: int = 0) -> dict:
    """LSP (2000 images, joints.mat 3 x 14 x N, flag 1 = occluded) or LSPET (``n`` images,
    14 x 3 x N, flag 1 = visible) at ``root/<name>``. In LSP joint 12 (neck) is occluded; in LSPET
    joint 0 (right ankle) has no position (flag 0, coordinates 0)."""
    from scipy.io import savemat

    from .pose.lsp import FILE_NAMES, OFFICIAL_COUNTS

    n = n or OFFICIAL_COUNTS[name]
    rng = np.random.default_rng(seed)
    width, height = size
    joints = np.stack([rng.uniform([4, 4], [width - 5, height - 5], size=(14, 2)) for _ in range(n)])
    flags = np.zeros((n, 14))
    if name == "lsp":
        flags[:, 12] = 1
    else:
        flags[:] = 1
        flags[:, 0] = 0
        joints[:, 0] = -1  # stored as 0 (1-based) where there is no position
    for i in range(n):
        shown = joints[i][flags[i] > 0] if name == "lspet" else joints[i]
        write_jpeg(root / name / "images" / FILE_NAMES[name].format(i + 1), image(rng, width, height, shown, radius=1))
    stored = np.concatenate([joints + 1, flags[..., None]], axis=2)  # [N, 14, 3], 1-based
    savemat(str(root / name / "joints.mat"), {"joints": stored.transpose(2, 1, 0) if name == "lsp" else stored.transpose(1, 2, 0)})
    return {"joints": joints, "flags": flags}


def write_aflw(root: Path, n_images: int = 8, size=(160, 120), seed: int = 0) -> dict:
    """AFLW at ``root/aflw``: aflw.sqlite (its tables and columns) and flickr/<0|2|3>/ images; the
    first image holds two faces, and landmark 13 (left ear lobe) of every face is missing."""
    rng = np.random.default_rng(seed)
    width, height = size
    root = root / "aflw"
    root.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(root / "aflw.sqlite")
    db.executescript("""
        CREATE TABLE FaceImages (image_id INTEGER PRIMARY KEY, db_id TEXT, file_id TEXT, filepath TEXT, bw INTEGER,
                                 width INTEGER, height INTEGER);
        CREATE TABLE Faces (face_id INTEGER PRIMARY KEY, file_id TEXT, db_id TEXT);
        CREATE TABLE FaceRect (face_id INTEGER, x INTEGER, y INTEGER, w INTEGER, h INTEGER, annot_type_id INTEGER);
        CREATE TABLE FacePose (face_id INTEGER, roll REAL, pitch REAL, yaw REAL, annot_type_id INTEGER);
        CREATE TABLE FeatureCoords (face_id INTEGER, feature_id INTEGER, x REAL, y REAL, annot_type_id INTEGER);
    """)
    faces, face_id = [], 39000
    for i in range(n_images):
        path = f"{(0, 2, 3)[i % 3]}/image{i:05d}.jpg"
        db.execute("INSERT INTO FaceImages VALUES (?, 'flickr', ?, ?, 0, ?, ?)", (i + 1, f"image{i:05d}.jpg", path, width, height))
        points = []
        for k in range(2 if i == 0 else 1):
            face_id += 1
            w = int(rng.integers(30, 45))
            x, y = int(rng.integers(5 + 80 * k, 80 * k + 75 - w)), int(rng.integers(5, height - w - 5))
            landmarks = rng.uniform([x + 2, y + 2], [x + w - 2, y + w - 2], size=(len(LANDMARK_NAMES), 2))
            yaw = float(rng.uniform(-1.5, 1.5))
            db.execute("INSERT INTO Faces VALUES (?, ?, 'flickr')", (face_id, f"image{i:05d}.jpg"))
            db.execute("INSERT INTO FaceRect VALUES (?, ?, ?, ?, ?, 1)", (face_id, x, y, w, w))
            db.execute("INSERT INTO FacePose VALUES (?, 0.1, -0.2, ?, 1)", (face_id, yaw))
            for feature, (lx, ly) in enumerate(landmarks, start=1):
                if feature != 13:
                    db.execute("INSERT INTO FeatureCoords VALUES (?, ?, ?, ?, 1)", (face_id, feature, float(lx), float(ly)))
            faces.append({"face_id": face_id, "path": path, "box": (x, y, x + w, y + w), "landmarks": landmarks, "yaw": yaw})
            points += [p for f, p in enumerate(landmarks, start=1) if f != 13]
        write_jpeg(root / "flickr" / path, image(rng, width, height, points, radius=1))
    db.commit()
    db.close()
    return {"faces": faces}


def write_cifar(root: Path, name: str = "cifar10", n_train: int = 20, n_val: int = 10, seed: int = 0) -> None:
    """CIFAR-10 / -100's python version (pickled dicts of uint8 rows and labels)."""
    from .classification.datasets import CIFAR

    rng = np.random.default_rng(seed)
    spec = CIFAR[name]
    classes = 10 if name == "cifar10" else 100
    folder = root / spec["folder"]
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("val", n_val)):
        files = spec[split]
        for k, file in enumerate(files):
            count = n // len(files) + (1 if k < n % len(files) else 0)
            batch = {b"data": rng.integers(0, 256, size=(count, 3072), dtype=np.uint8),
                     spec["labels"]: rng.integers(0, classes, size=count).tolist()}
            with open(folder / file, "wb") as handle:
                pickle.dump(batch, handle)


def write_image_folders(root: Path, name: str = "imagenet", classes: int = 3, per_class: int = 2, size=(80, 60), seed: int = 0) -> None:
    """``root/<name>/{train,val}/<class>/*.JPEG``, as ImageNet is laid out once sorted by class."""
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        for c in range(classes):
            for k in range(per_class):
                write_jpeg(root / name / split / f"n{c:08d}" / f"{split}_{c}_{k}.JPEG", image(rng, *size))


def write_saliency(root: Path, name: str, n: int = 4, size=(48, 40), seed: int = 0) -> list[np.ndarray]:
    """A salient-object dataset in its distributed layout (saliency/datasets.py: image folder and
    mask folder, paired by name): synthetic objects over clutter (JPEG) and their masks (PNG,
    0 / 255), at ``size`` (width, height). Returns the masks written."""
    from .saliency.datasets import layout
    from .saliency.synthetic import render_one

    image_dir, mask_dir = layout(name, root)
    mask_dir.mkdir(parents=True, exist_ok=True)
    width, height = size
    masks = []
    for i in range(n):
        picture, mask = render_one(seed, "train", i, max(width, height))
        picture, mask = picture[:height, :width], mask[:height, :width]
        write_jpeg(image_dir / f"{name}_{i:04d}.jpg", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(mask_dir / f"{name}_{i:04d}.png"), mask)
        masks.append(mask)
    return masks
