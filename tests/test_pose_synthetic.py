import numpy as np
import pytest

from repro.tasks.pose.synthetic import cache_path, generate, load_or_generate

SIZE = 64


@pytest.fixture(scope="module")
def data():
    return generate(40, SIZE, seed=0)


def test_shapes_and_dtypes(data):
    assert data["images"].shape == (40, SIZE, SIZE, 3) and data["images"].dtype == np.uint8
    assert data["joints"].shape == (40, 16, 2) and data["joints"].dtype == np.float32
    assert data["visible"].shape == (40, 16) and data["visible"].dtype == bool
    assert data["head_boxes"].shape == (40, 4) and data["head_boxes"].dtype == np.float32


def test_deterministic_by_seed(data):
    again = generate(40, SIZE, seed=0)
    for key in data:
        assert np.array_equal(data[key], again[key]), key
    other = generate(40, SIZE, seed=1)
    assert not np.array_equal(data["images"], other["images"])
    assert not np.array_equal(data["joints"], other["joints"])
    # Sample i depends on (seed, i) only, so a shorter run is a prefix.
    prefix = generate(5, SIZE, seed=0)
    assert np.array_equal(prefix["images"], data["images"][:5])


def test_visible_joints_inside_image(data):
    vis = data["visible"]
    xy = data["joints"][vis]
    assert ((xy >= 0) & (xy <= SIZE - 1)).all()
    assert 0.6 < vis.mean() < 0.99  # some occluded / truncated, most visible


def test_head_box_contains_head_top_and_upper_neck(data):
    boxes = data["head_boxes"]
    assert (boxes[:, 2:] > boxes[:, :2]).all()
    for joint in (8, 9):
        xy = data["joints"][:, joint]
        assert ((xy >= boxes[:, :2]) & (xy <= boxes[:, 2:])).all()


def test_right_side_on_image_left_when_upright():
    upright = generate(40, SIZE, seed=3, max_rotation=0.0)
    joints = upright["joints"]
    for right, left in ((12, 13), (2, 3)):  # shoulders, hips
        assert (joints[:, right, 0] < joints[:, left, 0]).mean() > 0.95
    # Upright: head above pelvis above the ankles' mean.
    assert (joints[:, 9, 1] < joints[:, 6, 1]).all()
    assert (joints[:, 6, 1] < joints[:, [0, 5], 1].mean(axis=1)).all()
    # The person spans a good part of the image height.
    span = joints[..., 1].max(axis=1) - joints[..., 1].min(axis=1)
    assert 0.4 * SIZE < np.median(span) < 0.95 * SIZE


def test_images_are_not_flat(data):
    # Textured backgrounds: plenty of distinct colours and spatial variation.
    img = data["images"].astype(np.float32)
    assert img.std(axis=(1, 2)).mean() > 10
    assert np.abs(np.diff(img, axis=2)).mean() > 2


def test_load_or_generate_caches(tmp_path):
    first = load_or_generate(6, 32, seed=5, cache_dir=tmp_path)
    path = cache_path(6, 32, 5, tmp_path)
    assert path.exists()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp files left
    second = load_or_generate(6, 32, seed=5, cache_dir=tmp_path)
    for key in first:
        assert np.array_equal(first[key], second[key])
    assert not cache_path(6, 32, 6, tmp_path).exists()
