"""C-arm geometry: patient LPS millimetres -> detector pixels, with the DICOM angle conventions.

Primary angle ``lao_deg`` (DICOM 0018,1510): + LAO, - RAO. Secondary angle ``cran_deg`` (0018,1511):
+ cranial, - caudal. The detector sits along ``d = (sin a cos b, -cos a cos b, sin b)`` from the
isocentre and ``d`` is also the beam direction (source -> detector); the source is ``SOD`` before the
isocentre, the detector plane ``SID`` from the source. The image is shown as seen from the detector
looking at the source (the usual fluoroscopy display): image +x = ``(cos a, sin a, 0)``, image +y =
``x_img × d``. In AP (a = b = 0) the patient's left is on the image right and the head at the top; in LAO
the spine moves to the image right. A plane with normal ``n`` is seen edge-on when ``n · d = 0``, i.e.
``tan b = (n_y cos a - n_x sin a) / n_z`` (the S-curve of the annulus plane; docs/simulator.md).

Pixels follow docs/ARCHITECTURE.md: the centre of pixel (i, j) is (j + 0.5, i + 0.5); the isocentre
projects to the image centre (W/2, H/2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tavi_perception.core.carm import view_axes
from tavi_perception.geometry.frames import mm_per_px as _mm_per_px


@dataclass(frozen=True)
class CArmView:
    """One C-arm position and imaging chain geometry."""

    lao_deg: float  # [deg] primary angle, + LAO / - RAO
    cran_deg: float  # [deg] secondary angle, + cranial / - caudal
    sid_mm: float  # [mm] source-to-image (detector) distance
    sod_mm: float  # [mm] source-to-object (isocentre) distance
    detector_fov_mm: float  # [mm] side of the square active detector field
    isocentre_lps: tuple[float, float, float] = (0.0, 0.0, 0.0)  # [mm] isocentre in patient LPS

    def __post_init__(self) -> None:
        if not 0 < self.sod_mm < self.sid_mm:
            raise ValueError(f"need 0 < SOD < SID, got SOD {self.sod_mm} mm, SID {self.sid_mm} mm")
        if self.detector_fov_mm <= 0:
            raise ValueError(f"detector field must be positive, got {self.detector_fov_mm} mm")

    @property
    def magnification(self) -> float:
        """SID/SOD: magnification of an object at the isocentre."""
        return self.sid_mm / self.sod_mm

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(beam direction d, image +x direction, image +y direction) as unit vectors in patient LPS."""
        return view_axes(self.lao_deg, self.cran_deg)


def s_curve_cran_deg(normal_lps: np.ndarray, lao_deg: float) -> float:
    """Secondary angle [deg] at which a plane with ``normal_lps`` is seen edge-on for ``lao_deg``."""
    n = np.asarray(normal_lps, dtype=float)
    a = math.radians(lao_deg)
    if abs(n[2]) < 1e-12:
        raise ValueError("a plane with a horizontal normal has no S-curve (edge-on at every angle)")
    return math.degrees(math.atan((n[1] * math.cos(a) - n[0] * math.sin(a)) / n[2]))


class Projector:
    """Perspective projection of one view onto a square image of ``size_px`` pixels."""

    def __init__(self, view: CArmView, size_px: int) -> None:
        if size_px < 16:
            raise ValueError(f"image size must be at least 16 px, got {size_px}")
        self.view = view
        self.size_px = int(size_px)
        self.pixel_spacing_mm = view.detector_fov_mm / self.size_px  # at the detector
        self.mm_per_px = _mm_per_px(self.pixel_spacing_mm, view.sid_mm, view.sod_mm)  # at the isocentre
        self.beam, self.x_img, self.y_img = view.axes()
        iso = np.asarray(view.isocentre_lps, dtype=float)
        self.source_lps = iso - view.sod_mm * self.beam
        self._centre_px = 0.5 * self.size_px

    def project(self, points_lps: np.ndarray) -> np.ndarray:
        """Image pixels (..., 2) of points (..., 3) in patient LPS."""
        p = np.asarray(points_lps, dtype=float) - self.source_lps
        scale = self.view.sid_mm / (p @ self.beam) / self.pixel_spacing_mm
        return np.stack(
            [self._centre_px + (p @ self.x_img) * scale, self._centre_px + (p @ self.y_img) * scale], axis=-1
        )

    def object_mm_per_px(self, points_lps: np.ndarray) -> np.ndarray:
        """Millimetres per pixel in the object at the depth of each point (mm_per_px at the isocentre)."""
        w = (np.asarray(points_lps, dtype=float) - self.source_lps) @ self.beam
        return self.pixel_spacing_mm * w / self.view.sid_mm

    def rays(self, x_px: np.ndarray, y_px: np.ndarray) -> np.ndarray:
        """Unit directions (..., 3) from the source through image points (x_px, y_px)."""
        x = np.asarray(x_px, dtype=float)[..., None]
        y = np.asarray(y_px, dtype=float)[..., None]
        s = self.pixel_spacing_mm
        v = (
            self.view.sid_mm * self.beam
            + (x - self._centre_px) * s * self.x_img
            + (y - self._centre_px) * s * self.y_img
        )
        return v / np.linalg.norm(v, axis=-1, keepdims=True)

    def pixel_grid_rays(self, x0: int, y0: int, width: int, height: int, step: int = 1) -> np.ndarray:
        """Rays (h, w, 3) through the centres of ``step``-pixel blocks of the window at (x0, y0)."""
        xs = x0 + (np.arange(0, width, step) + 0.5 * step)
        ys = y0 + (np.arange(0, height, step) + 0.5 * step)
        gx, gy = np.meshgrid(xs, ys)
        return self.rays(gx, gy)
