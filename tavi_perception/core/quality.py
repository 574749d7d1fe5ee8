"""Is this frame fluoroscopy of a scene at all? Cheap statistics on a downsampled frame (no ROS).

A keypoint network answers every input with *some* keypoints; fed a black frame (X-ray off), a
saturated one, a uniform grey test frame or random noise (a disconnected grabber), it may place them
confidently. :func:`non_scene_reason` names what is wrong with such a frame before it reaches the
network, so that it is answered invalid and does not update the tracks.

The rules, in order, on a frame shrunk by block averaging to about ``work_side_px`` per side (the
percentiles and the clipped fraction on a strided subsample of about twice that side, exact values):

1. black: the 99th percentile is below ``black_level`` of the signal's full scale (uint8 255, float
   1.0; uint16 4095, as detectors deliver 12 bits or more: a 10- or 12-bit image in a 16-bit container
   is not dark, while an X-ray-off frame's dark offset that passes this rule fails the next ones);
2. uniform: the 1st-99th percentile spread is below ``min_spread`` of the 99th percentile;
3. saturated: more than ``max_clipped_fraction`` of the pixels sit at the frame's maximum value;
4. noise: the correlation of horizontally and vertically neighbouring pixels of the shrunk frame is
   below ``min_neighbour_correlation``. Fluoroscopy is smooth at that scale (anatomy, devices,
   collimation; block averaging removes its quantum noise), random noise is not correlated at all.

The thresholds were set on simulator frames (mono8 and mono16, every phase, with and without contrast:
none rejected) and synthetic bad frames; ``bench/bench_quality.py`` measures both rates.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class QualityParams:
    """Thresholds of the non-scene rules (module docstring)."""

    work_side_px: int = 64  # [px] side of the block-averaged frame the structure is measured on
    black_level: float = 0.02  # [1] of full scale: a frame whose 99th percentile is below is black
    min_spread: float = 0.05  # [1] (p99 - p1) / p99 below this: uniform
    max_clipped_fraction: float = 0.3  # [1] more pixels than this at the frame maximum: saturated
    min_neighbour_correlation: float = 0.5  # [1] below this the frame has no spatial structure: noise

    def __post_init__(self) -> None:
        if self.work_side_px < 8:
            raise ValueError(f"work_side_px must be at least 8, got {self.work_side_px}")
        for name in ("black_level", "min_spread", "max_clipped_fraction", "min_neighbour_correlation"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {value}")


def full_scale(dtype: np.dtype) -> float:
    """The nominal maximum of a grey image of ``dtype``: the integer maximum, 1.0 for floats."""
    return float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0


def signal_full_scale(dtype: np.dtype) -> float:
    """The full scale the black rule measures against: 12 bits for 16-bit data, else :func:`full_scale`."""
    return 4095.0 if np.dtype(dtype) == np.uint16 else full_scale(dtype)


def _block_mean(image: np.ndarray, side_px: int) -> np.ndarray:
    """``image`` (H, W) area-averaged so that the longer side is about ``side_px`` (float32)."""
    block = max(1, max(image.shape) // side_px)
    size = (max(1, image.shape[1] // block), max(1, image.shape[0] // block))
    source = image if image.dtype in (np.uint8, np.uint16, np.float32) else image.astype(np.float32)
    return cv2.resize(source, size, interpolation=cv2.INTER_AREA).astype(np.float32)


def neighbour_correlation(image: np.ndarray) -> float:
    """Mean correlation coefficient of horizontally and vertically adjacent pixels (0 for a flat frame)."""
    centred = image - image.mean()
    variance = float(np.mean(centred**2))
    if variance <= 0.0:
        return 0.0
    horizontal = float(np.mean(centred[:, 1:] * centred[:, :-1]))
    vertical = float(np.mean(centred[1:, :] * centred[:-1, :]))
    return 0.5 * (horizontal + vertical) / variance


@dataclass(frozen=True)
class FrameStatistics:
    """What the non-scene rules look at (module docstring)."""

    level: float  # [1] 99th percentile, fraction of the signal's full scale
    spread: float  # [1] (p99 - p1) / p99 (0 for a black frame)
    clipped_fraction: float  # [1] pixels at the frame's maximum value
    neighbour_correlation: float  # [1] of the block-averaged frame


def frame_statistics(image: np.ndarray, params: QualityParams | None = None) -> FrameStatistics:
    """The statistics of an (H, W) grey frame (at least 2 x 2)."""
    p = params or QualityParams()
    stride = max(1, max(image.shape) // (2 * p.work_side_px))
    sample = image[::stride, ::stride]
    low, high = (float(v) for v in np.percentile(sample, (1.0, 99.0)))
    return FrameStatistics(
        level=high / signal_full_scale(image.dtype),
        spread=(high - low) / high if high > 0 else 0.0,
        clipped_fraction=float(np.mean(sample == sample.max())),
        neighbour_correlation=neighbour_correlation(_block_mean(image, p.work_side_px)),
    )


def non_scene_reason(image: np.ndarray, params: QualityParams | None = None) -> str | None:
    """Why the (H, W) grey ``image`` is not fluoroscopy of a scene, or None when it may be."""
    p = params or QualityParams()
    if image.ndim != 2 or min(image.shape) < 2:
        return f"not a grey frame (shape {image.shape})"
    s = frame_statistics(image, p)
    if s.level < p.black_level:
        return f"non-scene frame: black (99th percentile {s.level:.3f} of full scale; X-ray off?)"
    if s.spread < p.min_spread:
        return f"non-scene frame: uniform (1st-99th percentile spread {s.spread:.3f} of the level)"
    if s.clipped_fraction > p.max_clipped_fraction:
        return f"non-scene frame: saturated ({s.clipped_fraction:.0%} of the pixels at the maximum)"
    if s.neighbour_correlation < p.min_neighbour_correlation:
        correlation = s.neighbour_correlation
        return f"non-scene frame: no spatial structure (neighbour correlation {correlation:.2f}; noise?)"
    return None
