"""Normalized mean error (NME, %) of face landmarks, overall and by |yaw| range.

NME of a face = mean over its visible landmarks of ||prediction - truth|| / face size, with the
face size sqrt(w * h) of its face box (the bounding-box normalization of [13] / AFLW-PIFA); the
table's NME is the mean over faces (faces without a visible landmark are skipped), times 100.
"""
from __future__ import annotations

import numpy as np


def face_sizes(boxes) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64)
    return np.sqrt(np.clip(boxes[:, 2] - boxes[:, 0], 1e-9, None) * np.clip(boxes[:, 3] - boxes[:, 1], 1e-9, None))


def per_face(pred, truth, visible, boxes) -> np.ndarray:
    """NME of each face (NaN where no landmark is visible), as a fraction."""
    pred, truth = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    visible = np.asarray(visible, dtype=bool)
    errors = np.linalg.norm(pred - truth, axis=-1)
    counts = visible.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        # where(), not errors * visible: an invisible landmark's coordinates may be NaN, and NaN * 0 is NaN
        mean = np.where(counts > 0, np.where(visible, errors, 0.0).sum(1) / counts, np.nan)
    return mean / face_sizes(boxes)


def nme(pred, truth, visible, boxes, yaw, bins=((0, 30), (30, 60), (60, 90))) -> dict[str, float]:
    """``{"nme": ..., "nme_yaw_0_30": ..., ...}`` in percent; a bin [lo, hi) holds |yaw| in it
    (the last bin includes hi). An empty bin is NaN."""
    faces = per_face(pred, truth, visible, boxes)
    yaw = np.abs(np.asarray(yaw, dtype=np.float64))
    scored = ~np.isnan(faces)
    out = {"nme": float(100 * faces[scored].mean()) if scored.any() else float("nan")}
    for i, (lo, hi) in enumerate(bins):
        inside = scored & (yaw >= lo) & ((yaw <= hi) if i == len(bins) - 1 else (yaw < hi))
        out[f"nme_yaw_{lo}_{hi}"] = float(100 * faces[inside].mean()) if inside.any() else float("nan")
    return out
