import torch

from repro.tasks.keypoints.heatmaps import decode_heatmaps, flip_heatmaps, flip_permutation, render_heatmaps
from repro.tasks.pose.joints import FLIP_PAIRS

STRIDE, HM = 4, 16  # 64x64 input, 16x16 heatmaps


def random_joints(batch=8, margin=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    # Keep joints one heatmap pixel away from the border so the shift applies.
    lo, hi = (margin + 0.5) * STRIDE - 0.5, (HM - 1 - margin + 0.5) * STRIDE - 0.5
    return lo + (hi - lo) * torch.rand(batch, 16, 2, generator=g)


def test_render_then_decode_within_quarter_pixel():
    joints = random_joints()
    maps = render_heatmaps(joints, torch.ones(8, 16, dtype=torch.bool), HM, STRIDE, sigma=1.0)
    assert maps.shape == (8, 16, HM, HM) and maps.dtype == torch.float32
    coords, maxvals = decode_heatmaps(maps, STRIDE)
    assert ((coords - joints).abs() <= 0.25 * STRIDE + 1e-4).all()
    assert (maxvals > 0.6).all() and (maxvals <= 1.0).all()


def test_peak_is_one_at_pixel_centre_and_mapping_convention():
    # Input pixel x maps to heatmap (x + 0.5) / stride - 0.5: x = 25.5 -> u = 6.
    joints = torch.full((1, 16, 2), 25.5)
    maps = render_heatmaps(joints, torch.ones(1, 16), HM, STRIDE)
    assert torch.allclose(maps[0, 0, 6, 6], torch.tensor(1.0))
    assert maps[0, 0].argmax() == 6 * HM + 6
    coords, _ = decode_heatmaps(maps, STRIDE)
    assert torch.allclose(coords, joints)


def test_invisible_or_outside_joints_give_zero_maps():
    joints = random_joints(batch=2)
    visible = torch.ones(2, 16, dtype=torch.bool)
    visible[0, 3] = False
    joints[1, 5] = torch.tensor([-10.0, 30.0])
    joints[1, 6] = torch.tensor([30.0, 70.0])
    maps = render_heatmaps(joints, visible, HM, STRIDE)
    assert maps[0, 3].abs().sum() == 0
    assert maps[1, 5].abs().sum() == 0 and maps[1, 6].abs().sum() == 0
    assert maps[0, 4].max() > 0.5


def test_flip_twice_is_identity():
    maps = torch.rand(3, 16, HM, HM)
    assert torch.equal(flip_heatmaps(flip_heatmaps(maps, FLIP_PAIRS), FLIP_PAIRS), maps)


def test_flip_of_rendered_map_matches_flipped_joints():
    joints = random_joints(batch=4, margin=0.0, seed=1)
    visible = torch.rand(4, 16, generator=torch.Generator().manual_seed(2)) > 0.2
    maps = render_heatmaps(joints, visible, HM, STRIDE)

    perm = flip_permutation(FLIP_PAIRS, 16)
    flipped_joints = joints.clone()
    flipped_joints[..., 0] = HM * STRIDE - 1 - joints[..., 0]  # image flip x -> W - 1 - x
    expected = render_heatmaps(flipped_joints[:, perm], visible[:, perm], HM, STRIDE)
    assert torch.allclose(flip_heatmaps(maps, FLIP_PAIRS), expected, atol=1e-6)
