"""Gaussian heatmap targets, their decoding, and the flip of a heatmap.

Coordinate mapping between input-image pixels ``x`` and heatmap pixels ``u``
at output stride ``s`` (both with pixel centres at integer positions)::

    u = (x + 0.5) / s - 0.5        x = (u + 0.5) * s - 0.5

This maps the input image's pixel area [-0.5, W - 0.5] exactly onto the
heatmap's [-0.5, W/s - 0.5]. A useful consequence: a horizontal image flip
(x -> W - 1 - x) is exactly an array flip of the heatmap (u -> w - 1 - u), so
flip test-time augmentation needs no one-pixel shift correction.
"""

from __future__ import annotations

import torch


def flip_permutation(flip_pairs, num_points: int) -> list[int]:
    """Index list p such that flipped[:, j] = original[:, p[j]] (left and right swapped)."""
    perm = list(range(num_points))
    for right, left in flip_pairs:
        perm[right], perm[left] = left, right
    return perm


def _pair(size) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def input_to_heatmap(coords: torch.Tensor, stride: float) -> torch.Tensor:
    return (coords + 0.5) / stride - 0.5


def heatmap_to_input(coords: torch.Tensor, stride: float) -> torch.Tensor:
    return (coords + 0.5) * stride - 0.5


def render_heatmaps(keypoints, visible, heatmap_size, stride: float, sigma: float = 1.0) -> torch.Tensor:
    """Render one unnormalised Gaussian (value 1 at the keypoint) per keypoint.

    keypoints: [B, J, 2] in input-image pixels; visible: [B, J];
    heatmap_size: int or (h, w); sigma in heatmap pixels.
    Returns float32 [B, J, h, w]; all-zero maps for invisible keypoints and for
    keypoints outside the heatmap area.
    """
    keypoints = torch.as_tensor(keypoints, dtype=torch.float32)
    visible = torch.as_tensor(visible).bool().to(keypoints.device)
    h, w = _pair(heatmap_size)
    centre = input_to_heatmap(keypoints, stride)  # [B, J, 2]
    xs = torch.arange(w, dtype=torch.float32, device=keypoints.device)
    ys = torch.arange(h, dtype=torch.float32, device=keypoints.device)
    dx2 = (xs.view(1, 1, 1, w) - centre[..., 0, None, None]) ** 2  # [B, J, 1, w]
    dy2 = (ys.view(1, 1, h, 1) - centre[..., 1, None, None]) ** 2  # [B, J, h, 1]
    maps = torch.exp(-dy2 / (2.0 * sigma**2)) * torch.exp(-dx2 / (2.0 * sigma**2))  # separable: h + w exps, not h * w
    inside = (
        (centre[..., 0] >= -0.5) & (centre[..., 0] <= w - 0.5)
        & (centre[..., 1] >= -0.5) & (centre[..., 1] <= h - 0.5)
    )
    keep = (visible & inside).to(maps.dtype)
    return maps * keep[..., None, None]


def decode_heatmaps(heatmaps: torch.Tensor, stride: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Argmax with the quarter-pixel shift toward the higher neighbour.

    heatmaps: [B, J, h, w]. Returns (coords [B, J, 2] in input pixels,
    maxvals [B, J]). The shift (as in Newell et al.'s hourglass code) is
    applied per axis only where both neighbours exist.
    """
    b, j, h, w = heatmaps.shape
    flat = heatmaps.reshape(b, j, h * w)
    maxvals, idx = flat.max(dim=-1)
    px = idx % w
    py = torch.div(idx, w, rounding_mode="floor")

    def neighbour(dx, dy):
        nx = (px + dx).clamp(0, w - 1)
        ny = (py + dy).clamp(0, h - 1)
        return flat.gather(-1, (ny * w + nx).unsqueeze(-1)).squeeze(-1)

    interior_x = (px > 0) & (px < w - 1)
    interior_y = (py > 0) & (py < h - 1)
    shift_x = torch.sign(neighbour(1, 0) - neighbour(-1, 0)) * interior_x
    shift_y = torch.sign(neighbour(0, 1) - neighbour(0, -1)) * interior_y
    coords = torch.stack([px + 0.25 * shift_x, py + 0.25 * shift_y], dim=-1).to(heatmaps.dtype)
    return heatmap_to_input(coords, stride), maxvals


def flip_heatmaps(heatmaps: torch.Tensor, flip_pairs) -> torch.Tensor:
    """Mirror heatmaps horizontally and swap left/right keypoint channels."""
    perm = flip_permutation(flip_pairs, heatmaps.shape[1])
    return heatmaps.flip(-1)[:, perm]
