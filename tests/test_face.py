"""Face alignment: AFLW's landmark set, the synthetic faces, the NME by yaw, the task's errors."""
import numpy as np
import pytest

from repro.cli import main
from repro.tasks.face import synthetic
from repro.tasks.face.landmarks import FLIP_PAIRS, LANDMARK_NAMES
from repro.tasks.face.nme import nme, per_face


def test_flip_pairs_mirror_the_template():
    assert len(LANDMARK_NAMES) == 21 == len(synthetic.TEMPLATE)
    paired = {i for pair in FLIP_PAIRS for i in pair}
    centre = set(range(21)) - paired
    assert {LANDMARK_NAMES[i] for i in centre} == {"nose_tip", "mouth_centre", "chin"}
    for left, right in FLIP_PAIRS:
        assert LANDMARK_NAMES[left].replace("left", "right") == LANDMARK_NAMES[right]
        np.testing.assert_allclose(synthetic.TEMPLATE[left] * [-1, 1, 1], synthetic.TEMPLATE[right])
    assert all(synthetic.TEMPLATE[i][0] == 0 for i in centre)


def test_synthetic_faces_are_deterministic_and_annotated_like_aflw():
    a, b = synthetic.generate(200, 64, seed=3), synthetic.generate(5, 64, seed=3)
    assert a["images"].shape == (200, 64, 64, 3) and a["landmarks"].shape == (200, 21, 2)
    assert all(np.array_equal(a[k][:5], b[k]) for k in a)  # face i depends on (seed, i) only
    yaw = a["yaw"]
    assert np.abs(yaw).max() <= 90 and min((np.abs(yaw) < 30).sum(), (np.abs(yaw) >= 60).sum()) > 40
    left_ear, right_ear = LANDMARK_NAMES.index("left_ear_lobe"), LANDMARK_NAMES.index("right_ear_lobe")
    # a face turned to its left (yaw > 0) hides its left ear, and the other way round
    assert not a["visible"][yaw > 40, left_ear].any() and not a["visible"][yaw < -40, right_ear].any()
    # the subject's left eye is on the image right while the face is not turned far
    eyes = a["landmarks"][:, LANDMARK_NAMES.index("left_eye_centre"), 0] - a["landmarks"][:, LANDMARK_NAMES.index("right_eye_centre"), 0]
    assert (eyes[np.abs(yaw) < 45] > 0).all()
    boxes = a["face_boxes"]
    assert np.allclose(boxes[:, :2], a["landmarks"].min(1)) and np.allclose(boxes[:, 2:], a["landmarks"].max(1))
    assert 0.6 < a["visible"].mean() < 0.95


def test_nme_by_hand():
    truth = np.zeros((2, 21, 2))
    pred = truth.copy()
    pred[0, :, 0] = 1.0          # face 0: every landmark 1 px off, face size 10 -> 10%
    pred[1, 0, 0] = 4.0          # face 1: one visible landmark 4 px off, one 100 px off but invisible
    pred[1, 1, 0] = 100.0
    visible = np.ones((2, 21), bool)
    visible[1, 1:] = False
    visible[1, 0] = True
    boxes = np.array([[0, 0, 10, 10], [0, 0, 5, 20]])  # sizes 10 and sqrt(100) = 10
    np.testing.assert_allclose(per_face(pred, truth, visible, boxes), [0.1, 0.4])
    scores = nme(pred, truth, visible, boxes, yaw=[-10, 75])
    assert scores["nme"] == pytest.approx(25.0) and scores["nme_yaw_0_30"] == pytest.approx(10.0)
    assert scores["nme_yaw_60_90"] == pytest.approx(40.0) and np.isnan(scores["nme_yaw_30_60"])
    none_visible = nme(pred, truth, np.zeros((2, 21), bool), boxes, yaw=[0, 0])
    assert np.isnan(none_visible["nme"])


def test_an_invisible_landmark_with_nan_coordinates_leaves_its_face_in_the_nme():
    truth = np.zeros((2, 21, 2))
    pred = truth.copy()
    pred[:, :, 0] = 1.0                  # every landmark 1 px off; face sizes 10 -> 10% each
    truth[1, 3] = np.nan                 # face 1: landmark 3 not annotated, its coordinates NaN
    pred[1, 5] = np.nan                  # and a prediction NaN where the landmark is invisible
    visible = np.ones((2, 21), bool)
    visible[1, [3, 5]] = False
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10]])
    np.testing.assert_allclose(per_face(pred, truth, visible, boxes), [0.1, 0.1])
    assert nme(pred, truth, visible, boxes, yaw=[0, 0])["nme"] == pytest.approx(10.0)  # both faces count


def test_missing_aflw_is_one_line(workdir, capsys):
    assert main(["run", "--paper", "bulat2017", "--table", "9", "--profile", "paper"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("repro: error: aflw is not ready: aflw.sqlite: put") and err.count("\n") == 1
    assert not (workdir / "results.db").exists()
