"""PCKh following the official MPII evaluation code (``evaluatePCKh.m``, ``computePCK.m``,
``genTablePCK.m``, ``area_under_curve.m`` of the benchmark's evalMPII toolkit):

* head size = 0.6 * diagonal of the annotated head box;
* a joint is correct when ``distance(pred, gt) / head_size <= threshold``
  (inclusive), threshold 0.5 for PCKh@0.5;
* only visible (annotated) joints count: a joint's rate is its correct instances over its
  visible ones;
* pelvis (6) and thorax (7) are never scored;
* a part's score is the MEAN OF ITS TWO JOINTS' RATES (``genTablePCK.m``), e.g. shoulder =
  (r-shoulder + l-shoulder) / 2, head = (upper neck + head top) / 2; a joint with no visible
  instance makes its part NaN, as MATLAB's mean does;
* ``ubody`` pools every visible instance of the wrists, elbows and shoulders, and ``total``
  every visible instance of the 14 scored joints (``computePCK.m``'s last two columns);
* the AUC is the area under the total's curve over thresholds 0:0.01:0.5 rescaled to [0, 1]
  (``area_under_curve(scale01(range), pck(:, end))``), in percent: the official integrates the
  curve's linear interpolant (quadgk), whose exact value is the trapezoidal sum used here.

Common ports differ in ways that move numbers by a few tenths of a point: a strict ``<``,
parts pooled over both joints' instances instead of averaged, or ``head`` scored with the head
top only. Scores from those ports are not exactly comparable with the ones computed here.
"""

from __future__ import annotations

import numpy as np

HEAD_SIZE_FACTOR = 0.6
AUC_THRESHOLDS = np.arange(51) / 100  # 0:0.01:0.5, evaluatePCKh.m's range
UPPER_BODY = ("shoulder", "elbow", "wrist")

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
    """0.6 * diagonal of each (x1, y1, x2, y2) head box, shape [N]. Every function here takes
    either head boxes [N, 4] or the normalizing sizes [N] themselves (e.g. torso sizes for
    LSP's PCK, ``torso_sizes``)."""
    boxes = _as_numpy(head_boxes, np.float64)
    if boxes.ndim == 1:
        return boxes
    diag = np.hypot(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    return HEAD_SIZE_FACTOR * diag


def torso_sizes(gt, left_shoulder: int, right_hip: int) -> np.ndarray:
    """||left shoulder - right hip|| of each ground truth [N, J, 2]: the torso size of Sapp &
    Taskar's PCK, as LSP's widely used evaluation (``eval_pck.m``: the MPII benchmark's related
    LSP code, as Yang et al.'s eval_pose) normalizes by."""
    gt = _as_numpy(gt, np.float64)
    return np.linalg.norm(gt[:, left_shoulder] - gt[:, right_hip], axis=-1)


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
    """PCKh per part, of the upper body and in total, in percent (NaN where nothing is visible).

    pred, gt: [N, J, 2]; visible: [N, J]; head_boxes: [N, 4] as x1, y1, x2, y2. ``parts``: part ->
    joint indices (default MPII's 16-joint ``PARTS``); a part is the mean of its joints' rates,
    ``ubody`` pools the shoulders, elbows and wrists, ``total`` every joint of every part.
    """
    parts = PARTS if parts is None else parts
    correct, vis = joint_correct(pred, gt, visible, head_boxes, threshold)
    rates = {j: _rate(correct, vis, [j]) for joints in parts.values() for j in joints}
    scores = {part: float(np.mean([rates[j] for j in joints])) for part, joints in parts.items()}
    if all(part in parts for part in UPPER_BODY):
        scores["ubody"] = _rate(correct, vis, sorted(j for part in UPPER_BODY for j in parts[part]))
    scores["total"] = _rate(correct, vis, sorted(j for joints in parts.values() for j in joints))
    return scores


def pckh_curve(pred, gt, visible, head_boxes, thresholds=AUC_THRESHOLDS, parts=None) -> np.ndarray:
    """Total PCKh (percent) at each threshold: the curve the AUC integrates."""
    parts = PARTS if parts is None else parts
    scored = sorted(j for joints in parts.values() for j in joints)
    pred, gt = _as_numpy(pred, np.float64)[:, scored], _as_numpy(gt, np.float64)[:, scored]
    vis = _as_numpy(visible, np.float64)[:, scored] > 0
    normalized = (np.linalg.norm(pred - gt, axis=-1) / head_sizes(head_boxes)[:, None])[vis]
    if normalized.size == 0:
        return np.full(len(thresholds), np.nan)
    return 100.0 * (normalized[:, None] <= np.asarray(thresholds, np.float64)[None, :]).mean(0)


def pckh_auc(pred, gt, visible, head_boxes, thresholds=AUC_THRESHOLDS, parts=None) -> float:
    """Area under the total PCKh curve over ``thresholds`` rescaled to [0, 1], in percent."""
    thresholds = np.asarray(thresholds, np.float64)
    curve = pckh_curve(pred, gt, visible, head_boxes, thresholds, parts)
    x = (thresholds - thresholds.min()) / (thresholds.max() - thresholds.min())  # scale01
    return float(np.trapezoid(curve, x))


def pckh_per_joint(pred, gt, visible, head_boxes, threshold: float = 0.5) -> np.ndarray:
    """PCKh of each of the J joints in percent, shape [J] (NaN where none visible)."""
    correct, vis = joint_correct(pred, gt, visible, head_boxes, threshold)
    return np.array([_rate(correct, vis, [j]) for j in range(vis.shape[1])])
