"""The C-arm's geometry and when a change of it invalidates what was measured in the image (no ROS).

An annulus measured in an aortogram is held across fluoroscopy pedal gaps (:mod:`tavi_perception.geometry`)
only while the view stays: a new view angle, field size (zoom) or table position moves the anatomy in the
image, and the held annulus would then be re-attached to a pigtail that now sits elsewhere in the root's
projection. :func:`change_reason` says whether two reported states differ by more than the C-arm's own
reporting noise; unreported values (NaN) never count as a change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

ANGLE_TOLERANCE_DEG = 0.5  # [deg] C-arm angle read-outs are reported to 0.1-1 deg
DISTANCE_TOLERANCE_MM = 1.0  # [mm] table and SID read-outs


@dataclass(frozen=True)
class CArmPose:
    """One reported C-arm state; NaN = not reported (fields as ``tavi_msgs/CArmState``)."""

    primary_angle_deg: float = math.nan  # [deg] LAO +, RAO -
    secondary_angle_deg: float = math.nan  # [deg] cranial +, caudal -
    sid_mm: float = math.nan  # [mm] source-image distance
    field_size_mm: float = math.nan  # [mm] detector field of view
    table_x_mm: float = math.nan  # [mm]
    table_y_mm: float = math.nan  # [mm]
    table_z_mm: float = math.nan  # [mm]


def view_axes(primary_deg: float, secondary_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(beam direction d, image +x, image +y) unit vectors in patient LPS (x left, y posterior, z head).

    Primary angle + LAO / - RAO, secondary + cranial / - caudal (DICOM 0018,1510/1511); the beam runs
    from the source to the detector, ``d = (sin a cos b, -cos a cos b, sin b)``; the image is seen from
    the detector (the usual display): in AP the patient's left is on the image right and the head at the
    top, image +x = ``(cos a, sin a, 0)``, image +y = ``x × d`` (:mod:`tavi_perception.sim.carm`).
    """
    a, b = math.radians(primary_deg), math.radians(secondary_deg)
    d = np.array([math.sin(a) * math.cos(b), -math.cos(a) * math.cos(b), math.sin(b)])
    x_img = np.array([math.cos(a), math.sin(a), 0.0])
    return d, x_img, np.cross(x_img, d)


def change_reason(
    before: CArmPose | None,
    after: CArmPose,
    angle_tolerance_deg: float = ANGLE_TOLERANCE_DEG,
    distance_tolerance_mm: float = DISTANCE_TOLERANCE_MM,
) -> str | None:
    """Why ``after`` is another view than ``before`` (the first differing field), or None when it is not.

    Angles compare within ``angle_tolerance_deg``, lengths within ``distance_tolerance_mm``; a field
    reported on one side only (NaN on the other) is no change: nothing says the view moved.
    """
    if before is None:
        return None
    for field in fields(CArmPose):
        old, new = getattr(before, field.name), getattr(after, field.name)
        if not (math.isfinite(old) and math.isfinite(new)):
            continue
        tolerance = angle_tolerance_deg if field.name.endswith("_deg") else distance_tolerance_mm
        if abs(new - old) > tolerance:
            return f"C-arm moved: {field.name} {old:g} -> {new:g}"
    return None
