"""Pre- and post-processing shared by every engine and by training, so that all see the same input.

Pre-processing: any 2-D image (uint8 mono8, uint16 mono16, float) -> float32, area-resized to the square
network input, then standardised per image (zero mean, unit standard deviation). Standardising makes the
network indifferent to bit depth (mono8 vs mono16 of the same frame give the same input) and to the
global window/level of the fluoroscope.

Post-processing: the deploy graph emits coordinates normalised to the input's width and height (corner
origin), so mapping back to the source image is a per-axis scale by the source width and height.
"""

from __future__ import annotations

import cv2
import numpy as np

MIN_STD = 1e-6  # a flat image keeps its zeros instead of dividing by zero


def as_gray_float(image: np.ndarray) -> np.ndarray:
    """A 2-D float32 copy of ``image``; raises ``ValueError`` on anything that is not one grey channel."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim != 2:
        raise ValueError(f"expected a single-channel (H, W) image, got shape {arr.shape}")
    if arr.shape[0] < 8 or arr.shape[1] < 8:
        raise ValueError(f"image too small: {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"unsupported image dtype {arr.dtype}")
    return arr.astype(np.float32, copy=True)


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a float32 image to ``size`` x ``size``: area averaging when shrinking, bilinear otherwise."""
    h, w = image.shape
    if (h, w) == (size, size):
        return image
    interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def standardize(image: np.ndarray) -> np.ndarray:
    """Zero mean, unit standard deviation (float32)."""
    mean = float(image.mean())
    std = float(image.std())
    return ((image - mean) / max(std, MIN_STD)).astype(np.float32, copy=False)


def preprocess(image: np.ndarray, input_size: int) -> np.ndarray:
    """Network input ``(1, 1, S, S)`` float32 for one frame of any size and grey dtype."""
    x = standardize(resize_square(as_gray_float(image), input_size))
    return x[None, None]


def to_image_pixels(xy_norm: np.ndarray, image_shape: tuple[int, ...]) -> np.ndarray:
    """Normalised (x, y) (0..1 of width/height, corner origin) -> float64 pixels of an (H, W) image."""
    h, w = image_shape[:2]
    return np.asarray(xy_norm, dtype=np.float64) * np.array([w, h], dtype=np.float64)
