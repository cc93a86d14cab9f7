import math

import numpy as np
import pytest
import torch

from repro.tasks.pose.pckh import pckh, pckh_per_joint

# Person A: head box 30 x 40 -> diagonal 50 -> head size 30 -> 0.5 threshold = 15 px.
# Person B: head box 60 x 80 -> diagonal 100 -> head size 60 -> 0.5 threshold = 30 px.
HEAD_BOXES = np.array([[10, 20, 40, 60], [0, 0, 60, 80]], dtype=np.float64)

# Per joint: (offset of the prediction, visible) for persons A and B.
OFFSETS_A = {
    0: ((9, 12), 1),      # distance exactly 15 = threshold -> correct
    1: ((0, 0), 1),
    2: ((3, 4), 1),
    3: ((3, 4), 1),
    4: ((1e6, 1e6), 0),   # invisible, huge error -> ignored
    5: ((15.5, 0), 1),    # just over -> wrong
    6: ((500, 0), 1),     # pelvis never scored
    7: ((0, 500), 1),     # thorax never scored
    8: ((20, 0), 1),      # wrong
    9: ((0, 14.9), 1),
    10: ((16, 0), 1),     # wrong
    11: ((0, 0), 1),
    12: ((0, 0), 1),
    13: ((0, 0), 0),
    14: ((0, 0), 1),
    15: ((0, 0), 1),
}
OFFSETS_B = {
    0: ((18, 24), 1),     # distance exactly 30 = threshold -> correct
    1: ((0, 0), 1),
    2: ((40, 0), 1),      # wrong
    3: ((0, 0), 1),
    4: ((0, 0), 1),
    5: ((0, 31), 1),      # wrong
    6: ((0, 0), 1),
    7: ((0, 0), 1),
    8: ((0, 0), 1),
    9: ((0, 29), 1),
    10: ((0, 0), 1),
    11: ((30, 1), 1),     # just over -> wrong
    12: ((0, 0), 1),
    13: ((0, 0), 1),
    14: ((0, 0), 1),
    15: ((0, 0), 0),
}

# Hand count (correct / visible):
EXPECTED = {
    "ankle": 100 * 2 / 4,     # A0 ok, A5 no, B0 ok, B5 no
    "knee": 100 * 3 / 3,      # A4 invisible
    "hip": 100 * 3 / 4,       # B2 wrong
    "head": 100 * 3 / 4,      # A8 wrong
    "wrist": 100 * 2 / 3,     # A10 wrong, B15 invisible
    "elbow": 100 * 3 / 4,     # B11 wrong
    "shoulder": 100 * 3 / 3,  # A13 invisible
    "total": 100 * 19 / 25,
}


def make_case():
    gt = np.stack([np.arange(16) * 7.0 + 50, np.arange(16) * 3.0 + 80], axis=-1)
    gt = np.stack([gt, gt + 13])
    pred, vis = gt.copy(), np.zeros((2, 16), dtype=bool)
    for person, offsets in enumerate((OFFSETS_A, OFFSETS_B)):
        for joint, (offset, visible) in offsets.items():
            pred[person, joint] += offset
            vis[person, joint] = bool(visible)
    return pred, gt, vis


def test_hand_computed_two_people():
    pred, gt, vis = make_case()
    scores = pckh(pred, gt, vis, HEAD_BOXES)
    assert set(scores) == set(EXPECTED)
    for part, value in EXPECTED.items():
        assert scores[part] == pytest.approx(value), part


def test_part_is_pooled_not_mean_of_sides():
    pred, gt, vis = make_case()
    # r-wrist 1/2 and l-wrist 1/1 would average to 75; pooled is 2/3.
    per_joint = pckh_per_joint(pred, gt, vis, HEAD_BOXES)
    assert per_joint[10] == pytest.approx(50.0) and per_joint[15] == pytest.approx(100.0)
    assert pckh(pred, gt, vis, HEAD_BOXES)["wrist"] == pytest.approx(200 / 3)


def test_threshold_is_inclusive():
    gt = np.zeros((1, 16, 2))
    pred = gt.copy()
    pred[0, 0] = (9, 12)  # distance 15, head size 30
    vis = np.zeros((1, 16), bool)
    vis[0, 0] = True
    box = np.array([[0, 0, 30, 40]])
    assert pckh(pred, gt, vis, box)["ankle"] == 100.0
    assert pckh(pred, gt, vis, box, threshold=0.49)["ankle"] == 0.0


def test_invisible_and_pelvis_thorax_do_not_matter():
    pred, gt, vis = make_case()
    reference = pckh(pred, gt, vis, HEAD_BOXES)
    pred2 = pred.copy()
    pred2[0, 4] = -1e9        # invisible joint, even larger error
    pred2[1, 15] = 1e9
    pred2[:, 6] += 1e5        # pelvis and thorax wildly wrong
    pred2[:, 7] -= 1e5
    gt2 = gt.copy()
    gt2[0, 4] = -1            # MPII marks missing gt with -1
    assert pckh(pred2, gt2, vis, HEAD_BOXES) == pytest.approx(reference)


def test_missing_part_is_nan_and_torch_inputs_work():
    pred, gt, vis = make_case()
    vis[:, [0, 5]] = False
    scores = pckh(torch.tensor(pred), torch.tensor(gt), torch.tensor(vis), torch.tensor(HEAD_BOXES))
    assert math.isnan(scores["ankle"])
    assert scores["total"] == pytest.approx(100 * 17 / 21)
