"""Guidance fields for the tests that draw from the contract alone (overlay, markers): the same fields fill
a ``GuidanceEstimate`` and a ``tavi_msgs/Guidance``."""

from __future__ import annotations


def level_annulus(origin_px: tuple[float, float], y_sign: int) -> dict[str, object]:
    """A valid, level 20 mm annulus at ``origin_px`` at 0.5 mm/px, the ventricle towards image y
    ``y_sign`` (so its frame's axes are the image's, scaled)."""
    return {
        "annulus_valid": True,
        "annulus_origin_x_px": origin_px[0],
        "annulus_origin_y_px": origin_px[1],
        "annulus_angle_deg": 0.0,
        "annulus_y_sign": y_sign,
        "annulus_diameter_mm": 20.0,
        "mm_per_px": 0.5,
    }
