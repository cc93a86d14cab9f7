"""AFLW's 21 face landmarks (Koestinger et al. 2011) and how they flip."""
from __future__ import annotations

# AFLW (Koestinger et al. 2011), in its order; left / right are the subject's own.
LANDMARK_NAMES = (
    "left_brow_outer", "left_brow_centre", "left_brow_inner",
    "right_brow_inner", "right_brow_centre", "right_brow_outer",
    "left_eye_outer", "left_eye_centre", "left_eye_inner",
    "right_eye_inner", "right_eye_centre", "right_eye_outer",
    "left_ear_lobe", "nose_left", "nose_tip", "nose_right", "right_ear_lobe",
    "mouth_left", "mouth_centre", "mouth_right", "chin",
)
# (left, right) pairs that swap under a horizontal flip; the centre line stays.
FLIP_PAIRS = ((0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9), (12, 16), (13, 15), (17, 19))
