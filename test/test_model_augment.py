"""Augmentations: the flip swaps side labels, points follow the image, determinism by seed."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tavi_perception.keypoints import FLIP_PAIRS, NUM_KEYPOINTS, Kp
from tavi_perception.model.augment import IDENTITY, AugmentConfig, augment

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
