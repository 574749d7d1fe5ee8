"""The image scale (mm per pixel at the isocentre) and whether anyone actually gave it (no ROS).

Every millimetre of the guidance rests on this scale, so it is never silent: a :class:`Calibration`
says whether it was given explicitly (a scale, or pixel spacing with SID and SOD, from the operator or
from a calibration source) or is the built-in default of a typical C-arm, and where it came from. The
pipeline copies ``calibrated`` and ``source`` into every guidance (``Guidance.calibrated``,
``Guidance.calibration_source``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tavi_perception.geometry.frames import mm_per_px as magnified_mm_per_px

# a typical C-arm, used only when nothing was given (and then reported as uncalibrated)
DEFAULT_PIXEL_SPACING_MM = 0.6  # [mm] detector pixel spacing at the node's calibration_width_px (512)
DEFAULT_SID_MM = 1200.0  # [mm] source-image distance
DEFAULT_SOD_MM = 800.0  # [mm] source-object (isocentre) distance


@dataclass(frozen=True)
class Calibration:
    """Scale of the image at the isocentre and its provenance."""

    mm_per_px: float  # [mm/px] at width_px
    width_px: int  # [px] image width the scale refers to; 0 = any width
    calibrated: bool  # given explicitly (False: the default of a typical C-arm)
    source: str  # where it came from, e.g. "parameter mm_per_px", "default 0.6 mm pixel spacing, ..."

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mm_per_px) and self.mm_per_px > 0):
            raise ValueError(f"mm_per_px must be positive and finite, got {self.mm_per_px!r}")
        if self.width_px < 0:
            raise ValueError(f"width_px must be >= 0, got {self.width_px}")

    def for_width(self, width_px: int) -> float:
        """Scale [mm/px] of an image ``width_px`` wide showing the same field (a resized frame)."""
        return self.mm_per_px * (self.width_px / width_px if self.width_px > 0 else 1.0)


def calibration_from_parameters(
    mm_per_px: float, pixel_spacing_mm: float, sid_mm: float, sod_mm: float, width_px: int
) -> Calibration:
    """The calibration of the node's parameters, 0 meaning "not given" for each of them.

    ``mm_per_px`` > 0 wins; otherwise pixel spacing, SID and SOD, each from the defaults when not
    given. Explicit only when the scale or all three were given. Raises ``ValueError`` when SOD > SID.
    """
    if mm_per_px > 0:
        return Calibration(mm_per_px, width_px, True, f"parameter mm_per_px {mm_per_px:g}")
    given = {"imager_pixel_spacing_mm": pixel_spacing_mm, "sid_mm": sid_mm, "sod_mm": sod_mm}
    defaults = {
        "imager_pixel_spacing_mm": DEFAULT_PIXEL_SPACING_MM,
        "sid_mm": DEFAULT_SID_MM,
        "sod_mm": DEFAULT_SOD_MM,
    }
    used = {name: value if value > 0 else defaults[name] for name, value in given.items()}
    scale = magnified_mm_per_px(used["imager_pixel_spacing_mm"], used["sid_mm"], used["sod_mm"])
    missing = [name for name, value in given.items() if value <= 0]
    if not missing:
        source = f"parameters pixel spacing {pixel_spacing_mm:g} mm, SID {sid_mm:g} mm, SOD {sod_mm:g} mm"
        return Calibration(scale, width_px, True, source)
    values = ", ".join(f"{name} {used[name]:g}" for name in missing)
    return Calibration(scale, width_px, False, f"default {values} (not given)")
