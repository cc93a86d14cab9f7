import math

import numpy as np
import pytest
import torch

from repro.tasks.pose.pckh import pckh, pckh_auc, pckh_curve, pckh_per_joint

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

# Hand count, each joint's rate (correct / visible) first; a part is the mean of its two joints' rates
# (genTablePCK.m), ubody and total pool the instances:
EXPECTED = {
    "ankle": (100 * 2 / 2 + 100 * 0 / 2) / 2,   # r: A0 ok, B0 ok; l: A5 no, B5 no
    "knee": (100 * 2 / 2 + 100 * 1 / 1) / 2,    # A4 invisible
    "hip": (100 * 1 / 2 + 100 * 2 / 2) / 2,     # B2 wrong
    "head": (100 * 1 / 2 + 100 * 2 / 2) / 2,    # A8 wrong
    "wrist": (100 * 1 / 2 + 100 * 1 / 1) / 2,   # A10 wrong, B15 invisible
    "elbow": (100 * 1 / 2 + 100 * 2 / 2) / 2,   # B11 wrong
    "shoulder": (100 * 2 / 2 + 100 * 1 / 1) / 2,  # A13 invisible
    "ubody": 100 * 8 / 10,                       # shoulders 3/3, elbows 3/4, wrists 2/3
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


def test_a_part_is_the_mean_of_its_joints_rates_not_their_pooled_count():
    pred, gt, vis = make_case()
    # r-wrist 1/2 and l-wrist 1/1 average to 75 (the official genTablePCK.m); pooled would be 2/3.
    per_joint = pckh_per_joint(pred, gt, vis, HEAD_BOXES)
    assert per_joint[10] == pytest.approx(50.0) and per_joint[15] == pytest.approx(100.0)
    assert pckh(pred, gt, vis, HEAD_BOXES)["wrist"] == pytest.approx(75.0)


def one_person(normalized_distances, visible=None):
    """One person, head box 30 x 40 (head size 30), joints 0, 1, 2 ... at the given distances / head size."""
    gt = np.zeros((1, 16, 2))
    pred = gt.copy()
    vis = np.zeros((1, 16), bool)
    for joint, d in enumerate(normalized_distances):
        pred[0, joint, 0] = 30 * d
        vis[0, joint] = True if visible is None else visible[joint]
    return pred, gt, vis, np.array([[0.0, 0.0, 30.0, 40.0]])


def test_auc_and_pckh_at_0_1_by_hand():
    # distances 0, 0.1, 0.25 and 0.6 head sizes: the total is 25 % below 0.1, 50 % from 0.1, 75 % from 0.25
    pred, gt, vis, box = one_person([0.0, 0.1, 0.25, 0.6])
    curve = pckh_curve(pred, gt, vis, box)
    assert list(curve[:10]) == [25.0] * 10 and list(curve[10:25]) == [50.0] * 15 and list(curve[25:]) == [75.0] * 26
    # trapezoids over 0:0.01:0.5 rescaled to [0, 1]: (25 * 0.09 + 37.5 * 0.01 + 50 * 0.14 + 62.5 * 0.01 + 75 * 0.25) / 0.5
    assert pckh_auc(pred, gt, vis, box) == pytest.approx(58.0, abs=1e-12)
    assert pckh(pred, gt, vis, box, threshold=0.1)["total"] == 50.0
    assert pckh(pred, gt, vis, box, threshold=0.1 - 1e-9)["total"] == 25.0  # exactly at the threshold counts


def test_a_joint_never_visible_makes_its_part_nan_but_not_the_total():
    pred, gt, vis, box = one_person([0.0] * 16, visible=[j != 5 for j in range(16)])  # l-ankle never annotated
    scores = pckh(pred, gt, vis, box)
    assert math.isnan(scores["ankle"]) and scores["knee"] == 100.0 and scores["total"] == 100.0


def test_threshold_is_inclusive():
    gt = np.zeros((1, 16, 2))
    pred = gt.copy()
    pred[0, 0] = (9, 12)  # distance 15, head size 30
    vis = np.zeros((1, 16), bool)
    vis[0, 0] = True
    box = np.array([[0, 0, 30, 40]])
    assert pckh(pred, gt, vis, box)["total"] == 100.0
    assert pckh(pred, gt, vis, box, threshold=0.49)["total"] == 0.0


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


def test_lsp_pck_at_0_2_normalized_by_the_torso_by_hand():
    """LSP's PCK (eval_pck.m): distance / ||left shoulder - right hip|| <= 0.2, every joint scored,
    a part the mean of its two joints, the total pooled. Person 1's torso is 50 (threshold 10 px),
    person 2's 100 (20 px)."""
    from repro.tasks.pose.joints import JOINT_SETS
    from repro.tasks.pose.pckh import torso_sizes

    lsp = JOINT_SETS["lsp"]
    l_shoulder, r_hip = lsp.names.index("l_shoulder"), lsp.names.index("r_hip")
    gt = np.zeros((2, 14, 2))
    gt[0, l_shoulder], gt[0, r_hip] = (0, 0), (30, 40)
    gt[1, l_shoulder], gt[1, r_hip] = (0, 0), (60, 80)
    np.testing.assert_allclose(torso_sizes(gt, l_shoulder, r_hip), [50, 100])
    pred = gt.copy()
    pred[0, 0] += (6, 8)      # r_ankle, person 1: exactly 10 px = 0.2 x 50 -> correct (inclusive)
    pred[1, 0] += (0, 20.5)   # r_ankle, person 2: just over 20 -> wrong
    pred[0, 5] += (11, 0)     # l_ankle, person 1: wrong
    pred[0, 13] += (0, 19)    # head top, person 1: wrong; person 2's is exact
    scores = pckh(pred, gt, np.ones((2, 14), bool), torso_sizes(gt, l_shoulder, r_hip), threshold=0.2, parts=lsp.parts)
    assert scores["ankle"] == pytest.approx((50 + 50) / 2)  # r_ankle 1 of 2, l_ankle 1 of 2
    assert scores["head"] == pytest.approx((100 + 50) / 2)  # neck 2 of 2, head top 1 of 2
    assert scores["knee"] == scores["shoulder"] == 100.0
    assert scores["total"] == pytest.approx(100 * 25 / 28)  # 3 of the 28 instances wrong
