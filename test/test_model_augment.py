"""Augmentations: the flip swaps side labels, points follow the image, determinism by seed."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from tavi_perception.keypoints import FLIP_PAIRS, NUM_KEYPOINTS, Kp
from tavi_perception.model.augment import IDENTITY, AugmentConfig, augment, random_affine

SIZE = 64


def _points() -> tuple[np.ndarray, np.ndarray]:
    """Random points labelled by the schema's rule: side 1 of a pair has the smaller image x."""
    rng = np.random.default_rng(1)
    xy = rng.uniform(8, SIZE - 8, size=(NUM_KEYPOINTS, 2))
    for a, b in FLIP_PAIRS:
        if xy[a, 0] > xy[b, 0]:
            xy[[a, b]] = xy[[b, a]]
    return xy, np.ones(NUM_KEYPOINTS, dtype=bool)


def test_horizontal_flip_mirrors_image_and_swaps_side_labels():
    image = np.random.default_rng(0).random((SIZE, SIZE), dtype=np.float32)
    xy, vis = _points()
    vis[Kp.STJ2] = False
    out, xy2, vis2 = augment(image, xy, vis, np.random.default_rng(0), replace(IDENTITY, flip_p=1.0))
    np.testing.assert_allclose(out, image[:, ::-1], atol=1e-6)
    for a, b in FLIP_PAIRS:
        for new, old in ((a, b), (b, a)):
            if vis[old]:
                np.testing.assert_allclose(xy2[new], [SIZE - xy[old, 0], xy[old, 1]])
    np.testing.assert_allclose(xy2[Kp.CT], [SIZE - xy[Kp.CT, 0], xy[Kp.CT, 1]])  # unpaired: same label
    assert not vis2[Kp.STJ1] and vis2[Kp.STJ2]  # visibility travels with the label


def test_points_follow_the_image_under_rotation_scale_and_shift():
    cfg = replace(IDENTITY, rotate_deg=30.0, scale=(0.8, 1.25), translate=0.1, flip_p=0.5)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    for seed in range(5):
        xy = np.zeros((NUM_KEYPOINTS, 2))
        vis = np.zeros(NUM_KEYPOINTS, dtype=bool)
        xy[Kp.CT], vis[Kp.CT] = (40.3, 22.7), True
        image = np.exp(-((xx - 40.3) ** 2 + (yy - 22.7) ** 2) / (2 * 2.0**2)).astype(np.float32)
        out, xy2, vis2 = augment(image, xy, vis, np.random.default_rng(seed), cfg)
        w = out / out.sum()
        centroid = np.array([(w * xx).sum(), (w * yy).sum()])
        assert vis2[Kp.CT]
        np.testing.assert_allclose(centroid, xy2[Kp.CT], atol=0.15)


def test_points_pushed_out_of_the_image_become_not_visible():
    xy, vis = _points()
    xy[Kp.CP] = (SIZE - 2.0, 30.0)
    xy[Kp.PT] = (2.0, 30.0)
    cfg = replace(IDENTITY, translate=0.5)
    rng = np.random.default_rng(0)
    for _ in range(20):
        _, xy2, vis2 = augment(np.zeros((SIZE, SIZE), np.float32), xy, vis, rng, cfg)
        inside = (xy2 >= 0).all(axis=1) & (xy2 < SIZE).all(axis=1)
        assert np.array_equal(vis2, vis2 & inside)
        assert (xy2[~vis2] == 0).all()
    assert not (vis2[Kp.CP] and vis2[Kp.PT])  # a 0.5-size shift cannot keep both border points


def test_same_seed_gives_the_same_augmentation():
    image = np.random.default_rng(0).random((SIZE, SIZE), dtype=np.float32)
    xy, vis = _points()
    a = augment(image, xy, vis, np.random.default_rng(7), AugmentConfig())
    b = augment(image, xy, vis, np.random.default_rng(7), AugmentConfig())
    c = augment(image, xy, vis, np.random.default_rng(8), AugmentConfig())
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])


def test_photometric_augmentation_keeps_unit_range():
    image = np.random.default_rng(0).random((SIZE, SIZE), dtype=np.float32)
    xy, vis = _points()
    cfg = replace(AugmentConfig(), noise_max=0.3, brightness=0.5)
    out, _, _ = augment(image, xy, vis, np.random.default_rng(3), cfg)
    assert out.dtype == np.float32 and out.min() >= 0.0 and out.max() <= 1.0
    assert not np.allclose(out, image)


def test_a_rotation_that_reverses_a_pair_keeps_side_1_on_the_image_left():
    xy = np.zeros((NUM_KEYPOINTS, 2))
    vis = np.zeros(NUM_KEYPOINTS, dtype=bool)
    xy[Kp.FE1], xy[Kp.FE2] = (31.0, 20.0), (33.0, 44.0)  # nearly vertical pair, FE1 slightly left
    vis[[Kp.FE1, Kp.FE2]] = True
    cfg = replace(IDENTITY, rotate_deg=30.0)
    swapped = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        _, xy2, vis2 = augment(np.zeros((SIZE, SIZE), np.float32), xy, vis, rng, cfg)
        assert vis2[Kp.FE1] and vis2[Kp.FE2] and xy2[Kp.FE1, 0] <= xy2[Kp.FE2, 0]
        swapped += int(abs(xy2[Kp.FE1, 1] - 44.0) < abs(xy2[Kp.FE1, 1] - 20.0))
    assert 0 < swapped < 10  # some rotations reversed the pair and were relabelled, others not


def test_default_geometry_spans_20_degrees_and_scales_0_8_to_1_25():
    cfg = AugmentConfig()
    assert cfg.rotate_deg == 20.0 and cfg.scale == (0.8, 1.25)
    rng = np.random.default_rng(11)
    angles, scales, flips = [], [], 0
    for _ in range(600):
        m, flipped = random_affine(rng, SIZE, cfg)
        lin = m[:2, :2] @ (np.diag([-1.0, 1.0]) if flipped else np.eye(2))  # undo the mirror
        scales.append(math.sqrt(abs(np.linalg.det(lin))))
        angles.append(math.degrees(math.atan2(lin[1, 0], lin[0, 0])))
        assert (np.linalg.det(m[:2, :2]) < 0) == flipped
        flips += flipped
    angles, scales = np.array(angles), np.array(scales)
    assert np.abs(angles).max() <= 20.0 + 1e-9 and np.abs(angles).max() > 19.0  # beyond the old 15°
    assert (np.abs(angles) > 15.0).mean() > 0.15  # uniform in ±20°: a quarter beyond ±15°
    assert scales.min() >= 0.8 - 1e-9 and scales.max() <= 1.25 + 1e-9
    assert scales.min() < 0.82 and scales.max() > 1.22  # beyond the old 0.85-1.2
    assert 200 < flips < 400


def test_default_augmentation_keeps_side_1_on_the_image_left_for_every_pair():
    """With the default ±20° and flips, every visible pair ends with side 1 at the smaller x, and the
    relabelling keeps each physical point: the two ends are the original ones, moved by the affine."""
    cfg = replace(AugmentConfig(), translate=0.0)
    relabelled = 0
    points = np.random.default_rng(99)
    for seed in range(60):
        xy = np.zeros((NUM_KEYPOINTS, 2))
        vis = np.zeros(NUM_KEYPOINTS, dtype=bool)
        for a, b in FLIP_PAIRS:  # nearly vertical pairs (5° off vertical), side 1 slightly left
            top = points.uniform(20, 30, size=2)
            xy[a], xy[b] = top, top + np.array([12 * math.tan(math.radians(5.0)), 12.0])
            vis[[a, b]] = True
        m, flipped = random_affine(np.random.default_rng(seed), SIZE, cfg)
        _, xy2, vis2 = augment(np.zeros((SIZE, SIZE), np.float32), xy, vis, np.random.default_rng(seed), cfg)
        moved = xy @ m[:2, :2].T + m[:2, 2]
        for a, b in FLIP_PAIRS:
            assert vis2[a] and vis2[b] and xy2[a, 0] <= xy2[b, 0]
            # the same two physical ends, in some order
            same = np.allclose(xy2[[a, b]], moved[[a, b]]) or np.allclose(xy2[[a, b]], moved[[b, a]])
            assert same
            relabelled += not np.allclose(xy2[a], moved[b] if flipped else moved[a])
    assert relabelled > 0  # some default rotations reversed a pair and it was relabelled
