"""Overlay of the perception result on the fluoroscopy frame (BGR uint8), for people: RViz, demo GIF.

Drawn: tracked keypoints (green measured, amber predicted; lost ones not drawn), the annulus axis
(AA1 -> AA2, blue), the target depth band (two thin lines parallel to the annulus, cyan), and a status
line with the depth and its source or the reason guidance is invalid.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from tavi_perception.guidance import GuidanceEstimate
from tavi_perception.keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS
from tavi_perception.tracking import KeypointState, TrackedKeypoints

# BGR colours
_GREEN = (60, 220, 60)
_AMBER = (0, 190, 255)
_BLUE = (255, 140, 40)
_CYAN = (230, 220, 0)
_WHITE = (255, 255, 255)
_RED = (60, 60, 255)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_SOURCES = {1: "contrast", 2: "pigtail"}


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """A grey frame of any dtype as BGR uint8 (16-bit and float frames stretched to their own range)."""
    grey = np.asarray(image)
    if grey.dtype != np.uint8:
        low, high = float(grey.min()), float(grey.max())
        grey = np.clip((grey.astype(np.float32) - low) * (255.0 / max(high - low, 1e-6)), 0, 255).astype(
            np.uint8
        )
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


class OverlayRenderer:
    """Draws overlays from the tracked keypoints and the Guidance contract alone (as a viewer apart from
    perception would, from the KeypointArray and Guidance messages)."""

    def render(self, image: np.ndarray, tracked: TrackedKeypoints, estimate: GuidanceEstimate) -> np.ndarray:
        """The overlay for one frame (a new BGR uint8 array of the frame's size)."""
        canvas = to_bgr8(image)
        w = canvas.shape[1]
        thickness = max(1, round(w / 512))
        text_scale = w / 512  # text stays readable when the overlay is shown downscaled
        radius = max(3, round(w / 128))
        for i in range(NUM_KEYPOINTS):
            state = int(tracked.state[i])
            if state == KeypointState.LOST or not np.isfinite(tracked.xy_px[i]).all():
                continue
            colour = _GREEN if state == KeypointState.MEASURED else _AMBER
            centre = (round(float(tracked.xy_px[i, 0])), round(float(tracked.xy_px[i, 1])))
            cv2.circle(canvas, centre, radius, colour, thickness, cv2.LINE_AA)
            label_at = (centre[0] + radius + 2, centre[1] - radius)
            cv2.putText(canvas, KEYPOINT_NAMES[i], label_at, _FONT, 0.45 * text_scale, colour, 1, cv2.LINE_AA)
        if estimate.annulus_valid:
            _draw_annulus(canvas, estimate, thickness)
        text = self._status(estimate)
        cv2.rectangle(canvas, (0, 0), (w, round(30 * text_scale)), (0, 0, 0), -1)
        colour = _WHITE if estimate.valid else _RED
        origin = (6, round(21 * text_scale))
        cv2.putText(canvas, text, origin, _FONT, 0.55 * text_scale, colour, max(1, thickness), cv2.LINE_AA)
        return canvas

    @staticmethod
    def _status(est: GuidanceEstimate) -> str:
        if not est.valid:
            return f"HOLD: {est.invalid_reason}"
        source = "tip" if est.depth_source == 1 else "stent"
        annulus = _SOURCES.get(int(est.annulus_source), "?")
        deployed = 100 * np.nan_to_num(est.deployment_fraction)
        depth = f"{source} {est.depth_mm:+.1f} mm  err {est.depth_error_mm:+.1f}"
        return f"{depth}  {annulus}  deployed {deployed:.0f}%"


def _draw_annulus(canvas: np.ndarray, est: GuidanceEstimate, thickness: int) -> None:
    """The annulus axis (AA1 -> AA2, one diameter long) and the target band on the ventricular side."""
    frame = est.annulus_frame()
    if frame is None:
        return
    half_px = 0.5 * est.annulus_diameter_mm / est.mm_per_px
    a, b = frame.origin_px - half_px * frame.x_axis, frame.origin_px + half_px * frame.x_axis
    cv2.line(canvas, _pt(a), _pt(b), _BLUE, thickness + 1, cv2.LINE_AA)
    if not math.isfinite(est.target_depth_mm):
        return
    for depth_mm in (
        est.target_depth_mm - est.depth_tolerance_mm,
        est.target_depth_mm + est.depth_tolerance_mm,
    ):
        shift = frame.y_axis * depth_mm / est.mm_per_px
        cv2.line(canvas, _pt(a + shift), _pt(b + shift), _CYAN, 1, cv2.LINE_AA)


def _pt(xy: np.ndarray) -> tuple[int, int]:
    return round(float(xy[0])), round(float(xy[1]))
