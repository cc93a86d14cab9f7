"""MAE and max F-measure on small maps worked by hand (the SOD toolbox's conventions, metrics.py)."""
import numpy as np
import pytest
import torch

from repro.tasks.saliency.metrics import SaliencyScores, binarize, f_measure, to_8bit


def u8(rows):
    return torch.tensor(rows, dtype=torch.uint8)


def gt(rows):
    return torch.tensor(rows, dtype=torch.bool)


def test_one_image_by_hand():
    # S = [[255, 128], [64, 0]] (8-bit), G = [[1, 1], [0, 0]].
    # MAE = (|1 - 1| + |128/255 - 1| + |64/255 - 0| + 0) / 4 = (127 + 64) / 1020 = 0.18725...
    # thresholds (S >= t): t = 0: all 4 predicted, P = 2/4, R = 1; t = 1..64: 3 predicted, P = 2/3, R = 1;
    # t = 65..128: {255, 128}, P = 1, R = 1 -> F = 1; t = 129..255: {255}, P = 1, R = 1/2.
    scores = SaliencyScores()
    scores.add(u8([[255, 128], [64, 0]]), gt([[1, 1], [0, 0]]))
    assert scores.maes[0] == pytest.approx(191 / 1020)
    p, r = scores.precisions[0], scores.recalls[0]
    assert (p[0], r[0]) == (0.5, 1.0)
    assert p[1] == pytest.approx(2 / 3) and p[64] == pytest.approx(2 / 3) and r[64] == 1.0
    assert p[65] == 1.0 and p[128] == 1.0 and r[128] == 1.0      # 128 >= 128: counted (>= t)
    assert p[129] == 1.0 and r[129] == 0.5 and r[255] == 0.5
    assert scores.result() == {"max_f": pytest.approx(1.0), "mae": pytest.approx(191 / 1020)}


def test_two_images_f_from_dataset_mean_precision_and_recall():
    # A: S = [[200, 100]], G = [[1, 0]].  t <= 100: P = 1/2, R = 1; 100 < t <= 200: P = 1, R = 1;
    #    t > 200: nothing predicted, P = 0 (toolbox), R = 0.
    # B: S = [[50, 150]], G = [[1, 0]].   t <= 50: P = 1/2, R = 1; 50 < t <= 150: only the background
    #    pixel, P = 0, R = 0; t > 150: nothing, P = R = 0.
    # Dataset means, F = 1.3 P R / (0.3 P + R):
    #   t <= 50:        P = 0.5,  R = 1    -> F = 0.65 / 1.15  = 13/23 = 0.56522  (the maximum)
    #   50 < t <= 100:  P = 0.25, R = 0.5  -> F = 0.1625 / 0.575 = 0.28261
    #   100 < t <= 200: P = 0.5,  R = 0.5  -> F = 0.325 / 0.65  = 0.5
    #   t > 200:        P = 0,    R = 0    -> F = 0
    # (the mean of per-image max F would be (1 + 13/23) / 2 = 0.78: not the field's convention)
    # MAE: A = (55 + 100) / 510, B = (205 + 150) / 510, mean = 510 / 1020 = 0.5.
    scores = SaliencyScores()
    scores.add(u8([[200, 100]]), gt([[1, 0]]))
    scores.add(u8([[50, 150]]), gt([[1, 0]]))
    assert scores.precisions[0][200] == 1.0 and scores.precisions[0][201] == 0.0   # >= t; nothing predicted: P = 0
    result = scores.result()
    assert result["max_f"] == pytest.approx(13 / 23)
    assert result["mae"] == pytest.approx(0.5)
    curve = f_measure(np.mean(scores.precisions, axis=0), np.mean(scores.recalls, axis=0))
    assert curve[75] == pytest.approx(0.1625 / 0.575) and curve[150] == pytest.approx(0.5) and curve[255] == 0.0


def test_empty_ground_truth_and_empty_map():
    # G empty: recall 0 at every threshold (|G| taken as 1), precision 0 where something is predicted;
    # S = 0 everywhere: at t = 0 all pixels predicted, above nothing. MAE of S = 0 vs G = 0: 0.
    scores = SaliencyScores()
    scores.add(u8([[0, 0], [0, 0]]), gt([[0, 0], [0, 0]]))
    assert scores.result() == {"max_f": 0.0, "mae": 0.0}


def test_to_8bit_is_cpd_min_max_normalization():
    # (S - 1) / (5 - 1 + 1e-8) = [0, 0.25, 1] -> x 255 = [0, 63.75, 255] -> rounded [0, 64, 255]
    assert to_8bit(torch.tensor([[1.0, 2.0, 5.0]])).tolist() == [[0, 64, 255]]
    assert to_8bit(torch.full((2, 2), 0.7)).tolist() == [[0, 0], [0, 0]]  # a constant map: 0


def test_ground_truth_binarized_above_128():
    assert binarize(u8([[0, 128, 129, 255]])).tolist() == [[False, False, True, True]]


def test_sizes_must_match():
    with pytest.raises(ValueError, match="differ in size"):
        SaliencyScores().add(u8([[1, 2]]), gt([[1], [0]]))
