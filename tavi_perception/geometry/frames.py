"""The annulus frame and image-to-millimetre conversion (the definitions docs/ARCHITECTURE.md uses).

Image frame ``fluoro``: pixels, origin top-left, x right, y down.
Annulus frame: origin = midpoint of AA1-AA2; x axis along AA1->AA2; y axis perpendicular to it,
pointing to the ventricle (away from the STJ midpoint). ``depth_mm`` is the y coordinate (positive =
ventricular side), ``lateral_mm`` the x coordinate. Both are millimetres at the isocentre.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tavi_perception.keypoints import Kp


@dataclass(frozen=True)
class AnnulusFrame:
    """Annulus frame expressed in image pixels."""

    origin_px: np.ndarray  # (2,) annulus origin, image frame [px]
    x_axis: np.ndarray  # (2,) unit vector AA1->AA2, image frame
    y_axis: np.ndarray  # (2,) unit vector towards the ventricle, image frame

    @property
    def angle_deg(self) -> float:
        """Angle of the x axis from the image x axis [deg], positive towards image +y."""
        return float(np.degrees(np.arctan2(self.x_axis[1], self.x_axis[0])))

    @property
    def y_sign(self) -> int:
        """+1 when the y axis is the x axis turned by +90° in the image's rotation sense, else -1."""
        return 1 if float(self.y_axis @ np.array([-self.x_axis[1], self.x_axis[0]])) > 0 else -1

    def to_annulus_mm(self, point_px: np.ndarray, mm_per_px: float) -> tuple[float, float]:
        """(lateral_mm, depth_mm) of an image point in this frame."""
        d = np.asarray(point_px, dtype=float) - self.origin_px
        return float(d @ self.x_axis) * mm_per_px, float(d @ self.y_axis) * mm_per_px

    def translated(self, offset_px: np.ndarray) -> AnnulusFrame:
        """The same orientation with its origin moved by ``offset_px``."""
        return AnnulusFrame(self.origin_px + np.asarray(offset_px, dtype=float), self.x_axis, self.y_axis)


def annulus_frame(aa1_px: np.ndarray, aa2_px: np.ndarray, stj_mid_px: np.ndarray) -> AnnulusFrame:
    """Build the annulus frame from the two hinge points and the STJ midpoint (all image pixels).

    Raises ``ValueError`` when AA1 and AA2 coincide (no x axis) or the STJ midpoint lies on the
    annulus line (no side for the ventricle).
    """
    aa1 = np.asarray(aa1_px, dtype=float)
    aa2 = np.asarray(aa2_px, dtype=float)
    span = aa2 - aa1
    length = float(np.hypot(*span))
    if length < 1e-6:
        raise ValueError("AA1 and AA2 coincide: annulus axis undefined")
    x_axis = span / length
    y_axis = np.array([-x_axis[1], x_axis[0]])
    origin = 0.5 * (aa1 + aa2)
    stj_side = float((np.asarray(stj_mid_px, dtype=float) - origin) @ y_axis)
    if abs(stj_side) < 1e-6:
        raise ValueError("STJ midpoint lies on the annulus line: ventricular side undefined")
    if stj_side > 0:  # y must point away from the STJ
        y_axis = -y_axis
    return AnnulusFrame(origin, x_axis, y_axis)


def annulus_frame_from_keypoints(xy_px: np.ndarray) -> AnnulusFrame:
    """Annulus frame from an (11, 2) schema-ordered keypoint array."""
    stj_mid = 0.5 * (xy_px[Kp.STJ1] + xy_px[Kp.STJ2])
    return annulus_frame(xy_px[Kp.AA1], xy_px[Kp.AA2], stj_mid)


def mm_per_px(imager_pixel_spacing_mm: float, sid_mm: float, sod_mm: float) -> float:
    """Millimetres per pixel at the isocentre: detector pixel spacing divided by magnification SID/SOD."""
    if imager_pixel_spacing_mm <= 0 or sid_mm <= 0 or sod_mm <= 0:
        raise ValueError("pixel spacing, SID and SOD must be positive")
    if sod_mm > sid_mm:
        raise ValueError(f"SOD ({sod_mm} mm) cannot exceed SID ({sid_mm} mm)")
    return imager_pixel_spacing_mm / (sid_mm / sod_mm)


def angle_between_deg(u: np.ndarray, v: np.ndarray) -> float:
    """Unsigned angle between two 2D vectors [deg], 0..180."""
    nu, nv = float(np.hypot(*u)), float(np.hypot(*v))
    if nu < 1e-9 or nv < 1e-9:
        raise ValueError("zero-length vector has no direction")
    c = float(np.clip(np.dot(u, v) / (nu * nv), -1.0, 1.0))
    return float(np.degrees(np.arccos(c)))


def wrap_deg(angle: float, half_turn: float) -> float:
    """``angle`` [deg] wrapped to (-half_turn, half_turn] (180 for directions, 90 for lines)."""
    return half_turn - (half_turn - angle) % (2.0 * half_turn)
