"""Procedural synthetic faces with AFLW's 21 landmarks, for the face-alignment proxies.

A face is an ellipsoid head with its 21 landmarks on (or, for the nose, above) the surface,
turned in 3D by a yaw in [-90, 90] degrees (uniform, so the three |yaw| ranges of the AFLW
tables are equally represented), a pitch and a roll, and projected orthographically. As in
AFLW, a landmark that the head hides (its surface faces away from the camera) is not
annotated: it is invisible. The image draws the head's silhouette, hair, ears, brows, eyes,
nose and mouth in random colours over textured backgrounds, with face-coloured distractors,
occluders (landmarks under them are invisible) and sensor noise. Deterministic by seed.

The face box of a sample is the bounding box of its 21 projected landmarks (visible or
not); the NME divides by its size.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..pose.synthetic import SKIN_TONES, SUPERSAMPLE, background, cached_npz

GENERATOR_VERSION = 1
AXES = np.array([0.72, 1.0, 0.8])  # head ellipsoid half-width, half-height, depth (head units)
# (x, y, protrusion) of each landmark, x toward the subject's left (image right when frontal),
# y down; z is the ellipsoid's surface at (x, y) plus the protrusion (the nose stands out).
TEMPLATE = np.array([
    [0.52, -0.32, 0], [0.33, -0.38, 0], [0.12, -0.33, 0],          # left brow: outer, centre, inner
    [-0.12, -0.33, 0], [-0.33, -0.38, 0], [-0.52, -0.32, 0],       # right brow: inner, centre, outer
    [0.47, -0.17, 0], [0.31, -0.18, 0], [0.15, -0.17, 0],          # left eye: outer, centre, inner
    [-0.15, -0.17, 0], [-0.31, -0.18, 0], [-0.47, -0.17, 0],       # right eye: inner, centre, outer
    [0.705, 0.12, 0], [0.11, 0.2, 0.1], [0.0, 0.12, 0.28], [-0.11, 0.2, 0.1], [-0.705, 0.12, 0],  # ears, nose
    [0.24, 0.45, 0.02], [0.0, 0.47, 0.04], [-0.24, 0.45, 0.02],    # mouth: left, centre, right
    [0.0, 0.93, 0.0],                                              # chin
])
HIDDEN_BELOW = -0.1  # a landmark is hidden when its surface normal's z (toward the camera) is below this


def _surface(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    a, b, c = AXES
    return c * np.sqrt(np.clip(1 - (x / a) ** 2 - (y / b) ** 2, 0, None))


def landmarks_3d() -> tuple[np.ndarray, np.ndarray]:
    """The template's 3D points [21, 3] and their surface normals [21, 3]."""
    x, y, lift = TEMPLATE.T
    z = _surface(x, y)
    normals = np.stack([x, y, z], 1) / AXES ** 2
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    return np.stack([x, y, z + lift], 1), normals


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """R = Rz(roll) Rx(pitch) Ry(yaw), degrees; a positive yaw turns the face to its left."""
    y, p, r = np.deg2rad([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


def _hull(points: np.ndarray) -> list[tuple[float, float]]:
    """Convex hull of 2D points (monotone chain), as a polygon."""
    pts = sorted(set(map(tuple, np.round(points, 3))))
    if len(pts) < 3:
        return pts

    def half(seq):
        out = []
        for p in seq:
            while len(out) >= 2 and (out[-1][0] - out[-2][0]) * (p[1] - out[-2][1]) - (out[-1][1] - out[-2][1]) * (p[0] - out[-2][0]) <= 0:
                out.pop()
            out.append(p)
        return out
    lower, upper = half(pts), half(reversed(pts))
    return lower[:-1] + upper[:-1]


def _cap(rot: np.ndarray, below_y: float | None = None, above_y: float | None = None, n: int = 24) -> np.ndarray:
    """Points of the ellipsoid's surface (optionally only y < below_y), rotated: [P, 3]."""
    theta, phi = np.meshgrid(np.linspace(0, 2 * np.pi, n, endpoint=False), np.linspace(-np.pi / 2, np.pi / 2, n // 2))
    pts = np.stack([np.cos(phi) * np.cos(theta), np.sin(phi), np.cos(phi) * np.sin(theta)], -1).reshape(-1, 3) * AXES
    if below_y is not None:
        pts = pts[pts[:, 1] < below_y]
    return pts @ rot.T


def _colour(rgb) -> tuple:
    return tuple(int(v) for v in np.clip(np.asarray(rgb) * 255, 0, 255))


def render_sample(rng: np.random.Generator, size: int = 64, occlusion_prob: float = 0.3):
    """One face: (image uint8 [size, size, 3], landmarks [21, 2], visible [21], face box [4], yaw)."""
    yaw, pitch, roll = rng.uniform(-90, 90), rng.uniform(-20, 20), rng.uniform(-25, 25)
    rot = rotation(yaw, pitch, roll)
    points, normals = landmarks_3d()
    points, normals = points @ rot.T, normals @ rot.T
    scale = size * rng.uniform(0.26, 0.38)  # pixels per head unit (half the head's height)
    centre = size / 2 + rng.uniform(-0.08, 0.08, 2) * size
    landmarks = centre + scale * points[:, :2]
    visible = normals[:, 2] > HIDDEN_BELOW

    big, s = size * SUPERSAMPLE, scale * SUPERSAMPLE
    to_big = lambda p: SUPERSAMPLE * p + (SUPERSAMPLE - 1) / 2  # noqa: E731  (pixel centres, as pose)
    canvas = Image.fromarray((background(rng, size) * 255).astype(np.uint8)).resize((big, big), Image.BILINEAR)
    draw = ImageDraw.Draw(canvas)
    skin = np.clip(SKIN_TONES[rng.integers(len(SKIN_TONES))] + rng.normal(0, 0.05, 3), 0, 1)
    hair, lips = rng.random(3) * 0.5, np.clip(skin * [0.8, 0.45, 0.45] + rng.normal(0, 0.05, 3), 0, 1)
    for _ in range(rng.integers(0, 3)):  # face-coloured blobs: colour alone does not find the face
        c, r = rng.uniform(0, big, 2), rng.uniform(0.1, 0.3) * big
        draw.ellipse([c[0] - r, c[1] - r * rng.uniform(0.5, 1.5), c[0] + r, c[1] + r], fill=_colour(skin * rng.uniform(0.8, 1.1)))

    project = lambda pts3: to_big(centre + scale * pts3[:, :2])  # noqa: E731
    draw.polygon(_hull(project(_cap(rot))), fill=_colour(skin))
    draw.polygon(_hull(project(_cap(rot, below_y=-0.55))), fill=_colour(hair))
    lm = to_big(landmarks)
    for ear in (12, 16):
        if visible[ear]:
            top = lm[ear] - s * 0.17 * rot[:2, 1]  # the ear rises from the lobe
            cx, cy = (lm[ear] + top) / 2
            draw.ellipse([cx - 0.07 * s, cy - 0.16 * s, cx + 0.07 * s, cy + 0.16 * s], fill=_colour(skin * 0.85))
    for brow in ((0, 1, 2), (3, 4, 5)):
        seen = [tuple(lm[i]) for i in brow if visible[i]]
        if len(seen) > 1:
            draw.line(seen, fill=_colour(hair), width=max(1, int(0.07 * s)))
    for outer, mid, inner in ((6, 7, 8), (11, 10, 9)):
        if visible[mid]:
            half = max(np.linalg.norm(lm[outer] - lm[inner]) / 2, 0.02 * s)
            draw.ellipse([lm[mid][0] - half, lm[mid][1] - 0.05 * s, lm[mid][0] + half, lm[mid][1] + 0.05 * s], fill=(235, 235, 235))
            r = 0.045 * s
            draw.ellipse([lm[mid][0] - r, lm[mid][1] - r, lm[mid][0] + r, lm[mid][1] + r], fill=_colour(rng.random(3) * 0.4))
    bridge = (lm[2] + lm[3]) / 2  # between the inner brow ends
    draw.line([tuple(bridge), tuple(lm[14])], fill=_colour(skin * 0.75), width=max(1, int(0.05 * s)))
    for nostril in (13, 15):
        if visible[nostril]:
            r = 0.035 * s
            draw.ellipse([lm[nostril][0] - r, lm[nostril][1] - r, lm[nostril][0] + r, lm[nostril][1] + r], fill=_colour(skin * 0.5))
    mouth = [tuple(lm[i]) for i in (17, 18, 19) if visible[i]]
    if len(mouth) > 1:
        draw.line(mouth, fill=_colour(lips), width=max(1, int(0.06 * s)))
    if rng.random() < occlusion_prob:  # a hand, hair or an object over part of the face
        c, w, h = lm[rng.integers(21)] + rng.normal(0, 0.2 * s, 2), rng.uniform(0.2, 0.5) * s, rng.uniform(0.2, 0.5) * s
        draw.rectangle([c[0] - w, c[1] - h, c[0] + w, c[1] + h], fill=_colour(rng.random(3)))
        visible &= ~((np.abs(lm[:, 0] - c[0]) <= w) & (np.abs(lm[:, 1] - c[1]) <= h))

    image = np.asarray(canvas.reduce(SUPERSAMPLE), dtype=np.float32)
    image = np.clip(image + rng.uniform(2, 10) * rng.standard_normal(image.shape, dtype=np.float32), 0, 255).astype(np.uint8)
    visible &= ((landmarks >= 0) & (landmarks <= size - 1)).all(1)
    box = np.concatenate([landmarks.min(0), landmarks.max(0)]).astype(np.float32)
    return image, landmarks.astype(np.float32), visible, box, np.float32(yaw)


def generate(n: int, image_size: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` faces; face i depends only on (seed, i). Arrays: images uint8 [n, H, W, 3],
    landmarks float32 [n, 21, 2] (pixels), visible bool [n, 21], face_boxes [n, 4], yaw [n]."""
    keys = ("images", "landmarks", "visible", "face_boxes", "yaw")
    samples = [render_sample(np.random.default_rng([seed, i]), image_size) for i in range(n)]
    return {key: np.stack([sample[j] for sample in samples]) for j, key in enumerate(keys)}


def load_or_generate(n: int, image_size: int, seed: int, cache_dir: Path) -> dict[str, np.ndarray]:
    path = Path(cache_dir) / f"faces_v{GENERATOR_VERSION}_n{n}_s{image_size}_seed{seed}.npz"
    return cached_npz(path, lambda: generate(n, image_size, seed))
