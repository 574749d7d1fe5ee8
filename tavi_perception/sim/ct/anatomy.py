"""Aortic-root truth from the CT's label map, and the CT's anatomy as the simulator's root geometry.

Derivation (all in the CT's LPS millimetres, on the native 0.70 × 0.70 × 2.5 mm grid):

1. **Junction**: aorta voxels (label 52) with a heart voxel (label 51) among their six neighbours; the
   largest 26-connected cluster of them is the ventriculo-aortic junction (the others are the arch or the
   descending aorta touching the atria).
2. **Root axis**: aorta voxels within 60 mm of the junction; a first axis from their principal component,
   then the line fitted through the centroids of their cross-sections 8-48 mm above the junction
   (iterated until it moves by < 0.1°), pointing from the ventricle towards the aorta.
3. **Annulus plane**: perpendicular to the axis, :data:`ANNULUS_PROBE_MM` above the median height of the
   junction voxels that face the ventricle (their voxel 2 mm further down the axis is heart): the lowest
   level whose cross-section is aorta all round (the 2.5-mm slices make the junction a staircase). Its
   centre is the centroid of the lumen boundary at that level (the lumen: the aorta label's enhanced
   blood, ``volume.CTVolume.lumen``, whose boundary lies on or ~0.3 mm inside the label's).
4. **Hinge points**: AA1/AA2 are the non-coronary and left-coronary cusp nadirs as the stylised phantom
   places them (``phantom.RootGeometry``: right coronary cusp towards anterior, left coronary cusp 120°
   from it towards the patient's left, non-coronary 120° the other way): where the ray from the annulus
   centre in the cusp's direction leaves the lumen, in the annulus plane.
5. **STJ**: the lumen radius (mean boundary distance over 72 directions) along the axis; the sinus
   maximum within 20 mm above the annulus, then the narrowest level within 3-25 mm above it. STJ1/STJ2
   are the ends of that ring seen side-on, like the stylised renderer's, with its mean radius and its
   boundary's centroid.
6. **Catheter route** (not truth, for the pigtail's shaft): the aorta's section centroids slice by slice,
   up the descending aorta, over the arch, down the ascending aorta to the STJ (:func:`aorta_route`).

Expected error: the label map itself (TotalSegmentator, ~1 mm at its boundary), the 2.5-mm slices (the
annulus level ± 1.3 mm along z, ~± 1 mm along this axis), the axis (its angle to the line from the
annulus centre to the STJ centre, :attr:`RootLandmarks.axis_spread_deg`) and, largest, the cusp
directions: the commissures are not in a label map, so the cusps follow the phantom's convention, which
puts each nadir within about ± 20° of its true azimuth, ± 4 mm along a 13-mm annulus ring (a hinge point
then moves mostly in depth or sideways in the image, and stays on the annulus plane). In this CT the
lumen's section at the annulus level reaches into the NCC and LCC sinuses: the hinges lie 2.5-3.3 mm
outside the mean annulus circle (docs/ct_renderer.md).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from tavi_perception.sim.carm import CArmView, s_curve_cran_deg
from tavi_perception.sim.case import (
    CRAN_RANGE_DEG,
    AnatomyParams,
    CaseParams,
    sample_case,
    valve_for_annulus,
)
from tavi_perception.sim.ct.volume import AORTA, HEART, CTVolume, load_ct
from tavi_perception.sim.phantom import RootGeometry, rotate_about, unit

ANNULUS_PROBE_MM = 2.5  # annulus plane above the median ventricle-facing junction voxel (one CT slice)
ROOT_REGION_MM = 60.0  # aorta voxels this close to the junction belong to the root/ascending aorta
CENTRELINE_HEIGHTS_MM = np.arange(8.0, 49.0, 4.0)  # cross-sections for the axis fit, above the junction
BOUNDARY_DIRECTIONS = 72
BOUNDARY_STEP_MM = 0.25
BOUNDARY_MAX_MM = 40.0
PROFILE_STEP_MM = 1.0
ROUTE_MIN_SECTION_VOXELS = 100  # aorta sections smaller than this in a slice are label fragments
ROUTE_SMOOTHING = 3  # slices
ROUTE_BELOW_MM = 120.0  # the route starts this far below the STJ in the descending aorta


@dataclass(frozen=True)
class RootLandmarks:
    """Root landmarks in the CT's LPS millimetres."""

    annulus_centre_lps: np.ndarray  # (3,)
    axis_lps: np.ndarray  # (3,) unit, ventricle -> aorta
    annulus_radius_mm: float  # mean boundary distance in the annulus plane
    hinge_ncc_lps: np.ndarray  # (3,) non-coronary cusp nadir (AA of the NCC)
    hinge_lcc_lps: np.ndarray  # (3,) left-coronary cusp nadir
    sinus_radius_mm: float
    stj_height_mm: float  # above the annulus plane
    stj_centre_lps: np.ndarray  # (3,)
    stj_radius_mm: float
    ascending_radius_mm: float  # 20 mm above the STJ
    axis_spread_deg: float  # angle between the centreline axis and the annulus-centre -> STJ-centre line
    profile_mm: np.ndarray  # (N, 2) height above the annulus plane, mean lumen radius
    aorta_route_lps: (
        np.ndarray
    )  # (N, 3) catheter route from the groin: descending aorta, arch, ascending to the STJ


def _boundary(volume: CTVolume, centre: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Distance [mm] from ``centre`` along each unit direction (N, 3) to where the aortic lumen ends.

    The returned point lies half a step inside the lumen; 0 when the centre is outside it.
    """
    r = np.arange(0.0, BOUNDARY_MAX_MM, BOUNDARY_STEP_MM)
    inside = volume.lumen_at(centre + r[None, :, None] * directions[:, None, :])
    first_out = np.where(inside.all(axis=1), len(r), np.argmin(inside, axis=1))
    return np.maximum(first_out * BOUNDARY_STEP_MM - 0.5 * BOUNDARY_STEP_MM, 0.0)


def _ring(axis: np.ndarray, e1: np.ndarray, count: int) -> np.ndarray:
    phi = np.linspace(0.0, 2.0 * np.pi, count, endpoint=False)[:, None]
    return np.cos(phi) * e1 + np.sin(phi) * np.cross(axis, e1)


def _section(
    volume: CTVolume, centre: np.ndarray, axis: np.ndarray, e1: np.ndarray
) -> tuple[np.ndarray, float]:
    """(boundary centroid, mean boundary distance from it) of the lumen's cross-section through ``centre``."""
    dirs = _ring(axis, e1, BOUNDARY_DIRECTIONS)
    first = centre + _boundary(volume, centre, dirs)[:, None] * dirs
    c = first.mean(axis=0)
    c = c - ((c - centre) @ axis) * axis
    return c, float(_boundary(volume, c, dirs).mean())


def _line_fit(points: np.ndarray, hint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, unit direction along ``hint``) of the principal line through points."""
    m = points.mean(axis=0)
    direction = np.linalg.svd(points - m, full_matrices=False)[2][0]
    return m, direction if direction @ hint >= 0 else -direction


def _centreline_axis(pts: np.ndarray, base: np.ndarray, axis: np.ndarray, heights: np.ndarray) -> np.ndarray:
    for _ in range(10):
        s = (pts - base) @ axis
        cents = [pts[np.abs(s - h) < 2.0].mean(axis=0) for h in heights if (np.abs(s - h) < 2.0).sum() > 20]
        _, new = _line_fit(np.array(cents), axis)
        moved = math.degrees(math.acos(min(1.0, float(new @ axis))))
        axis = new
        if moved < 0.1:
            break
    return axis


def derive_landmarks(volume: CTVolume) -> RootLandmarks:
    """Root landmarks from the label map (module docstring)."""
    aorta = volume.labels == AORTA
    heart = volume.labels == HEART
    touches = np.zeros_like(aorta)
    for ax in range(3):
        for step in (1, -1):
            touches |= np.roll(heart, step, axis=ax)
    junction = aorta & touches
    clusters, count = ndimage.label(junction, structure=np.ones((3, 3, 3)))
    if count == 0:
        raise ValueError("the aorta and heart labels never touch: no ventriculo-aortic junction")
    sizes = ndimage.sum(junction, clusters, range(1, count + 1))
    junction_pts = volume.centres_lps(np.argwhere(clusters == int(np.argmax(sizes)) + 1))
    c0 = junction_pts.mean(axis=0)

    aorta_pts = volume.centres_lps(np.argwhere(aorta))
    pts = aorta_pts[np.linalg.norm(aorta_pts - c0, axis=1) < ROOT_REGION_MM]
    _, axis = _line_fit(pts, pts.mean(axis=0) - c0)
    axis = _centreline_axis(pts, c0, axis, CENTRELINE_HEIGHTS_MM)
    line_point = pts[np.abs((pts - c0) @ axis - 20.0) < 2.0].mean(axis=0)  # on the fitted centreline

    # ventricle-facing junction voxels: 2 mm further down the axis lies heart
    facing = junction_pts[volume.label_at(junction_pts - 2.0 * axis) == HEART]
    s_junction = float(np.median((facing - line_point) @ axis))
    centre_guess = line_point + (s_junction + ANNULUS_PROBE_MM) * axis

    anterior = np.array([0.0, -1.0, 0.0])
    e1 = unit(anterior - (anterior @ axis) * axis)  # the phantom's RCC direction (cusp rotation 0)
    centre, radius = _section(volume, centre_guess, axis, e1)

    profile = []
    for h in np.arange(0.0, 60.0, PROFILE_STEP_MM):
        profile.append((h, _section(volume, centre + h * axis, axis, e1)[1]))
    prof = np.array(profile)
    low = (prof[:, 0] >= 3.0) & (prof[:, 0] <= 20.0)
    sinus_h, sinus_r = prof[low][np.argmax(prof[low, 1])]
    above = (prof[:, 0] >= sinus_h + 3.0) & (prof[:, 0] <= sinus_h + 25.0)
    stj_h = float(prof[above][np.argmin(prof[above, 1])][0])
    stj_centre, stj_radius = _section(volume, centre + stj_h * axis, axis, e1)
    ascending_r = _section(volume, centre + (stj_h + 20.0) * axis, axis, e1)[1]
    spread = math.degrees(math.acos(min(1.0, float(unit(stj_centre - centre) @ axis))))

    geometry = RootGeometry(_anatomy_params(axis, radius, sinus_r, stj_radius, ascending_r, stj_h))
    hinges = {}
    for cusp in ("NCC", "LCC"):
        u = geometry.direction(geometry.cusp_angles[cusp])[None, :]
        hinges[cusp] = centre + _boundary(volume, centre, u)[0] * u[0]
    return RootLandmarks(
        annulus_centre_lps=centre,
        axis_lps=axis,
        annulus_radius_mm=radius,
        hinge_ncc_lps=hinges["NCC"],
        hinge_lcc_lps=hinges["LCC"],
        sinus_radius_mm=float(sinus_r),
        stj_height_mm=stj_h,
        stj_centre_lps=stj_centre,
        stj_radius_mm=stj_radius,
        ascending_radius_mm=ascending_r,
        axis_spread_deg=spread,
        profile_mm=prof,
        aorta_route_lps=aorta_route(volume, stj_centre),
    )


def aorta_route(volume: CTVolume, stj_centre: np.ndarray) -> np.ndarray:
    """Route of a catheter from the groin (N, 3), LPS, 2 mm steps: up the descending aorta (from
    :data:`ROUTE_BELOW_MM` below the STJ), over the arch, down the ascending aorta to the STJ.

    Per axial slice the aorta label shows two sections (ascending in front, descending behind) up to the
    arch, where they merge: the ascending chain follows the section nearest to the STJ centre slice by
    slice, the descending chain the other one; the arch's apex is the centroid of the merged sections'
    upper half. Smoothed over :data:`ROUTE_SMOOTHING` points.
    """
    aorta = volume.labels == AORTA
    dz = volume.spacing_mm[2]

    def sections(k: int) -> list[np.ndarray]:
        """Centres (x, y) of the aorta's sections in slice ``k``, largest first, fragments left out."""
        labels, count = ndimage.label(aorta[k])
        sizes = ndimage.sum(aorta[k], labels, range(1, count + 1))
        big = [int(i) + 1 for i in np.argsort(-sizes) if sizes[i] >= ROUTE_MIN_SECTION_VOXELS]
        return [
            volume.origin_lps[:2] + np.array(c)[::-1] * volume.spacing_mm[:2]
            for c in ndimage.center_of_mass(aorta[k], labels, big)
        ]

    k_stj = round((stj_centre[2] - volume.origin_lps[2]) / dz)
    ascending, descending, merged = [], [], []
    near = stj_centre[:2]
    for k in range(k_stj, aorta.shape[0]):  # upwards: two sections until the arch merges them
        centres = sections(k)
        z = volume.origin_lps[2] + k * dz
        if len(centres) >= 2 and not merged:
            order = np.argsort([np.linalg.norm(c - near) for c in centres[:2]])
            near = centres[order[0]]
            ascending.append([*near, z])
            descending.append([*centres[order[1]], z])
        elif centres:
            merged.append([*centres[0], z])
        else:
            break
    below = []
    near = np.array(descending[0][:2])
    for k in range(k_stj - 1, max(k_stj - round(ROUTE_BELOW_MM / dz), 0) - 1, -1):  # downwards
        centres = sections(k)
        if not centres:
            break
        near = min(centres, key=lambda c: float(np.linalg.norm(c - near)))
        below.append([*near, volume.origin_lps[2] + k * dz])
    arch = np.array(merged[len(merged) // 2 :]).mean(axis=0)
    nodes = np.vstack([np.array(below[::-1]), np.array(descending), arch, np.array(ascending)[::-1]])
    kernel = np.ones(ROUTE_SMOOTHING) / ROUTE_SMOOTHING
    padded = np.pad(nodes, ((ROUTE_SMOOTHING // 2,) * 2, (0, 0)), mode="edge")
    smooth = np.stack([np.convolve(padded[:, i], kernel, mode="valid") for i in range(3)], axis=1)
    length = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(smooth, axis=0), axis=1))])
    at = np.arange(0.0, length[-1], 2.0)
    return np.stack([np.interp(at, length, smooth[:, i]) for i in range(3)], axis=1)


def _anatomy_params(
    axis: np.ndarray, radius: float, sinus_r: float, stj_r: float, ascending_r: float, stj_h: float
) -> AnatomyParams:
    """AnatomyParams of the phantom's root with the CT's measures [mm] (body fields unused by the CT)."""
    return AnatomyParams(
        root_axis_lps=tuple(float(v) for v in axis),
        annulus_diameter_mm=2.0 * radius,
        sinus_ratio=sinus_r / radius,
        stj_ratio=stj_r / radius,
        ascending_ratio=ascending_r / radius,
        sinus_height_mm=stj_h,
        cusp_rotation_deg=0.0,
        calcium_blobs=0,
        thorax_semi_axes_mm=(150.0, 110.0),
        thorax_centre_mm=(0.0, 0.0),
        spine_offset_mm=0.0,
        detail_seed=0,
    )


class CTRoot(RootGeometry):
    """The phantom's root geometry with the CT's measures, in the CT root frame (origin: annulus centre).

    The devices (rail, pigtail curl on the leaflet model) are placed on this parametric root; the
    anatomical keypoints come from the CT: :meth:`nadir` returns the derived hinge points and
    ``stj_centre`` the STJ ring's centre; ``aorta_route`` is the catheter route through the aorta.
    """

    def __init__(self, landmarks: RootLandmarks) -> None:
        lm = landmarks
        super().__init__(
            _anatomy_params(
                lm.axis_lps,
                lm.annulus_radius_mm,
                lm.sinus_radius_mm,
                lm.stj_radius_mm,
                lm.ascending_radius_mm,
                lm.stj_height_mm,
            )
        )
        self.landmarks = lm
        origin = lm.annulus_centre_lps
        self._hinges = {"NCC": lm.hinge_ncc_lps - origin, "LCC": lm.hinge_lcc_lps - origin}
        self.stj_centre = lm.stj_centre_lps - origin
        self.aorta_route = lm.aorta_route_lps - origin

    def nadir(self, cusp: str) -> np.ndarray:
        """The CT-derived hinge point of the NCC or LCC (root frame); the phantom's for the RCC."""
        return self._hinges[cusp].copy() if cusp in self._hinges else super().nadir(cusp)


@functools.lru_cache(maxsize=1)
def ct_landmarks() -> RootLandmarks:
    """Landmarks of the shipped CT (cached per process)."""
    return derive_landmarks(load_ct())


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotation matrix turning unit ``a`` onto unit ``b`` (about their common normal)."""
    axis = np.cross(a, b)
    s = float(np.linalg.norm(axis))
    if s < 1e-12:
        return np.eye(3)
    angle = math.atan2(s, float(a @ b))
    return np.column_stack([rotate_about(e, axis, angle) for e in np.eye(3)])


def ct_case(
    seed: int,
    root: CTRoot,
    *,
    lao_deg: float | None = None,
    cran_deg: float | None = None,
    magnification: float | None = None,
) -> CaseParams:
    """The stylised case ``seed`` moved into the CT's anatomy (root frame: origin at the annulus centre).

    Devices, motion, contrast and the C-arm chain are drawn as for the stylised renderer; what depends
    on the root follows the CT's: the valve size (annulus), the cardiac direction (the same angle to the
    root axis), the view's secondary angle (the same offset from the CT root's S-curve unless pinned)
    and the isocentre (the same height above the annulus and offset in the image plane).
    """
    case = sample_case(seed, lao_deg=lao_deg, magnification=magnification)
    old_axis = np.asarray(case.anatomy.root_axis_lps)
    new_axis = root.axis
    turn = _rotation_between(old_axis, new_axis)
    anatomy = replace(
        _anatomy_params(
            new_axis,
            root.radius,
            root.sinus_radius,
            root.stj_radius,
            root.ascending_radius,
            root.sinus_height,
        ),
        detail_seed=case.anatomy.detail_seed,
    )
    valve_d, height = valve_for_annulus(anatomy.annulus_diameter_mm)
    devices = replace(case.devices, valve_diameter_mm=valve_d, frame_height_mm=height)
    motion = replace(
        case.motion, cardiac_direction_lps=tuple(turn @ np.asarray(case.motion.cardiac_direction_lps))
    )

    view = case.imaging.view
    jitter = view.cran_deg - s_curve_cran_deg(old_axis, view.lao_deg)
    cran = float(np.clip(s_curve_cran_deg(new_axis, view.lao_deg) + jitter, *CRAN_RANGE_DEG))
    if cran_deg is not None:
        cran = float(cran_deg)
    _, x_old, y_old = view.axes()
    height_mm, ax, ay = np.linalg.solve(np.column_stack([old_axis, x_old, y_old]), view.isocentre_lps)
    moved = CArmView(view.lao_deg, cran, view.sid_mm, view.sod_mm, view.detector_fov_mm)
    _, x_new, y_new = moved.axes()
    iso = height_mm * new_axis + ax * x_new + ay * y_new
    view = replace(moved, isocentre_lps=tuple(float(v) for v in iso))
    imaging = replace(case.imaging, view=view)
    return CaseParams(case.seed, anatomy, devices, motion, imaging)
