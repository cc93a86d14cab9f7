import math

import torch

from repro.tasks.keypoints.augment import apply_affine, augment_batch
from repro.tasks.keypoints.heatmaps import flip_permutation
from repro.tasks.pose.joints import FLIP_PAIRS

H = W = 32


def make_batch(batch=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, H, W, generator=g)
    joints = 8 + 16 * torch.rand(batch, 16, 2, generator=g)
    visible = torch.rand(batch, 16, generator=g) > 0.2
    centre = 10 + 12 * torch.rand(batch, 2, generator=g)
    boxes = torch.cat([centre - 3, centre + 3], dim=1)
    return images, joints, visible, boxes


def test_identity_parameters_change_nothing():
    images, joints, visible, boxes = make_batch()
    g = torch.Generator().manual_seed(0)
    out = augment_batch(images, joints, visible, boxes, g, flip=False, scale=(1.0, 1.0), rotate=0.0)
    assert torch.allclose(out[0], images, atol=1e-5)
    assert torch.allclose(out[1], joints, atol=1e-5)
    assert torch.equal(out[2], visible)
    assert torch.allclose(out[3], boxes, atol=1e-5)


def test_flip_mirrors_image_and_swaps_pairs():
    images, joints, visible, boxes = make_batch()
    b = images.shape[0]
    out_images, out_joints, out_visible, out_boxes = apply_affine(
        images, joints, visible, boxes, torch.ones(b, dtype=torch.bool), torch.ones(b), torch.zeros(b), FLIP_PAIRS)
    perm = flip_permutation(FLIP_PAIRS, 16)
    assert torch.allclose(out_images, images.flip(-1), atol=1e-5)
    assert torch.allclose(out_joints[..., 0], (W - 1 - joints[..., 0])[:, perm], atol=1e-5)
    assert torch.allclose(out_joints[..., 1], joints[:, perm, 1], atol=1e-5)
    assert torch.equal(out_visible, visible[:, perm])
    assert torch.allclose(out_boxes[:, [0, 2]], W - 1 - boxes[:, [2, 0]], atol=1e-5)


def gaussian_blob(centre, sigma=1.5):
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32),
                            indexing="ij")
    return torch.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * sigma**2))


def test_blob_follows_transformed_joint():
    # Blob at the pelvis (not a flip pair) so it stays at index 6 after flips.
    images, joints, visible, boxes = make_batch(batch=6, seed=3)
    joints[:, 6] = 12 + 8 * torch.rand(6, 2, generator=torch.Generator().manual_seed(4))
    visible[:, 6] = True
    images = torch.stack([gaussian_blob(j).expand(3, H, W) for j in joints[:, 6]])
    flip = torch.tensor([0, 1, 0, 1, 1, 0], dtype=torch.bool)
    scale = torch.tensor([0.75, 1.25, 1.1, 0.9, 1.0, 1.2])
    angle = torch.tensor([30.0, -30.0, 15.0, 0.0, 40.0, -10.0])
    out_images, out_joints, _, _ = apply_affine(images, joints, visible, boxes, flip, scale, angle)

    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32),
                            indexing="ij")
    weight = out_images[:, 0].clamp(min=0) ** 2  # sharpen so bilinear tails do not bias the centroid
    total = weight.sum(dim=(1, 2))
    centroid = torch.stack([(weight * xs).sum(dim=(1, 2)), (weight * ys).sum(dim=(1, 2))], dim=1) / total[:, None]
    assert ((centroid - out_joints[:, 6]).norm(dim=1) < 1.0).all()


def test_joints_leaving_image_become_invisible():
    images, joints, visible, boxes = make_batch(batch=1)
    joints[0, 0] = torch.tensor([1.0, 1.0])
    visible[0, 0] = True
    out = apply_affine(images, joints, visible, boxes, torch.zeros(1, dtype=torch.bool),
                       torch.tensor([1.25]), torch.tensor([0.0]))
    assert not out[2][0, 0]
    assert (out[1][0, 0] < 0).all()


def test_head_size_scales_with_scale_and_ignores_rotation():
    images, joints, visible, boxes = make_batch()
    b = images.shape[0]
    scale = torch.tensor([0.8, 1.0, 1.2, 1.25])
    angle = torch.tensor([30.0, 45.0, -30.0, 90.0])
    out_boxes = apply_affine(images, joints, visible, boxes, torch.zeros(b, dtype=torch.bool), scale, angle)[3]
    diag = lambda x: (x[:, 2:] - x[:, :2]).norm(dim=1)  # noqa: E731
    assert torch.allclose(diag(out_boxes), diag(boxes) * scale, atol=1e-5)
    # The box centre moves with the image content: rotate it about the image centre by hand.
    c = torch.tensor([(W - 1) / 2, (H - 1) / 2])
    rad = angle[0] * math.pi / 180
    rot = torch.tensor([[math.cos(rad), -math.sin(rad)], [math.sin(rad), math.cos(rad)]])
    expected = c + scale[0] * rot @ ((boxes[0, :2] + boxes[0, 2:]) / 2 - c)
    assert torch.allclose((out_boxes[0, :2] + out_boxes[0, 2:]) / 2, expected, atol=1e-4)


def test_same_generator_seed_same_result():
    batch = make_batch()
    a = augment_batch(*batch, torch.Generator().manual_seed(7))
    b = augment_batch(*batch, torch.Generator().manual_seed(7))
    for x, y in zip(a, b):
        assert torch.equal(x, y)
