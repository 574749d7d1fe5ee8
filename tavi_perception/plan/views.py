"""C-arm views of the annulus plane: the S-curve of coplanar views, the cusp-overlap and three-cusp views.

Angles follow DICOM and :mod:`tavi_perception.sim.carm`: primary angle ``α`` (0018,1510) + LAO / − RAO,
secondary ``β`` (0018,1511) + cranial / − caudal; the beam (source → detector) is
``d = (sin α cos β, −cos α cos β, sin β)`` in patient LPS. A plane with normal ``n`` is seen edge-on when
``n · d = 0``: ``tan β = (n_y cos α − n_x sin α) / n_z``, one secondary angle for every primary angle (the
S-curve). A beam direction and its opposite show the plane alike (mirrored); of the two the one with the
detector in front of the patient (``d_y < 0``, ``|α| < 90°``) is the C-arm's.

- **Cusp-overlap view**: the coplanar view whose beam runs along the RCC–LCC nadir chord, so that the right
  and left coronary cusps overlap and the non-coronary cusp stands apart (used for self-expanding valves:
  the NCC–LCC hinge line is seen with the least parallax of the LVOT).
- **Three-cusp view**: the coplanar view whose beam is perpendicular to the NCC–LCC nadir chord: the RCC in
  the middle, the NCC and LCC at either end, the chord seen at full length.

A C-arm reaches only part of the sphere (:class:`CArmRange`); a view outside it is replaced by the
nearest coplanar view inside it (:func:`nearest_in_range`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tavi_perception.plan.annulus import AnnulusPlan
from tavi_perception.sim.carm import s_curve_cran_deg

S_CURVE_STEP_DEG = 1.0  # [deg] primary-angle step of the S-curve listed in a plan


@dataclass(frozen=True)
class CArmRange:
    """Angles a C-arm reaches [deg] (a floor-mounted C-arm in the usual TAVI set-up)."""

    primary_deg: tuple[float, float] = (-90.0, 90.0)  # RAO 90 .. LAO 90
    secondary_deg: tuple[float, float] = (-45.0, 45.0)  # caudal 45 .. cranial 45

    def contains(self, primary_deg: float, secondary_deg: float) -> bool:
        (a0, a1), (b0, b1) = self.primary_deg, self.secondary_deg
        return a0 <= primary_deg <= a1 and b0 <= secondary_deg <= b1


@dataclass(frozen=True)
class View:
    """A C-arm view [deg] and whether the C-arm reaches it."""

    primary_deg: float
    secondary_deg: float
    within_range: bool

    def angles(self) -> list[float]:
        return [round(self.primary_deg, 2), round(self.secondary_deg, 2)]


def angles_of_beam(beam_lps: np.ndarray) -> tuple[float, float]:
    """(primary, secondary) [deg] of the view along ``beam_lps`` or its opposite, detector in front."""
    d = np.asarray(beam_lps, dtype=float)
    d = d / np.linalg.norm(d)
    if d[1] > 0:
        d = -d
    return math.degrees(math.atan2(d[0], -d[1])), math.degrees(math.asin(float(np.clip(d[2], -1.0, 1.0))))


def s_curve(normal_lps: np.ndarray, primary_deg: np.ndarray) -> np.ndarray:
    """Secondary angles [deg] of the coplanar views at ``primary_deg``."""
    return np.array([s_curve_cran_deg(normal_lps, float(a)) for a in np.atleast_1d(primary_deg)])


def _in_plane(plan: AnnulusPlan, v: np.ndarray) -> np.ndarray:
    n = plan.normal_lps
    return v - (v @ n) * n


def cusp_overlap_beam(plan: AnnulusPlan) -> np.ndarray:
    """Beam direction of the cusp-overlap view: along the RCC-LCC nadir chord, in the annulus plane."""
    return _in_plane(plan, plan.nadirs_lps_mm["lcc"] - plan.nadirs_lps_mm["rcc"])


def three_cusp_beam(plan: AnnulusPlan) -> np.ndarray:
    """Beam direction of the three-cusp view: in the annulus plane, perpendicular to the NCC-LCC chord."""
    _, chord = plan.hinge_chord()
    return np.cross(plan.normal_lps, chord)


def nearest_in_range(
    normal_lps: np.ndarray, primary_deg: float, secondary_deg: float, carm: CArmRange
) -> View:
    """The view itself when the C-arm reaches it, else the nearest coplanar view in range (0.1° grid)."""
    if carm.contains(primary_deg, secondary_deg):
        return View(primary_deg, secondary_deg, True)
    alphas = np.arange(carm.primary_deg[0], carm.primary_deg[1] + 1e-9, 0.1)
    betas = s_curve(normal_lps, alphas)
    ok = (betas >= carm.secondary_deg[0]) & (betas <= carm.secondary_deg[1])
    if not ok.any():
        raise ValueError("no coplanar view of this annulus lies within the C-arm's range")
    dist = np.hypot(alphas[ok] - primary_deg, betas[ok] - secondary_deg)
    i = int(np.argmin(dist))
    return View(float(alphas[ok][i]), float(betas[ok][i]), True)


@dataclass(frozen=True)
class PlanViews:
    """The views of one plan: the S-curve, the two named views and their reachable counterparts."""

    s_curve: list[tuple[float, float]]  # (primary, secondary) [deg] inside the C-arm's primary range
    cusp_overlap: View
    three_cusp: View
    cusp_overlap_recommended: View  # the cusp-overlap view, or the nearest coplanar view in range
    three_cusp_recommended: View
    carm: CArmRange


def plan_views(plan: AnnulusPlan, carm: CArmRange | None = None) -> PlanViews:
    """S-curve, cusp-overlap and three-cusp views of ``plan`` for a C-arm's range."""
    carm = carm or CArmRange()
    n = plan.normal_lps
    alphas = np.arange(carm.primary_deg[0], carm.primary_deg[1] + 1e-9, S_CURVE_STEP_DEG)
    curve = [(float(a), float(b)) for a, b in zip(alphas, s_curve(n, alphas), strict=True)]
    named = []
    for beam in (cusp_overlap_beam(plan), three_cusp_beam(plan)):
        a, b = angles_of_beam(beam)
        named.append((View(a, b, carm.contains(a, b)), nearest_in_range(n, a, b, carm)))
    return PlanViews(curve, named[0][0], named[1][0], named[0][1], named[1][1], carm)
