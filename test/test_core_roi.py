"""Region of interest: fixed crops and the fluoroscopy area found in a screen capture (no ROS)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tavi_perception.core.roi import Box, RegionOfInterest, find_fluoroscopy_area


def _screen(dtype: type = np.uint8) -> np.ndarray:
    """A 600x800 screen capture: a bright disc-shaped image at x 200..583, y 100..483, text around it."""
    full = np.iinfo(dtype).max
    screen = np.zeros((600, 800), dtype)
    y, x = np.mgrid[0:384, 0:384]
    inside = (x - 191.5) ** 2 + (y - 191.5) ** 2 <= 192**2
    screen[100:484, 200:584] = np.where(inside, (0.3 + 0.5 * x / 384) * full, 0).astype(dtype)
    text = np.zeros((600, 800), np.uint8)
    cv2.putText(text, "LAO 30 CRA 10  12.5 fps", (10, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 255, 2)
    screen[text > 0] = full
    return screen


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_the_bright_fluoroscopy_area_of_a_screen_capture_is_found(dtype: type) -> None:
    box = find_fluoroscopy_area(_screen(dtype))
    assert box is not None
    assert abs(box.x_px - 200) <= 6 and abs(box.y_px - 100) <= 6
    assert abs(box.width_px - 384) <= 8 and abs(box.height_px - 384) <= 8


def test_a_black_frame_has_no_fluoroscopy_area() -> None:
    assert find_fluoroscopy_area(np.zeros((100, 100), np.uint8)) is None


def test_a_fixed_box_crops_and_gives_its_origin() -> None:
    image = np.arange(100 * 120, dtype=np.uint16).reshape(100, 120)
    crop, origin = RegionOfInterest(Box(10, 20, 30, 40)).crop(image)
    assert origin == (10, 20) and crop.shape == (40, 30) and crop[0, 0] == image[20, 10]
    to_edge, _ = RegionOfInterest(Box(10, 20, 0, 0)).crop(image)  # 0: up to the edge
    assert to_edge.shape == (80, 110)
    whole, origin = RegionOfInterest(Box(0, 0, 0, 0)).crop(image)
    assert whole is image and origin == (0, 0)


def test_a_box_outside_the_image_is_refused_with_the_sizes() -> None:
    with pytest.raises(ValueError, match="does not fit the 120x100 image"):
        RegionOfInterest(Box(100, 0, 50, 50)).crop(np.zeros((100, 120), np.uint8))


def test_the_automatic_area_is_kept_once_found() -> None:
    roi = RegionOfInterest(auto=True)
    _, origin = roi.crop(np.zeros((600, 800), np.uint8))  # nothing yet: the whole frame
    assert origin == (0, 0) and roi.auto
    _, first = roi.crop(_screen())
    shifted = np.roll(_screen(), 50, axis=1)
    _, second = roi.crop(shifted)  # the same screen layout is assumed: the crop does not move
    assert first == second and not roi.auto
