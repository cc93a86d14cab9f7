"""Salient object detection scores as the field computes them: MAE and max F-measure.

Conventions, where the common evaluation codes differ. Followed: the standard SOD evaluation
toolbox (Cheng et al.'s MATLAB ``CalPR`` / ``CalMAE``, which CPD's evaluation uses and the
Python PySODMetrics reproduces), applied to the 8-bit maps CPD's test script writes:

* The map. CPD's ``test_CPD.py``: the detection branch's logits, upsampled (bilinear) to the
  ground truth's size, sigmoid, then min-max normalized per image, ``(S - min) / (max - min +
  1e-8)``, and saved as an 8-bit PNG. :func:`to_8bit` does the last two steps (rounded to the
  nearest level, as an image writer does); a constant map stays 0.
* The ground truth: an 8-bit mask is binarized at ``> 128`` (the toolbox's ``gt > 128``; PASCAL-S's
  graded masks thus at about 0.5).
* MAE: mean |S / 255 - G| over the image's pixels, then the mean over images.
* max F-measure: 256 thresholds t = 0..255 on the 8-bit map, a pixel predicted salient when
  ``S >= t`` (the toolbox's flipped cumulative histogram). Per image: precision = TP / (TP + FP),
  0 where nothing is predicted (the toolbox divides by max(TP + FP, 1)); recall = TP / |G|, 0 for an
  empty ground truth. Precision and recall are averaged over the dataset's images per
  threshold, F_beta = (1 + beta^2) P R / (beta^2 P + R) with beta^2 = 0.3 is computed per threshold
  from those means (0 where P = R = 0), and the maximum over thresholds is the max F-measure.
"""
from __future__ import annotations

import numpy as np
import torch

BETA2 = 0.3
LEVELS = 256
GT_THRESHOLD = 128  # an 8-bit ground truth is salient where > 128


def to_8bit(saliency: torch.Tensor) -> torch.Tensor:
    """A map in any range -> uint8 [H, W] as CPD saves it: min-max normalized (+1e-8), x 255, rounded."""
    s = saliency.double()
    s = (s - s.min()) / (s.max() - s.min() + 1e-8)
    return torch.round(s * 255).clamp(0, 255).to(torch.uint8)


def binarize(mask: torch.Tensor) -> torch.Tensor:
    """An 8-bit ground-truth mask -> bool [H, W] (``> 128``)."""
    return mask > GT_THRESHOLD


class SaliencyScores:
    """Accumulates per-image MAE, precision and recall curves; ``result()`` gives the dataset's
    ``max_f`` and ``mae``."""

    def __init__(self) -> None:
        self.maes: list[float] = []
        self.precisions: list[np.ndarray] = []
        self.recalls: list[np.ndarray] = []

    def add(self, saliency_8bit: torch.Tensor, gt: torch.Tensor) -> None:
        """One image: its uint8 map and its bool ground truth, the same size."""
        if saliency_8bit.shape != gt.shape:
            raise ValueError(f"map {tuple(saliency_8bit.shape)} and ground truth {tuple(gt.shape)} differ in size")
        s = saliency_8bit.numpy().astype(np.int64).ravel()
        g = gt.numpy().astype(bool).ravel()
        self.maes.append(float(np.abs(s / 255.0 - g).mean()))
        # counts of salient / background pixels at each level; reversed cumulative sums give,
        # for each threshold t, the pixels with value >= t
        fg = np.bincount(s[g], minlength=LEVELS)
        bg = np.bincount(s[~g], minlength=LEVELS)
        tp = np.cumsum(fg[::-1])[::-1]
        predicted = tp + np.cumsum(bg[::-1])[::-1]
        self.precisions.append(tp / np.maximum(predicted, 1))
        self.recalls.append(tp / max(int(g.sum()), 1))

    def result(self) -> dict[str, float]:
        if not self.maes:
            return {"max_f": 0.0, "mae": 0.0}
        precision = np.mean(self.precisions, axis=0)
        recall = np.mean(self.recalls, axis=0)
        f = f_measure(precision, recall)
        return {"max_f": float(f.max()), "mae": float(np.mean(self.maes))}


def f_measure(precision: np.ndarray, recall: np.ndarray, beta2: float = BETA2) -> np.ndarray:
    """F_beta per threshold; 0 where precision and recall are both 0."""
    denominator = beta2 * precision + recall
    return np.where(denominator > 0, (1 + beta2) * precision * recall / np.where(denominator > 0, denominator, 1), 0.0)
