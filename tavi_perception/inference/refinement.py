"""A second, finer look at part of the frame: a fixed-size crop, read again by a second model.

The full-frame model sees the frame through a 288 px input (a 512 px frame at 0.56 input px per image
px). At that scale it cannot tell how far the inflow ring's ellipse is open in an oblique view and reads
the frame edges deep, and it places the annulus landmarks that the plan is registered on less well than
the loop's depth needs (docs/plan.md). A crop around the first reading, at full resolution and enlarged
to the refinement model's input, shows these structures about 2 input px per image px. Two targets
(:class:`CropTarget`): ``valve``, FE1/FE2 in 44 mm around their midpoint, and ``root``, AA1, AA2, STJ1
and STJ2 in 56 mm around their mean. The crop's size is in millimetres, so every crop has the same scale
whatever the detector's pixel size.

:func:`crop_window` and :func:`crop` are the geometry (used by the training set and by inference alike);
:func:`refine` runs a refinement engine on the crop and maps its points back to the frame;
:class:`Refinement` is a model with its target, as the pipeline runs it; :func:`create_refinements`
loads the ones whose model is given.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np

from tavi_perception.inference.engines import Detections, InferenceEngine, create_engine
from tavi_perception.keypoints import Kp


@dataclasses.dataclass(frozen=True)
class CropTarget:
    """What a second look reads again: its points, and the crop around their mean."""

    name: str
    points: tuple[Kp, ...]  # the points the refinement replaces; the crop is centred on their mean
    crop_mm: float  # [mm] side of the crop


# a 29 mm inflow ring and the first stage's error around it
VALVE = CropTarget("valve", (Kp.FE1, Kp.FE2), 44.0)
# the hinge points and the STJ lie up to 22 mm from their mean along an image axis
ROOT = CropTarget("root", (Kp.AA1, Kp.AA2, Kp.STJ1, Kp.STJ2), 56.0)
TARGETS = {t.name: t for t in (VALVE, ROOT)}
CROP_MM = VALVE.crop_mm
# [mm] a second reading this far from the first is taken for another structure: the two stages disagree,
# so the point is dropped (not seen) rather than either reading trusted
MAX_SHIFT_MM = 3.0


@dataclasses.dataclass(frozen=True)
class CropWindow:
    """A square window of the frame: top-left corner and side [px]; may extend past the frame."""

    x0_px: int
    y0_px: int
    size_px: int

    def _origin(self) -> np.ndarray:
        return np.array([self.x0_px, self.y0_px], dtype=np.float64)

    def to_crop(self, xy_px: np.ndarray) -> np.ndarray:
        """Frame pixels -> crop pixels."""
        return np.asarray(xy_px, dtype=np.float64) - self._origin()

    def to_frame(self, xy_px: np.ndarray) -> np.ndarray:
        """Crop pixels -> frame pixels."""
        return np.asarray(xy_px, dtype=np.float64) + self._origin()

    def contains(self, xy_crop_px: np.ndarray) -> np.ndarray:
        """Whether crop-pixel points lie inside the window."""
        xy = np.asarray(xy_crop_px, dtype=np.float64)
        return np.all((xy >= 0.0) & (xy < self.size_px), axis=-1)


def crop_window(centre_px: np.ndarray, mm_per_px: float, crop_mm: float = CROP_MM) -> CropWindow:
    """The window of ``crop_mm`` [mm] centred (to the nearest pixel) on ``centre_px``."""
    if not (np.isfinite(mm_per_px) and mm_per_px > 0.0):
        raise ValueError(f"mm_per_px must be positive, got {mm_per_px}")
    size = max(8, round(crop_mm / mm_per_px))
    cx, cy = (float(v) for v in centre_px)
    if not (np.isfinite(cx) and np.isfinite(cy)):
        raise ValueError(f"crop centre must be finite, got {centre_px}")
    return CropWindow(round(cx - 0.5 * size), round(cy - 0.5 * size), size)


def crop(image: np.ndarray, window: CropWindow) -> np.ndarray:
    """The window's pixels; parts past the frame's border repeat the border (as a collimator edge would
    look, without a step the network could read as an edge)."""
    h, w = image.shape[:2]
    x0, y0 = max(0, window.x0_px), max(0, window.y0_px)
    x1, y1 = min(w, window.x0_px + window.size_px), min(h, window.y0_px + window.size_px)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"crop window {window} lies outside the {w}x{h} frame")
    pads = (
        y0 - window.y0_px,
        window.y0_px + window.size_px - y1,
        x0 - window.x0_px,
        window.x0_px + window.size_px - x1,
    )
    return cv2.copyMakeBorder(image[y0:y1, x0:x1], *pads, cv2.BORDER_REPLICATE)


def refine(
    engine: InferenceEngine,
    image: np.ndarray,
    detections: Detections,
    mm_per_px: float,
    max_shift_mm: float = MAX_SHIFT_MM,
    target: CropTarget = VALVE,
) -> Detections:
    """``detections`` with ``target``'s points read again by ``engine`` on the crop around their mean.

    Unchanged when the first stage does not see all of them. A refined point keeps the lower of the
    two stages' visibilities; it is not seen (visibility 0) where the refinement places it outside the
    crop or more than ``max_shift_mm`` from the first reading.
    """
    vis = detections.visibility
    points = list(target.points)
    if not (vis[points] > 0.5).all():
        return detections
    window = crop_window(detections.xy_px[points].mean(axis=0), mm_per_px, target.crop_mm)
    second = engine.infer(crop(image, window))
    xy, visibility = detections.xy_px.copy(), vis.copy()
    inside = window.contains(second.xy_px)
    for k in points:
        xy[k] = window.to_frame(second.xy_px[k])
        shift_mm = float(np.hypot(*(xy[k] - detections.xy_px[k]))) * mm_per_px
        agree = bool(inside[k]) and shift_mm <= max_shift_mm
        visibility[k] = min(vis[k], second.visibility[k]) if agree else 0.0
    return dataclasses.replace(detections, xy_px=xy, visibility=visibility)


@dataclasses.dataclass(frozen=True)
class Refinement:
    """A refinement model and the target it reads again."""

    target: CropTarget
    engine: InferenceEngine

    def __call__(self, image: np.ndarray, detections: Detections, mm_per_px: float) -> Detections:
        return refine(self.engine, image, detections, mm_per_px, target=self.target)


def create_refinements(
    valve_model: Path | None, root_model: Path | None, **engine_options
) -> list[Refinement]:
    """The refinements whose model is given, the valve's first (the order the pipeline runs them);
    ``engine_options`` go to :func:`~tavi_perception.inference.engines.create_engine`."""
    return [
        Refinement(target, create_engine(path, **engine_options))
        for target, path in ((VALVE, valve_model), (ROOT, root_model))
        if path is not None
    ]
