"""Keypoint datasets read from their files (MPII, LSP, AFLW): each example is an image file and
its annotation in that image's own pixels (0-based, pixel centres at integers), plus the square
crop around the person or face that the network sees.

A batch decodes each image (OpenCV; a JPEG is decoded at 1/2, 1/4 or 1/8 of its size when the
crop shrinks it at least that much), then crops, rotates, scales and flips it to the input size
in one affine warp, the keypoints and the metric's box through the very same matrix. The same
convention as the in-memory augmentation (augment.py): about the crop centre,

    p' = o + (size / side) * scale * R(angle) * F * (p - centre),   o = ((size - 1) / 2, (size - 1) / 2).

Evaluation crops without augmentation: the network's coordinates are the image's up to one
uniform scale, under which PCKh, PCK and the NME are unchanged (distance and normaliser scale
alike), so the metrics are computed in the crop. ``repro.data.batches`` runs this in DataLoader
workers (``decoded_in_workers``).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from ...errors import ReproError
from .augment import sample_params
from .heatmaps import flip_permutation

cv2.setNumThreads(1)  # one thread a worker: the DataLoader's processes are the parallelism
REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


@dataclass
class KeypointFiles:
    paths: list[str]
    keypoints: torch.Tensor  # float [N, K, 2], image pixels
    visible: torch.Tensor  # bool [N, K]: labelled; the metric and the heatmaps use exactly these
    boxes: torch.Tensor  # float [N, 4] (x1, y1, x2, y2): the metric's box (head, face); NaN where none
    centres: torch.Tensor  # float [N, 2]: the crop's centre
    sides: torch.Tensor  # float [N]: the crop's side, pixels
    extra: dict[str, torch.Tensor] = field(default_factory=dict)  # other per-example values (e.g. yaw)

    decoded_in_workers = True

    def __len__(self) -> int:
        return len(self.paths)

    def __getattr__(self, name: str):
        extra = self.__dict__.get("extra") or {}
        if name in extra:
            return extra[name]
        raise AttributeError(name)

    def take(self, keep) -> KeypointFiles:
        keep = torch.as_tensor(keep, dtype=torch.long)
        picked = {f.name: getattr(self, f.name)[keep] for f in dataclasses.fields(self) if f.name not in ("paths", "extra")}
        return KeypointFiles(paths=[self.paths[i] for i in keep.tolist()], extra={k: v[keep] for k, v in self.extra.items()},
                             **picked)

    @staticmethod
    def concat(parts: list[KeypointFiles]) -> KeypointFiles:
        tensors = {f.name: torch.cat([getattr(p, f.name) for p in parts])
                   for f in dataclasses.fields(KeypointFiles) if f.name not in ("paths", "extra")}
        shared = set.intersection(*(set(p.extra) for p in parts))
        return KeypointFiles(paths=[path for p in parts for path in p.paths],
                             extra={k: torch.cat([p.extra[k] for p in parts]) for k in shared}, **tensors)

    def batch(self, idx: torch.Tensor, size: int, generator: torch.Generator | None, augment: dict,
              flip_pairs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(images float [B, 3, size, size] in [0, 1], keypoints, visible, boxes) of the examples
        ``idx``, augmented by ``generator`` when it is given. Augmented keypoints that leave the
        crop are not labelled for training; at evaluation every labelled keypoint stays scored."""
        n = len(idx)
        if generator is not None:
            flips, scales, angles = sample_params(n, generator, augment.get("flip", False),
                                                  tuple(augment.get("scale") or (1.0, 1.0)), augment.get("rotate") or 0.0)
        else:
            flips, scales, angles = torch.zeros(n, dtype=torch.bool), torch.ones(n), torch.zeros(n)
        images = np.empty((n, size, size, 3), np.uint8)
        keypoints, visible, boxes = [], [], []
        perm = flip_permutation(flip_pairs, self.keypoints.shape[1])
        for k, i in enumerate(idx.tolist()):
            matrix = crop_matrix(self.centres[i].tolist(), float(self.sides[i]), size, float(scales[k]),
                                 float(angles[k]), bool(flips[k]))
            images[k] = warp(self.paths[i], matrix, size)
            points = self.keypoints[i].double() @ torch.from_numpy(matrix[:, :2]).T + torch.from_numpy(matrix[:, 2])
            labelled = self.visible[i].clone()
            if generator is not None:
                labelled &= ((points >= 0) & (points <= size - 1)).all(1)
            if flips[k]:
                points, labelled = points[perm], labelled[perm]
            keypoints.append(points.float())
            visible.append(labelled)
            box = self.boxes[i].double()
            centre = torch.from_numpy(matrix[:, :2]) @ ((box[:2] + box[2:]) / 2) + torch.from_numpy(matrix[:, 2])
            half = (box[2:] - box[:2]) / 2 * (size / float(self.sides[i])) * float(scales[k])
            boxes.append(torch.cat([centre - half, centre + half]).float())
        tensor = torch.empty((n, 3, size, size))
        if torch.utils.data.get_worker_info() is not None:
            tensor.share_memory_()  # filled in place: handing it to the training process copies nothing
        torch.div(torch.from_numpy(images).permute(0, 3, 1, 2), 255.0, out=tensor)
        return tensor, torch.stack(keypoints), torch.stack(visible), torch.stack(boxes)


def crop_matrix(centre, side: float, size: int, scale: float = 1.0, angle: float = 0.0, flip: bool = False) -> np.ndarray:
    """The 2x3 matrix taking image pixels to the crop's: the square of ``side`` pixels about
    ``centre`` onto ``size`` pixels, zoomed by ``scale``, turned by ``angle`` degrees, mirrored."""
    zoom = size / side * scale
    rad = math.radians(angle)
    f = -1.0 if flip else 1.0
    linear = zoom * np.array([[f * math.cos(rad), -math.sin(rad)], [f * math.sin(rad), math.cos(rad)]])
    offset = (size - 1) / 2.0 - linear @ np.asarray(centre, np.float64)
    return np.hstack([linear, offset[:, None]])


def read_image(path: str, reduce: int = 1) -> np.ndarray:
    """An image file as BGR uint8 [H, W, 3] (OpenCV's order), decoded at 1/``reduce`` of its size (1, 2, 4 or 8)."""
    try:
        data = np.fromfile(path, np.uint8)
    except OSError as exc:
        raise ReproError(f"{path}: cannot be read ({exc.strerror}): put the dataset's original file there, "
                         f"then run `repro data check`") from None
    # A JPEG cut short still decodes (grey below the cut, a warning only): its end-of-image marker says it is whole.
    truncated = data[:2].tobytes() == b"\xff\xd8" and b"\xff\xd9" not in data[-1024:].tobytes()
    image = None if truncated else cv2.imdecode(data, REDUCED[reduce])
    if image is None:
        raise ReproError(f"{path}: cannot be read as an image ({'a truncated JPEG' if truncated else 'not an image'}): "
                         f"replace it with the dataset's original file, then run `repro data check`")
    return image


def warp(path: str, matrix: np.ndarray, size: int) -> np.ndarray:
    """The crop ``matrix`` of the image at ``path`` as uint8 [size, size, 3] (bilinear, black outside)."""
    shrink = 1.0 / math.sqrt(abs(np.linalg.det(matrix[:, :2])))  # image pixels per crop pixel
    reduce = max((r for r in REDUCED if r <= shrink), default=1)
    image = read_image(path, reduce)
    if reduce > 1:
        # pixel j of the reduced image covers pixels [r j, r j + r - 1] of the full one: centre r j + (r - 1) / 2
        matrix = matrix.copy()
        matrix[:, 2] += matrix[:, :2] @ np.full(2, (reduce - 1) / 2.0)
        matrix[:, :2] *= reduce
    crop = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)  # on the crop: cheaper than on the whole image
