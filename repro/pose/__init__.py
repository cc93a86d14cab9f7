"""Human pose estimation utilities in the MPII convention.

Coordinates are (x, y) in pixels with pixel centres at integer positions.
The constants live here (before the submodule imports) so the submodules can
import them from the package without a cycle.
"""

# MPII joint order, 0-based.
JOINT_NAMES = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle",
    "pelvis", "thorax", "upper_neck", "head_top",
    "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
)
NUM_JOINTS = len(JOINT_NAMES)

# (right, left) index pairs that swap under a horizontal flip.
FLIP_PAIRS = ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))


def flip_permutation(flip_pairs=FLIP_PAIRS, num_joints=NUM_JOINTS):
    """Index list p such that flipped[:, j] = original[:, p[j]]."""
    perm = list(range(num_joints))
    for right, left in flip_pairs:
        perm[right], perm[left] = left, right
    return perm


from .augment import apply_affine, augment_batch  # noqa: E402
from .heatmaps import decode_heatmaps, flip_heatmaps, render_heatmaps  # noqa: E402
from .pckh import joint_correct, pckh  # noqa: E402
from .synthetic import GENERATOR_VERSION, generate, load_or_generate  # noqa: E402

__all__ = [
    "JOINT_NAMES", "NUM_JOINTS", "FLIP_PAIRS", "flip_permutation",
    "apply_affine", "augment_batch",
    "render_heatmaps", "decode_heatmaps", "flip_heatmaps",
    "pckh", "joint_correct",
    "GENERATOR_VERSION", "generate", "load_or_generate",
]
