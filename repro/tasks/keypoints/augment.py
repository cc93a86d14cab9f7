"""Batch-vectorised keypoint augmentation: random flip, scale and rotation.

Every sample gets one affine about the image centre c = ((W-1)/2, (H-1)/2),
in pixel coordinates with pixel centres at integers::

    p' = c + scale * R(angle) * F * (p - c),   F = diag(-1, 1) when flipped

so a flip maps x to W - 1 - x. Images are resampled with ``affine_grid`` /
``grid_sample`` (align_corners=True, which matches that pixel convention) and
keypoints go through the very same matrix, then left/right labels are swapped
for flipped samples (the person's right arm becomes the image's left arm).

Boxes (the metric's normalising box: a head box, a face box): the box centre is transformed and its width and height are
multiplied by ``scale``; rotation and flip leave the box shape alone. So the
PCKh head size (0.6 * diagonal) scales exactly with the person and does not
grow under rotation, as the bounding box of the rotated corners would.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .heatmaps import flip_permutation


def _forward_matrices(flip: torch.Tensor, scale: torch.Tensor, angle_deg: torch.Tensor) -> torch.Tensor:
    """[B, 2, 2] matrices scale * R(angle) * F acting on pixel offsets."""
    rad = angle_deg * (math.pi / 180.0)
    cos, sin = torch.cos(rad), torch.sin(rad)
    f = 1.0 - 2.0 * flip.to(cos.dtype)
    row0 = torch.stack([f * cos, -sin], dim=-1)
    row1 = torch.stack([f * sin, cos], dim=-1)
    return scale[:, None, None] * torch.stack([row0, row1], dim=-2)


def apply_affine(images, keypoints, visible, boxes, flip, scale, angle_deg, flip_pairs=()):
    """Apply given per-sample flip [B] bool, scale [B] and angle [B] (degrees).

    images [B, C, H, W] float; keypoints [B, J, 2] pixels; visible [B, J];
    boxes [B, 4] (x1, y1, x2, y2). Returns the transformed tuple; keypoints
    that land outside the image become invisible.
    """
    b, _, h, w = images.shape
    device, dtype = images.device, images.dtype
    flip = torch.as_tensor(flip, device=device).bool()
    scale = torch.as_tensor(scale, dtype=dtype, device=device)
    angle_deg = torch.as_tensor(angle_deg, dtype=dtype, device=device)
    forward = _forward_matrices(flip, scale, angle_deg)
    centre = torch.tensor([(w - 1) / 2.0, (h - 1) / 2.0], dtype=dtype, device=device)

    # grid_sample needs output->input in normalised coords: D^-1 A^-1 D with
    # D = diag(cx, cy) converting normalised offsets to pixel offsets.
    norm = torch.diag(centre.clamp(min=0.5))
    inverse = torch.linalg.inv(forward)
    theta_lin = torch.linalg.inv(norm) @ inverse @ norm
    theta = torch.cat([theta_lin, torch.zeros(b, 2, 1, dtype=dtype, device=device)], dim=2)
    grid = F.affine_grid(theta, list(images.shape), align_corners=True)
    out_images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=True)

    keypoints = torch.as_tensor(keypoints, dtype=dtype, device=device)
    new_keypoints = centre + (keypoints - centre) @ forward.transpose(1, 2)
    inside = (
        (new_keypoints[..., 0] >= 0) & (new_keypoints[..., 0] <= w - 1)
        & (new_keypoints[..., 1] >= 0) & (new_keypoints[..., 1] <= h - 1)
    )
    new_visible = torch.as_tensor(visible, device=device).bool() & inside

    perm = flip_permutation(flip_pairs, keypoints.shape[1])
    new_keypoints = torch.where(flip[:, None, None], new_keypoints[:, perm], new_keypoints)
    new_visible = torch.where(flip[:, None], new_visible[:, perm], new_visible)

    boxes = torch.as_tensor(boxes, dtype=dtype, device=device)
    box_centre = (boxes[:, :2] + boxes[:, 2:]) / 2.0
    half_size = (boxes[:, 2:] - boxes[:, :2]) / 2.0 * scale[:, None]
    new_centre = centre + ((box_centre - centre)[:, None, :] @ forward.transpose(1, 2))[:, 0]
    new_boxes = torch.cat([new_centre - half_size, new_centre + half_size], dim=1)
    return out_images, new_keypoints, new_visible, new_boxes


def sample_params(batch_size: int, generator: torch.Generator, flip: bool = True,
                  scale=(0.75, 1.25), rotate: float = 30.0):
    """Draw per-sample (flip [B] bool, scale [B], angle [B] in degrees) on the CPU."""
    u = torch.rand(3, batch_size, generator=generator)
    flips = (u[0] < 0.5) if flip else torch.zeros(batch_size, dtype=torch.bool)
    scales = scale[0] + (scale[1] - scale[0]) * u[1]
    angles = (2.0 * u[2] - 1.0) * rotate
    return flips, scales, angles


def augment_batch(images, keypoints, visible, boxes, generator: torch.Generator, flip: bool = True,
                  scale=(0.75, 1.25), rotate: float = 30.0, flip_pairs=()):
    """Random flip (p = 0.5), uniform scale in ``scale`` and angle in ±``rotate`` degrees."""
    flips, scales, angles = sample_params(images.shape[0], generator, flip, scale, rotate)
    return apply_affine(images, keypoints, visible, boxes, flips, scales, angles, flip_pairs)
