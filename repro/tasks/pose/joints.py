"""MPII's joints, and joint sets: which joints a dataset annotates, how they flip and how PCKh
pools them. Coordinates are (x, y) pixels with pixel centres at integer positions.

Joints are kept in the MPII order internally (the synthetic generator draws the 16 MPII
joints); a joint set names the subset and order a dataset uses, as indices into MPII's 16.
"""
from __future__ import annotations

from dataclasses import dataclass

from .pckh import PARTS

# MPII joint order, 0-based.
JOINT_NAMES = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle",
    "pelvis", "thorax", "upper_neck", "head_top",
    "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
)
NUM_JOINTS = len(JOINT_NAMES)

# (right, left) index pairs that swap under a horizontal flip.
FLIP_PAIRS = ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))


@dataclass(frozen=True)
class JointSet:
    name: str
    from_mpii: tuple[int, ...]  # joint i of this set is MPII joint from_mpii[i]
    flip_pairs: tuple[tuple[int, int], ...]  # (right, left) indices in this set
    parts: dict[str, tuple[int, ...]]  # PCKh part -> indices in this set (Total pools them all)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(JOINT_NAMES[i] for i in self.from_mpii)

    def __len__(self) -> int:
        return len(self.from_mpii)


MPII = JointSet("mpii", tuple(range(16)), FLIP_PAIRS, PARTS)

# LSP (Johnson & Everingham 2010): 14 joints, no pelvis or thorax; its "neck" is MPII's upper
# neck. Order: r-ankle, r-knee, r-hip, l-hip, l-knee, l-ankle, r-wrist, r-elbow, r-shoulder,
# l-shoulder, l-elbow, l-wrist, neck, head top.
LSP = JointSet(
    "lsp", (0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15, 8, 9),
    ((0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9)),
    {"head": (12, 13), "shoulder": (8, 9), "elbow": (7, 10), "wrist": (6, 11),
     "hip": (2, 3), "knee": (1, 4), "ankle": (0, 5)},
)

JOINT_SETS = {s.name: s for s in (MPII, LSP)}
