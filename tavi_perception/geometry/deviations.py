"""Catheter and stent deviations from the annulus (``geometry.frames``), pure functions on image points.

All inputs are image pixels; outputs are millimetres at the isocentre and degrees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tavi_perception.geometry.frames import AnnulusFrame, angle_between_deg


@dataclass(frozen=True)
class CatheterDeviation:
    tip_depth_mm: float  # CT depth in the annulus frame (+ = ventricular side)
    tip_lateral_mm: float  # CT lateral offset in the annulus frame
    coaxiality_deg: float  # unsigned angle between CD->CT and the root axis, 0..180


@dataclass(frozen=True)
class StentDeviation:
    fe1_depth_mm: float
    fe2_depth_mm: float
    mean_depth_mm: float
    asymmetry_mm: float  # |FE1 depth - FE2 depth|
    tilt_deg: float  # FE1->FE2 against AA1->AA2, signed (+ = FE2 deeper than FE1), (-90, 90]


def catheter_deviation(
    frame: AnnulusFrame, ct_px: np.ndarray, cd_px: np.ndarray, root_axis: np.ndarray, mm_per_px: float
) -> CatheterDeviation:
    """Tip position in the annulus frame and coaxiality of the delivery axis (CD->CT) with the root axis.

    ``root_axis`` is the direction from the STJ midpoint to the annulus origin (image frame); a delivery
    system advancing straight down the root has coaxiality 0°.
    """
    lateral_mm, depth_mm = frame.to_annulus_mm(ct_px, mm_per_px)
    delivery_axis = np.asarray(ct_px, dtype=float) - np.asarray(cd_px, dtype=float)
    return CatheterDeviation(depth_mm, lateral_mm, angle_between_deg(delivery_axis, root_axis))


def signed_tilt_deg(frame: AnnulusFrame, fe1_px: np.ndarray, fe2_px: np.ndarray) -> float:
    """Angle of FE1->FE2 against the annulus x axis (AA1->AA2), wrapped to (-90, 90].

    Positive when FE2 lies deeper (towards the ventricle) than FE1 along the edge direction; the wrap
    makes the result independent of which frame edge was labelled 1.
    """
    v = np.asarray(fe2_px, dtype=float) - np.asarray(fe1_px, dtype=float)
    if float(np.hypot(*v)) < 1e-9:
        raise ValueError("FE1 and FE2 coincide: stent edge direction undefined")
    angle = math.degrees(math.atan2(float(v @ frame.y_axis), float(v @ frame.x_axis)))
    if angle > 90.0:
        angle -= 180.0
    elif angle <= -90.0:
        angle += 180.0
    return angle


def stent_deviation(
    frame: AnnulusFrame, fe1_px: np.ndarray, fe2_px: np.ndarray, mm_per_px: float
) -> StentDeviation:
    """Frame-edge depths, their mean, asymmetry and tilt in the annulus frame."""
    _, d1 = frame.to_annulus_mm(fe1_px, mm_per_px)
    _, d2 = frame.to_annulus_mm(fe2_px, mm_per_px)
    return StentDeviation(d1, d2, 0.5 * (d1 + d2), abs(d1 - d2), signed_tilt_deg(frame, fe1_px, fe2_px))


def axis_tilt_deg(frame: AnnulusFrame, axis_px: np.ndarray) -> float:
    """Signed angle [deg] from the annulus y axis to ``axis_px`` (an image direction towards the ventricle).

    Measured in the image's rotation sense (positive from image +x towards +y), the sense of a positive
    manipulator steer, whichever way the annulus frame is oriented; 0 when the axis is perpendicular to
    AA1->AA2. Wrapped to (-180, 180].
    """
    v = np.asarray(axis_px, dtype=float)
    if float(np.hypot(*v)) < 1e-9:
        raise ValueError("axis has zero length: tilt undefined")
    y = frame.y_axis
    return math.degrees(math.atan2(float(y[0] * v[1] - y[1] * v[0]), float(y @ v)))


def stent_axis_px(frame: AnnulusFrame, fe1_px: np.ndarray, fe2_px: np.ndarray) -> np.ndarray:
    """Image direction of the stent axis towards the ventricle: perpendicular to the inflow edge FE1-FE2."""
    edge = np.asarray(fe2_px, dtype=float) - np.asarray(fe1_px, dtype=float)
    if float(np.hypot(*edge)) < 1e-9:
        raise ValueError("FE1 and FE2 coincide: stent axis undefined")
    normal = np.array([-edge[1], edge[0]])
    return normal if float(normal @ frame.y_axis) >= 0.0 else -normal


def capsule_retraction_mm(
    cp_px: np.ndarray, cd_px: np.ndarray, mm_per_px: float, closed_mm: float, length_mm: float = 0.0
) -> float:
    """Capsule retraction [mm] from the CP-CD distance ``d`` and its closed-capsule reference ``closed_mm``.

    Without the device's true closed CP-CD ``length_mm``: ``closed_mm - d`` (foreshortened by the view).
    With it: ``(1 - d / closed_mm) * length_mm``, the fraction of the closed segment that is gone times
    its true length, which the view's foreshortening scales out.
    """
    distance_mm = (
        float(np.hypot(*(np.asarray(cd_px, dtype=float) - np.asarray(cp_px, dtype=float)))) * mm_per_px
    )
    if length_mm > 0:
        return (1.0 - distance_mm / closed_mm) * length_mm
    return closed_mm - distance_mm


def deployment_fraction(retraction_mm: float, frame_height_mm: float) -> float:
    """Capsule retraction over the valve frame height, clipped to 0..1."""
    if frame_height_mm <= 0:
        raise ValueError("valve frame height must be positive")
    return float(min(max(retraction_mm / frame_height_mm, 0.0), 1.0))
