"""Procedural synthetic human-pose dataset in the MPII joint convention.

Each image holds one front-facing stick-and-polygon person built from a
kinematic tree (pelvis -> hips -> knees -> ankles; pelvis -> thorax -> upper
neck -> head top; thorax -> shoulders -> elbows -> wrists) with jittered limb
proportions, joint angles in human-like ranges (elbows and knees bend one way
only), random scale, in-plane rotation and translation. Because the person
always faces the camera (eyes and mouth mark the face), the person's right
side is on the image left when upright, so left/right labels are decidable.

Difficulty comes from textured backgrounds, limb- and head-like distractors
drawn in the figure's own colours (so colour thresholding fails), occluders
(joints under them are invisible), foreshortened limbs and sensor noise.

Images are drawn with PIL at ``SUPERSAMPLE`` times the resolution and box
downsampled for anti-aliasing. A final pixel centre ``p`` maps to the
supersampled ``SUPERSAMPLE * p + (SUPERSAMPLE - 1) / 2``, so joints are exact
in the returned pixel convention (pixel centres at integers).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# Bump whenever the drawn distribution changes so stale caches are not reused.
GENERATOR_VERSION = 1
SUPERSAMPLE = 2
DEFAULT_CACHE_DIR = Path(os.environ.get("BNN_REPRO_CACHE", "~/.cache/bnn-repro")).expanduser() / "synthetic"

# Nominal segment lengths as a fraction of standing height (roughly
# anthropometric); each person gets its own jitter.
PROPORTIONS = {
    "thigh": 0.245, "shin": 0.245, "torso": 0.29, "neck": 0.045, "head": 0.125,
    "hip_half_width": 0.085, "shoulder_half_width": 0.115, "upper_arm": 0.17, "forearm": 0.155,
}
STANDING_HEIGHT = sum(PROPORTIONS[k] for k in ("thigh", "shin", "torso", "neck", "head"))

SKIN_TONES = np.array([[0.95, 0.80, 0.69], [0.87, 0.67, 0.52], [0.71, 0.51, 0.36],
                       [0.55, 0.37, 0.25], [0.36, 0.24, 0.16]])


# --------------------------------------------------------------------------- geometry

def _rotate(v: np.ndarray, deg: float) -> np.ndarray:
    # Image coordinates (y down): positive angles turn clockwise on screen.
    r = np.deg2rad(deg)
    c, s = np.cos(r), np.sin(r)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _perp(up: np.ndarray) -> np.ndarray:
    """Unit vector toward the person's left (image right when upright)."""
    return np.array([-up[1], up[0]])


def _limb_direction(down: np.ndarray, side: int, outward_deg: float) -> np.ndarray:
    # side -1 = person's right (image left when upright), +1 = left.
    # Rotating "down" by -side*angle swings the limb away from the midline.
    return _rotate(down, -side * outward_deg)


def _foreshorten(rng: np.random.Generator, prob: float = 0.25) -> float:
    """Limbs pointing toward the camera look shorter."""
    return rng.uniform(0.55, 1.0) if rng.random() < prob else 1.0


def sample_skeleton(rng: np.random.Generator) -> np.ndarray:
    """16 MPII joints [16, 2] in units of standing height, pelvis at origin, upright."""
    length = {k: v * rng.uniform(0.9, 1.1) for k, v in PROPORTIONS.items()}
    joints = np.zeros((16, 2))

    pelvis_up = _rotate(np.array([0.0, -1.0]), rng.normal(0, 5))
    torso_up = _rotate(np.array([0.0, -1.0]), np.clip(rng.normal(0, 8), -20, 20))
    head_up = _rotate(torso_up, np.clip(rng.normal(0, 10), -25, 25))

    joints[6] = 0.0
    joints[7] = torso_up * length["torso"] * _foreshorten(rng, 0.15)
    joints[8] = joints[7] + head_up * length["neck"]
    joints[9] = joints[8] + head_up * length["head"]

    # Legs: hip abduction mostly small, sometimes raised; knees bend inward only.
    for side, hip, knee, ankle in ((-1, 2, 1, 0), (1, 3, 4, 5)):
        joints[hip] = side * _perp(pelvis_up) * length["hip_half_width"]
        thigh_angle = rng.uniform(-12, 30) if rng.random() < 0.75 else rng.uniform(-12, 85)
        bend = rng.uniform(0, 25) if rng.random() < 0.6 else rng.uniform(0, 100)
        bend = min(bend, thigh_angle + 40)
        thigh_dir = _limb_direction(-pelvis_up, side, thigh_angle)
        shin_dir = _limb_direction(-pelvis_up, side, thigh_angle - bend)
        joints[knee] = joints[hip] + thigh_dir * length["thigh"] * _foreshorten(rng)
        joints[ankle] = joints[knee] + shin_dir * length["shin"] * _foreshorten(rng)

    # Arms: anywhere from hanging to overhead; elbows bend toward the midline only.
    for side, shoulder, elbow, wrist in ((-1, 12, 11, 10), (1, 13, 14, 15)):
        joints[shoulder] = (joints[7] + side * _perp(torso_up) * length["shoulder_half_width"]
                            - torso_up * 0.02)
        arm_angle = rng.uniform(-20, 60) if rng.random() < 0.5 else rng.uniform(-20, 175)
        bend = rng.uniform(0, 20) if rng.random() < 0.3 else rng.uniform(0, 140)
        upper_dir = _limb_direction(-torso_up, side, arm_angle)
        fore_dir = _limb_direction(-torso_up, side, arm_angle - bend)
        joints[elbow] = joints[shoulder] + upper_dir * length["upper_arm"] * _foreshorten(rng)
        joints[wrist] = joints[elbow] + fore_dir * length["forearm"] * _foreshorten(rng)
    return joints


def _place(rng, body: np.ndarray, size: int, max_rotation: float):
    """Scale, rotate and translate a skeleton into image pixels; returns (joints, height_px)."""
    height_px = rng.uniform(0.55, 0.9) * size
    pts = _rotate((body * (height_px / STANDING_HEIGHT)).T, rng.uniform(-max_rotation, max_rotation)).T
    # Margin for the head drawn above head top and the limb thickness.
    lo, hi = pts.min(0) - 0.04 * height_px, pts.max(0) + 0.04 * height_px
    slack = np.maximum(size - (hi - lo), 0) / 2 + 0.06 * size
    target = (size - 1) / 2 + rng.uniform(-slack, slack)
    return pts - (lo + hi) / 2 + target, height_px


def head_box(joints: np.ndarray) -> np.ndarray:
    """MPII-like square head box around the upper neck -> head top segment."""
    centre = (joints[8] + joints[9]) / 2
    half = 0.6 * np.linalg.norm(joints[9] - joints[8])
    return np.concatenate([centre - half, centre + half])


# --------------------------------------------------------------------------- drawing

def _colour(rgb) -> tuple:
    return tuple(min(255, max(0, int(c * 255))) for c in rgb)


def _jitter(rng, rgb, amount=0.08) -> np.ndarray:
    return np.clip(np.asarray(rgb) + rng.normal(0, amount, 3), 0, 1)


def _smooth_field(rng, cells: int, size: int) -> np.ndarray:
    """Random colour field with ~``cells`` blobs across, values in [0, 1], [size, size, 3]."""
    small = Image.fromarray(rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8))
    return np.asarray(small.resize((size, size), Image.BICUBIC), dtype=np.float32) / 255.0


def background(rng, size: int) -> np.ndarray:
    """A textured background (stripes, gradient or flat, with smooth colour noise), [size, size, 3] in [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    angle = rng.uniform(0, np.pi)
    ramp = np.cos(angle) * xx + np.sin(angle) * yy
    kind = rng.integers(3)
    a, b = rng.random(3), rng.random(3)
    if kind == 0:  # stripes
        t = 0.5 + 0.5 * np.sin(2 * np.pi * ramp * rng.uniform(2, 10) + rng.uniform(0, 2 * np.pi))
    elif kind == 1:  # gradient
        t = np.clip(ramp - ramp.min(), 0, None) / max(np.ptp(ramp), 1e-6)
    else:  # flat base, noise does the rest
        t = np.zeros_like(xx)
    img = a + (b - a) * t[..., None]
    for cells, amp in ((3, 0.5), (7, 0.3), (16, 0.15)):
        img = img + rng.uniform(0.3, 1.0) * amp * (_smooth_field(rng, cells, size) - 0.5)
    return np.clip(img, 0, 1)


def _capsule(draw, p, q, width, fill, edge=True):
    """Thick segment with round caps, like a limb.

    A darker rim stands in for the shading edges of real limbs; without it an
    arm in front of a same-coloured shirt would be invisible.
    """
    layers = [(width + SUPERSAMPLE, tuple(int(0.55 * c) for c in fill))] if edge else []
    for w, colour in layers + [(width, fill)]:
        draw.line([tuple(p), tuple(q)], fill=colour, width=max(int(round(w)), 1))
        r = w / 2
        for c in (p, q):
            draw.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], fill=colour)


def _ellipse_points(centre, axis_u, axis_v, ru, rv, start=0.0, stop=2 * np.pi, n=20):
    t = np.linspace(start, stop, n)
    pts = centre + np.outer(np.cos(t) * ru, axis_u) + np.outer(np.sin(t) * rv, axis_v)
    return [tuple(p) for p in pts]


def _draw_head(rng, draw, neck, top, skin, hair):
    up = top - neck
    length = np.linalg.norm(up)
    u = up / max(length, 1e-6)
    v = _perp(u)
    centre = (neck + top) / 2
    half_w = 0.4 * length * rng.uniform(0.9, 1.1)
    draw.polygon(_ellipse_points(centre, u, v, length / 2, half_w), fill=_colour(skin))
    if hair is not None:  # top cap of the ellipse
        draw.polygon(_ellipse_points(centre + 0.1 * length * u, u, v, 0.4 * length, half_w,
                                     -np.pi / 2, np.pi / 2, 12), fill=_colour(hair))
    dark = _colour(skin * 0.25)
    eye_r = max(0.07 * length, 0.8)
    for side in (-1, 1):
        e = centre + side * 0.17 * length * v
        draw.ellipse([e[0] - eye_r, e[1] - eye_r, e[0] + eye_r, e[1] + eye_r], fill=dark)
    mouth = centre - 0.25 * length * u
    draw.line([tuple(mouth - 0.12 * length * v), tuple(mouth + 0.12 * length * v)], fill=dark,
              width=max(int(round(0.06 * length)), 1))


def _draw_person(rng, draw, j, height, palette):
    """Draw the figure in supersampled coordinates ``j`` [16, 2]."""
    skin, shirt, pants, shoes, hair = (palette[k] for k in ("skin", "shirt", "pants", "shoes", "hair"))
    limb = height * rng.uniform(0.045, 0.07)
    short_sleeves, shorts = rng.random() < 0.4, rng.random() < 0.25

    for hip, knee, ankle in ((2, 1, 0), (3, 4, 5)):
        _capsule(draw, j[hip], j[knee], 1.2 * limb, _colour(pants))
        _capsule(draw, j[knee], j[ankle], 1.05 * limb, _colour(skin if shorts else pants))
        r = 0.7 * limb
        draw.ellipse([j[ankle][0] - r, j[ankle][1] - r, j[ankle][0] + r, j[ankle][1] + r], fill=_colour(shoes))

    # Torso: pants band over the hips, shirt polygon up to the shoulders.
    out_hip = (j[3] - j[2]) / max(np.linalg.norm(j[3] - j[2]), 1e-6) * 0.5 * limb
    out_sho = (j[13] - j[12]) / max(np.linalg.norm(j[13] - j[12]), 1e-6) * 0.4 * limb
    r_hip, l_hip = j[2] - out_hip, j[3] + out_hip
    r_sho, l_sho = j[12] - out_sho, j[13] + out_sho
    r_waist, l_waist = r_hip + 0.3 * (r_sho - r_hip), l_hip + 0.3 * (l_sho - l_hip)
    draw.polygon([tuple(p) for p in (r_waist, l_waist, l_hip, r_hip)], fill=_colour(pants))
    draw.polygon([tuple(p) for p in (r_sho, l_sho, l_waist, r_waist)], fill=_colour(shirt))
    _capsule(draw, j[7], j[8], 0.7 * limb, _colour(skin), edge=False)
    _draw_head(rng, draw, j[8], j[9], skin, hair)

    for shoulder, elbow, wrist in ((12, 11, 10), (13, 14, 15)):
        _capsule(draw, j[shoulder], j[elbow], limb, _colour(skin if short_sleeves and rng.random() < 0.3 else shirt))
        _capsule(draw, j[elbow], j[wrist], 0.9 * limb, _colour(skin if short_sleeves else shirt))
        r = 0.6 * limb
        draw.ellipse([j[wrist][0] - r, j[wrist][1] - r, j[wrist][0] + r, j[wrist][1] + r], fill=_colour(skin))


def _draw_distractors(rng, draw, size, height, palette):
    """Limb-, blob- and head-like clutter in the figure's colours."""
    colours = list(palette.values())
    for _ in range(rng.integers(2, 7)):
        colour = _colour(_jitter(rng, colours[rng.integers(len(colours))]) if rng.random() < 0.7
                         else rng.random(3))
        start = rng.uniform(0, size, 2)
        kind = rng.random()
        if kind < 0.5:  # one or two connected limb-like bars
            width = height * rng.uniform(0.04, 0.08)
            p = start
            for _ in range(rng.integers(1, 3)):
                q = p + _rotate(np.array([0.0, 1.0]), rng.uniform(0, 360)) * height * rng.uniform(0.12, 0.28)
                _capsule(draw, p, q, width, colour)
                p = q
        elif kind < 0.85:  # blob
            r = height * rng.uniform(0.03, 0.12, 2)
            draw.ellipse([start[0] - r[0], start[1] - r[1], start[0] + r[0], start[1] + r[1]], fill=colour)
        else:  # head-like ellipse with a face
            top = start + _rotate(np.array([0.0, -1.0]), rng.uniform(-40, 40)) * height * 0.13
            _draw_head(rng, draw, start, top, _jitter(rng, palette["skin"]), None)


def _occlude(rng, draw, joints_ss, height):
    """Draw 1-2 occluders over the figure; returns a bool mask of covered joints."""
    covered = np.zeros(len(joints_ss), dtype=bool)
    for _ in range(rng.integers(1, 3)):
        centre = joints_ss[rng.integers(len(joints_ss))] + rng.normal(0, 0.1 * height, 2)
        r = height * rng.uniform(0.07, 0.2, 2)
        box = [centre[0] - r[0], centre[1] - r[1], centre[0] + r[0], centre[1] + r[1]]
        d = np.abs(joints_ss - centre) / r
        if rng.random() < 0.5:
            draw.rectangle(box, fill=_colour(rng.random(3)))
            covered |= (d <= 1).all(axis=1)
        else:
            draw.ellipse(box, fill=_colour(rng.random(3)))
            covered |= (d**2).sum(axis=1) <= 1
    return covered


def _palette(rng) -> dict:
    return {
        "skin": _jitter(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], 0.04),
        "shirt": rng.random(3),
        "pants": rng.random(3) * rng.uniform(0.4, 1.0),
        "shoes": rng.random(3) * 0.4,
        "hair": rng.random(3) * rng.uniform(0.2, 0.8),
    }


def render_sample(rng: np.random.Generator, size: int = 64, max_rotation: float = 30.0,
                  occlusion_prob: float = 0.4):
    """One sample: (image uint8 [size, size, 3], joints [16, 2], visible [16], head_box [4])."""
    big = size * SUPERSAMPLE
    joints, height = _place(rng, sample_skeleton(rng), size, max_rotation)
    # Final pixel centre p sits at SUPERSAMPLE * p + (SUPERSAMPLE - 1) / 2 on the big canvas.
    joints_ss = SUPERSAMPLE * joints + (SUPERSAMPLE - 1) / 2
    height_ss = height * SUPERSAMPLE
    palette = _palette(rng)

    # The background is smooth, so render it at the final size and upsample.
    backdrop = Image.fromarray((background(rng, size) * 255).astype(np.uint8))
    canvas = backdrop.resize((big, big), Image.BILINEAR)
    draw = ImageDraw.Draw(canvas)
    _draw_distractors(rng, draw, big, height_ss, palette)
    _draw_person(rng, draw, joints_ss, height_ss, palette)
    occluded = (_occlude(rng, draw, joints_ss, height_ss) if rng.random() < occlusion_prob
                else np.zeros(16, dtype=bool))

    image = np.asarray(canvas.reduce(SUPERSAMPLE), dtype=np.float32)
    image += rng.uniform(2, 10) * rng.standard_normal(image.shape, dtype=np.float32)
    image = np.clip(image, 0, 255).astype(np.uint8)

    inside = ((joints >= 0) & (joints <= size - 1)).all(axis=1)
    return image, joints, inside & ~occluded, head_box(joints)


def generate(n: int, image_size: int = 64, seed: int = 0, *, max_rotation: float = 30.0,
             occlusion_prob: float = 0.4) -> dict[str, np.ndarray]:
    """Generate ``n`` samples; sample i depends only on (seed, i), not on n.

    Returns images uint8 [n, H, W, 3], joints float32 [n, 16, 2] (pixels),
    visible bool [n, 16], head_boxes float32 [n, 4] (x1, y1, x2, y2).
    """
    out = {
        "images": np.empty((n, image_size, image_size, 3), np.uint8),
        "joints": np.empty((n, 16, 2), np.float32),
        "visible": np.empty((n, 16), bool),
        "head_boxes": np.empty((n, 4), np.float32),
    }
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        sample = render_sample(rng, image_size, max_rotation, occlusion_prob)
        for key, value in zip(("images", "joints", "visible", "head_boxes"), sample):
            out[key][i] = value
    return out


def cache_path(n: int, image_size: int, seed: int, cache_dir) -> Path:
    return Path(cache_dir) / f"synthetic_v{GENERATOR_VERSION}_n{n}_s{image_size}_seed{seed}.npz"


def load_or_generate(n: int, image_size: int = 64, seed: int = 0, cache_dir=None) -> dict[str, np.ndarray]:
    """``generate`` with an .npz cache keyed by (n, image_size, seed, GENERATOR_VERSION)."""
    path = cache_path(n, image_size, seed, cache_dir or DEFAULT_CACHE_DIR)
    return cached_npz(path, lambda: generate(n, image_size, seed))


def cached_npz(path: Path, make) -> dict[str, np.ndarray]:
    """The arrays saved at ``path``, or ``make()``'s, saved there first (atomically)."""
    if path.exists():
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    data = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Temp file + atomic rename so concurrent runs never read a half-written cache.
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return data
