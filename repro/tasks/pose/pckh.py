"""PCKh following the official MPII evaluation protocol.

Protocol implemented here (the one of the MPII benchmark's own evaluation code):

* head size = 0.6 * diagonal of the annotated head box;
* a joint is correct when ``distance(pred, gt) / head_size <= threshold``
  (inclusive), threshold 0.5 for PCKh@0.5;
* only visible (annotated) joints count;
* pelvis (6) and thorax (7) are never scored;
* a part score pools the left and right joints: correct instances over visible
  instances of both sides together; ``head`` pools upper neck (8) and head top (9);
* ``total`` pools all visible instances of the remaining 14 joints.

Common ports differ in small ways that move numbers by a few tenths of a
point: a strict ``<``, averaging per-joint rates instead of pooling counts, or
scoring ``head`` with the head top only. Scores from those ports are therefore
not exactly comparable with the ones computed here.
"""

from __future__ import annotations

import numpy as np

HEAD_SIZE_FACTOR = 0.6

# Part name -> MPII joint indices pooled into that part.
PARTS = {
    "head": (8, 9),
    "shoulder": (12, 13),
    "elbow": (11, 14),
    "wrist": (10, 15),
    "hip": (2, 3),
    "knee": (1, 4),
    "ankle": (0, 5),
}
SCORED_JOINTS = tuple(sorted(j for joints in PARTS.values() for j in joints))


def _as_numpy(x, dtype) -> np.ndarray:
    # Accept torch tensors without importing torch here.
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def head_sizes(head_boxes) -> np.ndarray:
    """0.6 * diagonal of each (x1, y1, x2, y2) head box, shape [N]."""
    boxes = _as_numpy(head_boxes, np.float64)
    diag = np.hypot(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    return HEAD_SIZE_FACTOR * diag


def joint_correct(pred, gt, visible, head_boxes, threshold: float = 0.5):
    """Per-instance correctness.

    Returns ``(correct, visible)``, both bool arrays [N, J]; ``correct`` is
    False wherever the joint is not visible.
    """
    pred = _as_numpy(pred, np.float64)
    gt = _as_numpy(gt, np.float64)
    vis = _as_numpy(visible, np.float64) > 0
    dist = np.linalg.norm(pred - gt, axis=-1)
    normalized = dist / head_sizes(head_boxes)[:, None]
    # Invisible gt may hold garbage (MPII uses -1); mask it before comparing.
    correct = vis & (np.where(vis, normalized, np.inf) <= threshold)
    return correct, vis


def _rate(correct: np.ndarray, vis: np.ndarray, joints) -> float:
    idx = list(joints)
    count = int(vis[:, idx].sum())
    if count == 0:
        return float("nan")
    return 100.0 * float(correct[:, idx].sum()) / count


def pckh(pred, gt, visible, head_boxes, threshold: float = 0.5, parts=None) -> dict[str, float]:
    """PCKh per part and in total, in percent (NaN for a part with no visible joint).

    pred, gt: [N, J, 2]; visible: [N, J]; head_boxes: [N, 4] as x1, y1, x2, y2. ``parts``: part ->
    joint indices (default MPII's 16-joint ``PARTS``); Total pools every joint of every part.
    """
    parts = PARTS if parts is None else parts
    correct, vis = joint_correct(pred, gt, visible, head_boxes, threshold)
    scores = {part: _rate(correct, vis, joints) for part, joints in parts.items()}
    scores["total"] = _rate(correct, vis, sorted(j for joints in parts.values() for j in joints))
    return scores


def pckh_per_joint(pred, gt, visible, head_boxes, threshold: float = 0.5) -> np.ndarray:
    """PCKh of each of the J joints in percent, shape [J] (NaN where none visible)."""
    correct, vis = joint_correct(pred, gt, visible, head_boxes, threshold)
    return np.array([_rate(correct, vis, [j]) for j in range(vis.shape[1])])
