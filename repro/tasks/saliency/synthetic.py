"""Synthetic salient-object images for the smoke and proxy profiles, with their exact masks.

Each image: a smooth colour field with fine texture, a dozen small clutter shapes in colours
near the background's, and one larger salient object (a rotated ellipse, a rotated rectangle or
a convex polygon, 15-35% of the side in radius) in a saturated colour with its own texture,
drawn last. The mask is the object's pixels (0 / 255), computed on the same pixel grid, so it is
exact. Image ``i`` of a split depends only on (seed, split, i): the same draw for any ``n``.
"""
from __future__ import annotations

import numpy as np
import torch

SPLITS = {"train": 0, "val": 1}


def _shape_mask(rng: np.random.Generator, ys: np.ndarray, xs: np.ndarray, size: int, radius: tuple[float, float]) -> np.ndarray:
    """A random shape's pixels: ellipse, rectangle (both rotated) or convex polygon."""
    r = rng.uniform(*radius) * size
    cy, cx = rng.uniform(r * 0.6, size - r * 0.6, size=2)
    angle = rng.uniform(0, np.pi)
    u = (xs - cx) * np.cos(angle) + (ys - cy) * np.sin(angle)
    v = -(xs - cx) * np.sin(angle) + (ys - cy) * np.cos(angle)
    aspect = rng.uniform(0.5, 1.0)
    kind = rng.integers(3)
    if kind == 0:
        return (u / r) ** 2 + (v / (r * aspect)) ** 2 <= 1
    if kind == 1:
        return (np.abs(u) <= r) & (np.abs(v) <= r * aspect)
    corners = np.sort(rng.uniform(0, 2 * np.pi, size=rng.integers(3, 7)))
    px, py = cx + r * np.cos(corners), cy + r * np.sin(corners)
    inside = np.ones_like(xs, dtype=bool)
    for k in range(len(corners)):  # convex, counter-clockwise: inside every edge's left half-plane
        x0, y0, x1, y1 = px[k], py[k], px[(k + 1) % len(px)], py[(k + 1) % len(py)]
        inside &= (x1 - x0) * (ys - y0) - (y1 - y0) * (xs - x0) >= 0
    return inside if inside.any() else (u / r) ** 2 + (v / r) ** 2 <= 1


def _smooth_field(rng: np.random.Generator, size: int, cells: int, channels: int) -> np.ndarray:
    coarse = torch.from_numpy(rng.uniform(0, 1, size=(1, channels, cells, cells)).astype(np.float32))
    fine = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)
    return fine[0].permute(1, 2, 0).numpy()


def render_one(seed: int, split: str, index: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(image uint8 [size, size, 3], mask uint8 [size, size], 0 or 255)."""
    rng = np.random.default_rng([seed, SPLITS[split], index])
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    base = rng.uniform(0.25, 0.65, size=3)
    picture = base + 0.25 * (_smooth_field(rng, size, 4, 3) - 0.5)
    picture += rng.normal(0, 0.06, size=picture.shape)  # fine texture
    for _ in range(rng.integers(8, 16)):  # clutter: small, low-contrast shapes
        shape = _shape_mask(rng, ys, xs, size, (0.04, 0.1))
        picture[shape] = np.clip(base + rng.uniform(-0.2, 0.2, size=3), 0, 1)
    obj = _shape_mask(rng, ys, xs, size, (0.15, 0.35))
    colour = rng.uniform(0, 1, size=3)
    colour[rng.integers(3)] = rng.choice([0.05, 0.95])  # saturated, so it stands out
    texture = 0.08 * (_smooth_field(rng, size, 6, 1) - 0.5) + rng.normal(0, 0.03, size=(size, size, 1))
    picture[obj] = np.clip(colour + texture[obj], 0, 1)
    image = (np.clip(picture, 0, 1) * 255).round().astype(np.uint8)
    return image, (obj * 255).astype(np.uint8)


def render(n: int, size: int, seed: int, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 [n, 3, size, size], masks uint8 [n, size, size])."""
    pairs = [render_one(seed, split, i, size) for i in range(n)]
    images = torch.from_numpy(np.stack([p[0] for p in pairs])).permute(0, 3, 1, 2).contiguous()
    masks = torch.from_numpy(np.stack([p[1] for p in pairs]))
    return images, masks
