"""Training augmentations that respect the keypoint schema.

Geometry (horizontal flip, rotation, scale, translation) is one affine warp applied to image and points
together; a horizontal flip also swaps the side-1/side-2 labels (``FLIP_PERMUTATION``), since "side 1"
is defined so that mirroring the image makes it side 2. Side 1 of a pair is its end with the smaller
image x (the rule the simulator labels with), so after a rotation a pair whose ends changed x order is
relabelled. Points that leave the image become not visible.
Photometry (brightness/contrast, gamma, blur, dose-dependent quantum noise) acts on a [0, 1] image.
All randomness comes from the ``numpy.random.Generator`` passed in, so a seed reproduces a run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from tavi_perception.keypoints import FLIP_PAIRS, FLIP_PERMUTATION

_PERM = np.array(FLIP_PERMUTATION)


@dataclass(frozen=True)
class AugmentConfig:
    flip_p: float = 0.5  # probability of a horizontal flip
    rotate_deg: float = 20.0  # rotation uniform in +-rotate_deg (C-arm/display roll, patient tilt)
    scale: tuple[float, float] = (0.8, 1.25)  # zoom, log-uniform (magnification, detector field)
    translate: float = 0.08  # shift uniform in +-translate of the image size, per axis
    brightness: float = 0.1  # offset uniform in +-brightness (image in 0..1)
    contrast: tuple[float, float] = (0.75, 1.3)  # gain about the image mean
    gamma: tuple[float, float] = (0.7, 1.4)
    blur_p: float = 0.3  # probability of a Gaussian blur
    blur_sigma_px: tuple[float, float] = (0.3, 1.2)
    noise_max: float = 0.04  # quantum noise: std = U(0, noise_max) * sqrt(intensity)


IDENTITY = AugmentConfig(
    flip_p=0.0,
    rotate_deg=0.0,
    scale=(1.0, 1.0),
    translate=0.0,
    brightness=0.0,
    contrast=(1.0, 1.0),
    gamma=(1.0, 1.0),
    blur_p=0.0,
    noise_max=0.0,
)


def to_unit_range(image: np.ndarray) -> np.ndarray:
    """float32 image in 0..1: integer images by their dtype's full scale, float images by min-max."""
    if np.issubdtype(image.dtype, np.integer):
        return image.astype(np.float32) / float(np.iinfo(image.dtype).max)
    img = image.astype(np.float32)
    lo, hi = float(img.min()), float(img.max())
    return (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)


def _cv_matrix(m: np.ndarray) -> np.ndarray:
    """A 3x3 affine in corner-origin pixel coordinates as OpenCV's (pixel-centre-origin) 2x3 matrix."""
    shift = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    unshift = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])
    return (unshift @ m @ shift)[:2]


def random_affine(rng: np.random.Generator, size: int, cfg: AugmentConfig) -> tuple[np.ndarray, bool]:
    """(3x3 affine in corner-origin pixels, flipped) for a square image of ``size`` pixels."""
    flip = bool(rng.random() < cfg.flip_p)
    angle = math.radians(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg))
    scale = math.exp(rng.uniform(math.log(cfg.scale[0]), math.log(cfg.scale[1])))
    tx, ty = rng.uniform(-cfg.translate, cfg.translate, size=2) * size
    c = size / 2.0
    cos, sin = scale * math.cos(angle), scale * math.sin(angle)
    geo = np.array(
        [[cos, -sin, c + tx - cos * c + sin * c], [sin, cos, c + ty - sin * c - cos * c], [0, 0, 1]]
    )
    mirror = np.array([[-1.0, 0.0, size], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) if flip else np.eye(3)
    return geo @ mirror, flip


def warp(
    image: np.ndarray, xy_px: np.ndarray, visible: np.ndarray, m: np.ndarray, flipped: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply affine ``m`` to a square image and its keypoints; swap side labels when ``flipped``."""
    size = image.shape[0]
    out = cv2.warpAffine(
        image, _cv_matrix(m), (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    xy = xy_px @ m[:2, :2].T + m[:2, 2]
    vis = visible.copy()
    if flipped:
        xy, vis = xy[_PERM], vis[_PERM]
    for a, b in FLIP_PAIRS:
        if vis[a] and vis[b] and xy[a, 0] > xy[b, 0]:
            xy[[a, b]] = xy[[b, a]]
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < size) & (xy[:, 1] >= 0) & (xy[:, 1] < size)
    vis &= inside
    xy[~vis] = 0.0
    return out, xy, vis


def photometric(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Brightness/contrast, gamma, blur and dose noise on a [0, 1] float32 image."""
    img = image
    mean = float(img.mean())
    img = (img - mean) * rng.uniform(*cfg.contrast) + mean + rng.uniform(-cfg.brightness, cfg.brightness)
    img = np.clip(img, 0.0, 1.0) ** rng.uniform(*cfg.gamma)
    if rng.random() < cfg.blur_p:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(*cfg.blur_sigma_px))
    noise = rng.uniform(0.0, cfg.noise_max)
    if noise > 0:
        img = img + noise * np.sqrt(img + 0.01) * rng.standard_normal(img.shape, dtype=np.float32)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def augment(
    image: np.ndarray, xy_px: np.ndarray, visible: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random geometric then photometric augmentation of a square [0, 1] image and its keypoints."""
    if image.ndim != 2 or image.shape[0] != image.shape[1]:
        raise ValueError(f"augment expects a square 2-D image, got {image.shape}")
    m, flipped = random_affine(rng, image.shape[0], cfg)
    img, xy, vis = warp(
        image, np.asarray(xy_px, dtype=np.float64), np.asarray(visible, dtype=bool), m, flipped
    )
    return photometric(img, rng, cfg), xy, vis
