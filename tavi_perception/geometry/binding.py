"""Pigtail binding: carry the annulus with the pigtail catheter after contrast washes out.

While the annulus is measured from contrast and the pigtail PT is measured, the binding stores the
annulus origin relative to PT, the annulus orientation, the root axis and the annulus diameter. Each is
an exponential average over the contrast frames (time constant ``average_s``) so the carried annulus is
not tied to one noisy frame; a sample arriving long after the previous one effectively replaces it.
After washout the annulus is carried by PT's translation, its orientation held.
"""

from __future__ import annotations

import math

import numpy as np

from tavi_perception.geometry.frames import AnnulusFrame


class PigtailBinding:
    """Annulus pose relative to the pigtail PT, learned from contrast frames."""

    def __init__(self, average_s: float) -> None:
        if average_s < 0:
            raise ValueError("binding average time must be >= 0 s")
        self.average_s = average_s
        self.clear()

    def clear(self) -> None:
        """Drop the binding (annulus LOST until the next contrast)."""
        self.bound = False
        self.t_s = -math.inf  # time of the last binding sample [s]
        self._offset_px = np.zeros(2)  # annulus origin - PT
        self._x_axis = np.array([1.0, 0.0])
        self._y_sign = 1.0  # y_axis = y_sign * (x_axis rotated by +90° in image coordinates)
        self._root_axis = np.array([0.0, 1.0])
        self.diameter_mm = math.nan

    def bind(
        self, t_s: float, frame: AnnulusFrame, root_axis: np.ndarray, diameter_mm: float, pt_px: np.ndarray
    ) -> None:
        """Add one contrast frame: annulus ``frame`` measured while PT was at ``pt_px``."""
        offset = frame.origin_px - np.asarray(pt_px, dtype=float)
        if not self.bound or self.average_s == 0.0:
            w = 1.0
        else:
            w = 1.0 - math.exp(-max(t_s - self.t_s, 0.0) / self.average_s)
        x_axis = (1.0 - w) * self._x_axis + w * frame.x_axis
        root = (1.0 - w) * self._root_axis + w * np.asarray(root_axis, dtype=float)
        self._offset_px = (1.0 - w) * self._offset_px + w * offset
        self._x_axis = x_axis / np.hypot(*x_axis)
        self._root_axis = root / np.hypot(*root)
        self.diameter_mm = diameter_mm if not self.bound else (1.0 - w) * self.diameter_mm + w * diameter_mm
        self._y_sign = 1.0 if float(frame.y_axis @ _rot90(frame.x_axis)) > 0 else -1.0
        self.bound = True
        self.t_s = t_s

    def carry(self, pt_px: np.ndarray) -> tuple[AnnulusFrame, np.ndarray]:
        """The annulus frame and root axis for PT at ``pt_px`` (translation only, orientation held)."""
        if not self.bound:
            raise RuntimeError("pigtail binding used before any contrast frame bound it")
        origin = np.asarray(pt_px, dtype=float) + self._offset_px
        y_axis = self._y_sign * _rot90(self._x_axis)
        return AnnulusFrame(origin, self._x_axis.copy(), y_axis), self._root_axis.copy()


def _rot90(v: np.ndarray) -> np.ndarray:
    """``v`` rotated by +90° in image coordinates (x right, y down)."""
    return np.array([-v[1], v[0]])
