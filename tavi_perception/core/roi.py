"""The fluoroscopy area of a frame: a fixed region of interest or one found in a screen capture (no ROS).

A frame grabber on a C-arm's video output sends the whole screen: the fluoroscopy image (a bright
rectangle or circle) on a black background with text and icons around it. :class:`RegionOfInterest`
crops each frame to that area before admission and detection; the caller adds ``origin_px`` back so
that everything published stays in the input image's pixels. The calibration (mm per pixel) refers to
the cropped image.

``auto``: the area is found in the first frame where it can be (:func:`find_fluoroscopy_area`) and
kept from then on, so the crop, and with it the keypoints, do not move from frame to frame; a new
sequence does not change it (the screen layout does not change with the stamps).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from tavi_perception.core.quality import full_scale


@dataclass(frozen=True)
class Box:
    """A pixel rectangle: top-left corner and size [px]."""

    x_px: int
    y_px: int
    width_px: int
    height_px: int


def find_fluoroscopy_area(
    image: np.ndarray, dark_level: float = 0.04, min_area_fraction: float = 0.1, work_side_px: int = 256
) -> Box | None:
    """The bounding box of the largest non-black region of ``image`` (H, W), or None.

    Pixels above ``dark_level`` of full scale (after a 5 x 5 median on a copy shrunk to about
    ``work_side_px``, which removes thin text and thin lines) form regions; the largest one must cover
    ``min_area_fraction`` of the frame.
    """
    scale = max(1, max(image.shape) // work_side_px)
    small = image[::scale, ::scale]
    if small.dtype != np.uint8:
        small = np.clip(small.astype(np.float32) * (255.0 / full_scale(image.dtype)), 0, 255).astype(np.uint8)
    mask = (cv2.medianBlur(np.ascontiguousarray(small), 5) > dark_level * 255.0).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count < 2:
        return None
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h, area = (int(v) for v in stats[largest])
    if area < min_area_fraction * mask.size:
        return None
    x0, y0 = x * scale, y * scale
    x1, y1 = min(image.shape[1], (x + w) * scale), min(image.shape[0], (y + h) * scale)
    return Box(x0, y0, x1 - x0, y1 - y0)


class RegionOfInterest:
    """Crops frames to a fixed box, to the area found automatically, or not at all (module docstring)."""

    def __init__(self, box: Box | None = None, auto: bool = False) -> None:
        if box is not None and (box.width_px < 0 or box.height_px < 0 or box.x_px < 0 or box.y_px < 0):
            raise ValueError(f"region of interest must have non-negative corner and size, got {box}")
        if box is not None and box.width_px == 0 and box.height_px == 0 and box.x_px == 0 and box.y_px == 0:
            box = None  # all zero: the whole image
        self.box = box
        self.auto = auto and box is None

    def crop(self, image: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        """The fluoroscopy part of ``image`` (a view) and its origin ``(x_px, y_px)`` in ``image``.

        Raises ``ValueError`` when a fixed box does not fit the image.
        """
        if self.auto:
            self.box = find_fluoroscopy_area(image)
            self.auto = self.box is None  # keep looking until a frame shows the area
        box = self.box
        if box is None:
            return image, (0, 0)
        width = box.width_px or image.shape[1] - box.x_px
        height = box.height_px or image.shape[0] - box.y_px
        if (
            width <= 0
            or height <= 0
            or box.x_px + width > image.shape[1]
            or box.y_px + height > image.shape[0]
        ):
            raise ValueError(
                f"region of interest x {box.x_px} y {box.y_px} width {width} height {height} does not fit "
                f"the {image.shape[1]}x{image.shape[0]} image"
            )
        return image[box.y_px : box.y_px + height, box.x_px : box.x_px + width], (box.x_px, box.y_px)
