"""The proxy dataset: scikit-learn's handwritten digits (1,797 8x8 images, 10 classes, shipped with
the package) rendered as colour images.

Each image draws one digit of its split, scales it to 60-90% of the image, rotates it by up to
+-10 degrees, places it at a random position, and paints it darker (by 0.3-0.6 in every channel)
over a light background of random colour with a low-frequency gradient, plus pixel noise.
The 1,797 digits are split once (seeded): 1,397 for training and 400 for validation, so
validation images never reuse a training digit. Rendering is deterministic given the seed.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

N_CLASSES = 10
N_VAL_DIGITS = 400


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits  # ships with scikit-learn; nothing is downloaded

    digits = load_digits()
    return torch.from_numpy(digits.images / 16.0).float(), torch.from_numpy(digits.target).long()


def render(n: int, size: int, seed: int, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images [n, 3, size, size] uint8 and labels [n] from the ``split`` ("train"/"val") digits."""
    glyphs, labels = _digits()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(12345))  # fixed split
    pool = order[N_VAL_DIGITS:] if split == "train" else order[:N_VAL_DIGITS]
    g = torch.Generator().manual_seed(seed * 7919 + (0 if split == "train" else 1))
    pick = pool[torch.randint(len(pool), (n,), generator=g)]
    alpha = glyphs[pick][:, None]  # [n, 1, 8, 8], ink in [0, 1]

    # Affine map from output to glyph coordinates: scale, rotation, translation (grid_sample).
    scale = 0.6 + 0.3 * torch.rand(n, generator=g)
    angle = (torch.rand(n, generator=g) * 2 - 1) * math.radians(10)
    room = 1 - scale
    shift = (torch.rand(n, 2, generator=g) * 2 - 1) * room[:, None]
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, -(cos * shift[:, 0] - sin * shift[:, 1])], 1),
                         torch.stack([sin, cos, -(sin * shift[:, 0] + cos * shift[:, 1])], 1)], 1)
    grid = F.affine_grid(theta, [n, 1, size, size], align_corners=False)
    ink = F.grid_sample(alpha, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    # A light background (a random colour plus a low-frequency gradient) and darker ink of a random
    # colour: 0.3-0.6 darker in every channel, so the digit's polarity is always the same.
    base = 0.55 + 0.45 * torch.rand(n, 3, 1, 1, generator=g)
    gradient = F.interpolate(torch.rand(n, 3, 3, 3, generator=g) - 0.5, size=(size, size), mode="bilinear",
                             align_corners=True)
    background = (base + 0.3 * gradient).clamp(0, 1)
    darker = 0.3 + 0.3 * torch.rand(n, 3, 1, 1, generator=g)
    image = background - darker * ink + 0.05 * torch.randn(n, 3, size, size, generator=g)
    return (image.clamp(0, 1) * 255).round().to(torch.uint8), labels[pick]
