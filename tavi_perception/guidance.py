"""The Guidance contract: one frame of TAVI guidance as plain Python (no ROS).

:class:`GuidanceEstimate` has exactly the fields of ``tavi_msgs/msg/Guidance.msg`` but ``header`` and
``latency_ms`` (the node adds those), with the same names, units and meanings; the message comments are
the reference. Everything that carries guidance derives from it instead of listing the fields again:
the estimator fills it, :func:`tavi_perception.ros.messages.guidance_to_msg` copies it into the message
and ``guidance_from_msg`` back, the recorder's rows, the controller's sample and the simulator's truth
are subclasses that add their own fields (stamp, receipt time, simulator-only truth).

Numbers of an invalid block are NaN, never a plausible 0; a frame refused before the estimator (bad
image, frozen source, ...) gets :meth:`GuidanceEstimate.invalid`: every block invalid with the reason,
NaN numbers and the configured target and tolerance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from tavi_perception.geometry.frames import AnnulusFrame


class TrackingState(IntEnum):
    """Values equal ``tavi_msgs/Guidance`` ``TRACKING_*``."""

    OK = 0
    DEGRADED = 1
    LOST = 2


class AnnulusSource(IntEnum):
    """Values equal ``tavi_msgs/Guidance`` ``ANNULUS_*``."""

    NONE = 0
    CONTRAST = 1
    PIGTAIL_BOUND = 2


class DepthSource(IntEnum):
    """Values equal ``tavi_msgs/Guidance`` ``DEPTH_SOURCE_*``."""

    NONE = 0
    TIP = 1
    STENT = 2


BLOCKS = ("annulus", "catheter", "stent", "extraction")  # each has ``<block>_valid`` and ``<block>_reason``
_NAN = math.nan


@dataclass
class GuidanceEstimate:
    """One frame of guidance; field names, units and meanings are those of ``tavi_msgs/msg/Guidance.msg``."""

    valid: bool = False
    tracking_state: int = TrackingState.LOST
    invalid_reason: str = ""
    # annulus block
    annulus_valid: bool = False
    annulus_reason: str = ""
    annulus_source: int = AnnulusSource.NONE
    annulus_origin_x_px: float = _NAN
    annulus_origin_y_px: float = _NAN
    annulus_angle_deg: float = _NAN
    mm_per_px: float = _NAN
    annulus_diameter_mm: float = _NAN
    annulus_y_sign: int = 0  # +1/-1: y axis = x axis turned by ±90° in the image's rotation sense; 0 = none
    # catheter block
    catheter_valid: bool = False
    catheter_reason: str = ""
    tip_depth_mm: float = _NAN
    tip_lateral_mm: float = _NAN
    coaxiality_deg: float = _NAN
    # stent block
    stent_valid: bool = False
    stent_reason: str = ""
    fe1_depth_mm: float = _NAN
    fe2_depth_mm: float = _NAN
    stent_mean_depth_mm: float = _NAN
    stent_asymmetry_mm: float = _NAN
    stent_tilt_deg: float = _NAN
    delivery_tilt_deg: float = _NAN  # CP->CT, else the stent axis (image sense)
    # extraction block
    extraction_valid: bool = False
    extraction_reason: str = ""
    capsule_retraction_mm: float = _NAN
    deployment_fraction: float = _NAN
    # guidance
    depth_source: int = DepthSource.NONE
    depth_mm: float = _NAN
    target_depth_mm: float = _NAN
    depth_tolerance_mm: float = _NAN
    depth_error_mm: float = _NAN
    depth_std_mm: float = _NAN
    # calibration of mm_per_px
    calibrated: bool = False
    calibration_source: str = ""
    # view of the annulus plane (preoperative plan + C-arm angles; tavi_perception.plan.obliquity)
    view_state: int = 0  # ViewState: UNKNOWN 0, CORRECTED 1, TOO_OBLIQUE 2, INCONSISTENT 3
    view_obliquity_deg: float = _NAN
    view_depth_bias_mm: float = _NAN
    view_asymmetry_bias_mm: float = _NAN
    view_tilt_bias_deg: float = _NAN

    @classmethod
    def invalid(cls, reason: str, target_depth_mm: float, depth_tolerance_mm: float) -> GuidanceEstimate:
        """A frame with nothing usable: every block invalid because of ``reason``, numbers NaN, the
        configured target and tolerance (a display still shows the band the controller aims for)."""
        est = cls(
            invalid_reason=reason,
            target_depth_mm=float(target_depth_mm),
            depth_tolerance_mm=float(depth_tolerance_mm),
        )
        for block in BLOCKS:
            setattr(est, f"{block}_reason", reason)
        return est

    def annulus_frame(self) -> AnnulusFrame | None:
        """The annulus frame from the annulus fields alone (origin, angle, y sign); None without one.

        What a display or a node apart from perception needs to draw depths, from the message alone.
        """
        values = (self.annulus_origin_x_px, self.annulus_origin_y_px, self.annulus_angle_deg)
        if self.annulus_y_sign == 0 or not all(math.isfinite(v) for v in values):
            return None
        angle = math.radians(self.annulus_angle_deg)
        x_axis = np.array([math.cos(angle), math.sin(angle)])
        y_axis = self.annulus_y_sign * np.array([-x_axis[1], x_axis[0]])
        return AnnulusFrame(np.array(values[:2]), x_axis, y_axis)


def annulus_fields(frame: AnnulusFrame) -> dict[str, float | int]:
    """The contract's fields of ``frame`` (origin, angle, y sign), from which
    :meth:`GuidanceEstimate.annulus_frame` gives it back."""
    return {
        "annulus_origin_x_px": float(frame.origin_px[0]),
        "annulus_origin_y_px": float(frame.origin_px[1]),
        "annulus_angle_deg": frame.angle_deg,
        "annulus_y_sign": frame.y_sign,
    }
