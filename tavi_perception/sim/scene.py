"""One case at one image size: precomputed attenuation maps and the per-frame X-ray image formation.

Precomputed once per case (the expensive part, ~0.1-0.5 s):

- ``static``: thorax soft tissue (analytic chords through an elliptic cylinder), vertebrae and pedicles
  (capped elliptic cylinders), ribs (tubes), collimator shutters and vignetting, as ``-log`` terms.
- ``lungs``: air deficit of the lungs outside heart and mediastinum (ray-marched at low resolution,
  smooth), moved per frame by respiration and the heart's pulsation (one affine warp).
- ``root_contrast``: iodinated lumen of sinuses and ascending aorta at full fill, diluting upwards
  (ray-marched implicit root), and the coronary arteries (tubes).
- ``root_static``: calcium, pigtail and guidewire.
  Both ride on the root: one affine warp per frame, fitted to the exact projections of anchor points.

Per frame: ``att = static + warp(lungs) + warp(root_static + fill * root_contrast) + devices``, where the
delivery system (shaft, capsule, crimped valve, marker band, anchor, stent lattice) is drawn from its
projected 3D geometry. Then quantum noise (Gaussian approximation of Poisson in the log domain, standard
deviation ``1 / sqrt(N)`` with ``N`` the detected photons per pixel), detector blur and the display
tone curve: more attenuation is darker (standard fluoroscopy display).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

from tavi_perception.keypoints import NUM_KEYPOINTS, Kp
from tavi_perception.sim.carm import Projector
from tavi_perception.sim.case import CaseParams
from tavi_perception.sim.delivery import DeliveryRail, DeliveryState, DeliverySystem, arc_samples
from tavi_perception.sim.motion import Motion
from tavi_perception.sim.phantom import (
    ASCENDING_TOP_MM,
    Pigtail,
    RootGeometry,
    make_body,
    make_calcium,
    make_coronaries,
    make_pigtail,
    unit,
)
from tavi_perception.sim.raster import (
    Rasteriser,
    axis_cylinder_interval,
    capped_cylinder_chords,
    ellipsoid_chords,
    elliptic_cylinder_interval,
    march_chords,
)

# Linear attenuation [1/mm] (effective, ~70 kVp), relative to the surrounding medium where noted.
MU_TISSUE = 0.020
MU_LUNG_DEFICIT = 0.013  # tissue minus aerated lung
MU_VERTEBRA = 0.016  # cortical shell over tissue
MU_VERTEBRA_CORE = -0.006  # cancellous core relative to the shell
MU_RIB = 0.025
MU_CONTRAST = 0.060  # iodinated blood over blood
MU_CALCIUM = 0.060
MU_PIGTAIL = 0.80
MU_GUIDEWIRE = 1.0
MU_SHAFT = 0.20
MU_CAPSULE = 0.25
MU_CRIMPED = 0.15
MU_INNER_SHAFT = 0.08
MU_MARKER = 1.5
MU_ANCHOR = 0.30
MU_STRUT = 3.0
STRUT_AREA_MM2 = 0.09  # nitinol strut cross-section
SHUTTER_ATTENUATION = 3.5  # lead shutter, -log transmission
SHUTTER_SOFT_PX_AT_512 = 2.0

PIGTAIL_RADIUS_MM = 1.0  # 6 Fr
GUIDEWIRE_RADIUS_MM = 0.45  # 0.035"
RIB_RADIUS_MM = 5.0
INNER_SHAFT_RADIUS_MM = 0.9
MARKER_HALF_LENGTH_MM = 1.0
ANCHOR_HALF_LENGTH_MM = 1.5
ANCHOR_RADIUS_MM = 2.0
CM_BEND_VIEW_MM = 5.0  # CM counts as in view only with the rail this far either side of it in view too
CM_SAMPLE_MM = 0.25  # rail sampling for the projected curvature
CM_MIN_TURN_DEG = 20.0  # CM is labelled only where the projected bend turns at least this much

LUNG_GRID = 128  # ray-march grid for the smooth lung/heart map
LUNG_SAMPLES = 48
ROOT_SAMPLE_MM = 0.6  # ray spacing for the root lumen at the isocentre
ROOT_SAMPLES = 48

DISPLAY_MID = 0.52  # display level (fraction of full scale) of the median attenuation
DISPLAY_GAIN_PER_ATT = 0.20  # display fraction per unit of attenuation on the dark side
DISPLAY_ROOM = 0.36  # the bright side approaches DISPLAY_MID + DISPLAY_ROOM


def projected_bend_point(rail: DeliveryRail, project: Callable[[np.ndarray], np.ndarray], offset: np.ndarray):
    """CM as an annotator sees it: the rail point of largest curvature *in the image*, and the bend's turn.

    The rail's 3D curvature peaks mid-bend, but a projection foreshortens the bend unevenly, so the
    image's most-curved point (what one can click) moves along the rail with the view. Returns
    ``(sigma_mm, turn_deg)``: the arc length of that point and the angle between the projected tangents at
    the two ends of the bend (small when the bend plane is seen edge-on and there is no corner to see).
    """
    start = -rail.straight_mm
    sigma = np.arange(start + 2.0, start - rail.bend_length_mm - 2.0, -CM_SAMPLE_MM)
    px = project(rail.point(sigma) + offset)
    d1 = np.gradient(px, axis=0)
    d2 = np.gradient(d1, axis=0)
    speed = np.maximum(np.hypot(d1[:, 0], d1[:, 1]), 1e-9)
    curvature = np.abs(d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]) / speed**3
    first, last = d1[0] / speed[0], d1[-1] / speed[-1]
    turn_deg = math.degrees(math.atan2(abs(first[0] * last[1] - first[1] * last[0]), float(first @ last)))
    return float(sigma[int(np.argmax(curvature[2:-2])) + 2]), turn_deg


def _cross3(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cross product of (N, 3) with (3,) (np.cross has a large per-call overhead)."""
    return np.stack(
        [a[:, 1] * b[2] - a[:, 2] * b[1], a[:, 2] * b[0] - a[:, 0] * b[2], a[:, 0] * b[1] - a[:, 1] * b[0]],
        axis=1,
    )


class Scene:
    """Precomputed maps and geometry of one case at one image size; renders frames."""

    def __init__(self, case: CaseParams, size_px: int = 512, bit_depth: int = 8) -> None:
        if bit_depth not in (8, 16):
            raise ValueError(f"bit depth must be 8 or 16, got {bit_depth}")
        self.case = case
        self.size_px = int(size_px)
        self.bit_depth = bit_depth
        self.projector = Projector(case.imaging.view, self.size_px)
        self.mm_per_px = self.projector.mm_per_px
        self.root = RootGeometry(case.anatomy)
        detail = np.random.default_rng([case.anatomy.detail_seed, 1])
        self.body = make_body(case.anatomy, self.root, detail)
        self._place_devices(make_pigtail, detail)
        self.coronaries = make_coronaries(self.root, detail)
        self.calcium = make_calcium(self.root, case.anatomy.calcium_blobs, detail)
        self.motion = Motion(case.motion)
        self.raster = Rasteriser(self.size_px)
        self.fov_px = self._fov()
        self._e_stj = unit(np.cross(self.root.axis, self.projector.beam))  # STJ ends seen side-on
        self._stj_centre = self.root.point(self.root.sinus_height, 0.0, 0.0)

        self.static = self._static_map()
        self.lungs = self._lung_map()
        self.root_contrast, self.root_static = self._root_maps()
        self._root_anchors = self._anchors_root()
        self._body_anchors = self.body.heart.centre + np.vstack(
            [np.zeros(3), 60.0 * np.eye(3), -60.0 * np.eye(3)]
        )
        base = self.static + self.lungs + self.root_static
        self._window(base)
        s = self.size_px
        self._att = np.empty((s, s), np.float32)
        self._tmp = np.empty((s, s), np.float32)
        self._tmp2 = np.empty((s, s), np.float32)
        self._noise = np.empty((s, s), np.float32)
        self.blur_px = case.imaging.detector_blur_mm / self.projector.pixel_spacing_mm

    # ----------------------------------------------------------------- precomputation

    def _place_devices(self, pigtail: Callable[..., Pigtail], detail: np.random.Generator) -> None:
        """The pigtail (``pigtail(root, loop radius, loop azimuth, facing)`` for this root), the delivery
        system and its guidewire, from the case's devices and this view."""
        dev = self.case.devices
        self.pigtail = pigtail(
            self.root, dev.pigtail_loop_radius_mm, dev.pigtail_loop_azimuth_deg, self.projector.x_img
        )
        self.delivery = DeliverySystem(self.root, dev, self.projector.x_img, self.projector.y_img)
        self.guidewire = self.delivery.guidewire_path(
            dev.guidewire_loop_radius_mm, detail.uniform(0, 2 * np.pi)
        )

    def _fov(self) -> tuple[float, float, float, float]:
        """Uncollimated area (x0, y0, x1, y1) in pixels."""
        left, right, top, bottom = self.case.imaging.shutters
        s = self.size_px
        return left * s, top * s, s - right * s, s - bottom * s

    def _rays_full(self) -> np.ndarray:
        return self.projector.pixel_grid_rays(0, 0, self.size_px, self.size_px)

    def _window_of(self, points: np.ndarray, margin_px: float = 2.0) -> tuple[int, int, int, int] | None:
        px = self.projector.project(points)
        lo = np.floor(px.min(axis=0) - margin_px).astype(int)
        hi = np.ceil(px.max(axis=0) + margin_px).astype(int)
        x0, y0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
        x1, y1 = min(int(hi[0]), self.size_px), min(int(hi[1]), self.size_px)
        return None if x1 <= x0 or y1 <= y0 else (x0, y0, x1, y1)

    def _add_capped(self, att: np.ndarray, cyl, mu: float, scale: float = 1.0) -> None:
        (cx, cy), (ax, ay) = cyl.centre_xy, cyl.semi_xy
        ax, ay = ax * scale, ay * scale
        corners = np.array(
            [[cx + sx * ax, cy + sy * ay, z] for sx in (-1, 1) for sy in (-1, 1) for z in (cyl.z0, cyl.z1)]
        )
        win = self._window_of(corners)
        if win is None:
            return
        x0, y0, x1, y1 = win
        rays = self.projector.pixel_grid_rays(x0, y0, x1 - x0, y1 - y0)
        chord = capped_cylinder_chords(self.projector.source_lps, rays, (cx, cy), (ax, ay), cyl.z0, cyl.z1)
        att[y0:y1, x0:x1] += (mu * chord).astype(np.float32)

    def _static_map(self) -> np.ndarray:
        proj = self.projector
        s = self.size_px
        rays = self._rays_full()
        t0, t1 = elliptic_cylinder_interval(
            proj.source_lps, rays, self.body.thorax_centre_xy, self.body.thorax_semi_xy
        )
        att = (MU_TISSUE * (t1 - t0)).astype(np.float32)
        for v in self.body.vertebrae:
            self._add_capped(att, v, MU_VERTEBRA)
            self._add_capped(att, v, MU_VERTEBRA_CORE, scale=0.85)
        for p in self.body.pedicles:
            self._add_capped(att, p, MU_VERTEBRA)
        for rib in self.body.ribs:
            px = proj.project(rib)
            r_px = RIB_RADIUS_MM / float(np.mean(proj.object_mm_per_px(rib)))
            self.raster.tube(att, px, r_px, RIB_RADIUS_MM, MU_RIB, wall_fraction=0.5)
        # collimator shutters with a soft penumbra, and vignetting (intensity loss towards the corners)
        x0, y0, x1, y1 = self.fov_px
        open_ = np.zeros((s, s), np.float32)
        open_[round(y0) : round(y1), round(x0) : round(x1)] = 1.0
        soft = SHUTTER_SOFT_PX_AT_512 * s / 512
        open_ = cv2.GaussianBlur(open_, (0, 0), soft)
        att += SHUTTER_ATTENUATION * (1.0 - open_)
        c = (np.arange(s) + 0.5) / s - 0.5
        r2 = (c[None, :] ** 2 + c[:, None] ** 2) / 0.5
        att += (-np.log(1.0 - self.case.imaging.vignetting * r2)).astype(np.float32)
        return att

    def _lung_map(self) -> np.ndarray:
        proj = self.projector
        g = LUNG_GRID
        step = self.size_px / g
        xs = (np.arange(g) + 0.5) * step
        gx, gy = np.meshgrid(xs, xs)
        rays = proj.rays(gx, gy)
        t0, t1 = elliptic_cylinder_interval(
            proj.source_lps, rays, self.body.thorax_centre_xy, self.body.thorax_semi_xy
        )
        chord = march_chords(proj.source_lps, rays, t0, t1, self.body.lung_contains, LUNG_SAMPLES)
        low = (-MU_LUNG_DEFICIT * chord).astype(np.float32)
        return cv2.resize(low, (self.size_px, self.size_px), interpolation=cv2.INTER_LINEAR)

    def _root_maps(self) -> tuple[np.ndarray, np.ndarray]:
        proj, root = self.projector, self.root
        s = self.size_px
        contrast = np.zeros((s, s), np.float32)
        ring = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        bound = np.vstack(
            [
                root.point(h, root.max_radius, a)
                for h in (0.0, root.sinus_height, ASCENDING_TOP_MM)
                for a in ring
            ]
        )
        win = self._window_of(bound)
        if win is not None:
            x0, y0, x1, y1 = win
            step = max(1, round(ROOT_SAMPLE_MM / self.mm_per_px))
            rays = proj.pixel_grid_rays(x0, y0, x1 - x0, y1 - y0, step)
            t0, t1 = axis_cylinder_interval(
                proj.source_lps, rays, root.centre, root.axis, root.max_radius, 0.0, ASCENDING_TOP_MM
            )
            chord = march_chords(proj.source_lps, rays, t0, t1, root.contrast_density, ROOT_SAMPLES)
            low = (MU_CONTRAST * chord).astype(np.float32)
            h, w = low.shape
            up = cv2.resize(low, (w * step, h * step), interpolation=cv2.INTER_LINEAR)
            contrast[y0:y1, x0:x1] = up[: y1 - y0, : x1 - x0]
        for vessel in self.coronaries:
            r_px = vessel.radius_mm / float(np.mean(proj.object_mm_per_px(vessel.path)))
            self.raster.tube(contrast, proj.project(vessel.path), r_px, vessel.radius_mm, MU_CONTRAST)

        static = self._calcium_map()
        for path, radius, mu, wall in (
            (self.pigtail.path, PIGTAIL_RADIUS_MM, MU_PIGTAIL, 0.6),
            (self.guidewire, GUIDEWIRE_RADIUS_MM, MU_GUIDEWIRE, 1.0),
        ):
            r_px = radius / float(np.median(proj.object_mm_per_px(path)))
            self.raster.tube(static, proj.project(path), r_px, radius, mu, wall_fraction=wall)
        return contrast, static

    def _calcium_map(self) -> np.ndarray:
        """Attenuation [line integral] of the leaflets' calcium blobs, each within its own window."""
        s, proj = self.size_px, self.projector
        static = np.zeros((s, s), np.float32)
        for blob in self.calcium:
            corners = blob.centre + np.array(
                [[x, y, z] for x in (-3, 3) for y in (-3, 3) for z in (-3, 3)], float
            )
            win = self._window_of(corners)
            if win is None:
                continue
            x0, y0, x1, y1 = win
            rays = proj.pixel_grid_rays(x0, y0, x1 - x0, y1 - y0)
            chord = ellipsoid_chords(proj.source_lps, rays, blob.centre, blob.axes, blob.semi_mm)
            static[y0:y1, x0:x1] += (MU_CALCIUM * chord).astype(np.float32)
        return static

    def _anchors_root(self) -> np.ndarray:
        r = self.root
        return np.vstack(
            [
                r.centre,
                r.point(r.sinus_height, 0.0, 0.0),
                r.point(60.0, 0.0, 0.0),
                r.point(0.0, r.radius, 0.0),
                r.point(0.0, r.radius, 0.5 * np.pi),
                r.point(0.0, r.radius, np.pi),
                r.point(0.0, r.radius, 1.5 * np.pi),
                self.pigtail.tip_point,
            ]
        )

    def _window(self, base_att: np.ndarray) -> None:
        """Display curve and noise level from the noise-free base image inside the collimated field.

        The display maps ``d = att - att_ref`` (``att_ref``: median attenuation, the heart grey) to
        ``mid - gain * d`` on the dark side and compresses the bright side (lungs) exponentially towards
        ``mid + room``, like the tone curve of a fluoroscopy display: tissue mid-grey, lungs light,
        contrast and metal dark.
        """
        x0, y0, x1, y1 = (round(v) for v in self.fov_px)
        img = self.case.imaging
        self.reference_att = float(np.median(base_att[y0:y1:2, x0:x1:2]))
        self.display_gain = DISPLAY_GAIN_PER_ATT * img.window_scale
        self.display_mid = DISPLAY_MID + img.window_offset
        photons = img.photons_per_px * (512.0 / self.size_px) ** 2
        self._noise_scale = math.exp(-0.5 * self.reference_att) / math.sqrt(photons)

    # ----------------------------------------------------------------- per frame

    def _affine(self, anchors: np.ndarray, moved: np.ndarray) -> np.ndarray:
        """2x3 OpenCV affine (pixel centres at integers) mapping the rest projection to the moved one."""
        src = self.projector.project(anchors) - 0.5
        dst = self.projector.project(moved) - 0.5
        a = np.hstack([src, np.ones((len(src), 1))])
        m, *_ = np.linalg.lstsq(a, dst, rcond=None)
        return m.T

    def keypoints(self, t_s: float, state: DeliveryState) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Projected keypoints (11, 2) at ``t_s`` and extras: the moved 3D points used (for the 3D truth)
        and the projected rail either side of CM (``cm_bend_px``, for :meth:`keypoints_in_view`).

        Side 1 of each pair (AA, STJ, FE) is the end with the smaller image x, so a horizontal flip
        swaps the labels.
        """
        proj, root = self.projector, self.root
        offset = self.motion.root_mm(t_s)
        dev = self.delivery.points(state)
        rail = self.delivery.rail_for(state)
        tangent = rail.frame(np.array([state.tip_sigma_mm]))[0]
        e_stj, stj_c = self._e_stj, self._stj_centre
        e_fe = unit(_cross3(tangent, proj.beam)[0])
        pts = np.zeros((NUM_KEYPOINTS, 3))
        pts[Kp.AA1], pts[Kp.AA2] = root.nadir("NCC"), root.nadir("LCC")
        pts[Kp.STJ1], pts[Kp.STJ2] = stj_c - root.stj_radius * e_stj, stj_c + root.stj_radius * e_stj
        cm_sigma, cm_turn_deg = projected_bend_point(rail, proj.project, offset)
        pts[Kp.CP], pts[Kp.CM], pts[Kp.CD], pts[Kp.CT] = dev.cp, rail.point(cm_sigma), dev.cd, dev.ct
        pts[Kp.PT] = self.pigtail.tip_point
        pts[Kp.FE1], pts[Kp.FE2] = dev.ct - dev.inflow_radius_mm * e_fe, dev.ct + dev.inflow_radius_mm * e_fe
        pts = pts + offset
        px = proj.project(pts)
        for a, b in ((Kp.AA1, Kp.AA2), (Kp.STJ1, Kp.STJ2), (Kp.FE1, Kp.FE2)):
            if px[a, 0] > px[b, 0]:
                px[[a, b]] = px[[b, a]]
                pts[[a, b]] = pts[[b, a]]
        around_cm = cm_sigma + np.array([-CM_BEND_VIEW_MM, CM_BEND_VIEW_MM])
        bend_px = proj.project(rail.point(around_cm) + offset)
        extra = {
            "points_lps": pts,
            "offset_lps": offset,
            "cm_bend_px": bend_px,
            "cm_turn_deg": np.array(cm_turn_deg),
        }
        return px, extra

    def in_fov(self, xy_px: np.ndarray) -> np.ndarray:
        """Whether image points are inside the image and the collimated field."""
        x0, y0, x1, y1 = self.fov_px
        x, y = xy_px[..., 0], xy_px[..., 1]
        return (x >= x0) & (x < x1) & (y >= y0) & (y < y1)

    def keypoints_in_view(self, keypoints_px: np.ndarray, extra: dict[str, np.ndarray]) -> np.ndarray:
        """(11,) in the field; CM also needs the bend around it in the field (``extra`` of :meth:`keypoints`).

        A bending point can only be told from the image when the bend around it is seen: with the bend cut
        off by the image border, CM is not labelled (as an annotator would not mark it).
        """
        in_view = self.in_fov(keypoints_px)
        in_view[Kp.CM] &= (
            bool(self.in_fov(extra["cm_bend_px"]).all()) and float(extra["cm_turn_deg"]) >= CM_MIN_TURN_DEG
        )
        return in_view

    def _draw_devices(self, att: np.ndarray, state: DeliveryState, offset: np.ndarray) -> None:
        """Delivery system at ``state``, moved by ``offset``: one rail evaluation and one projection."""
        dev, p, proj, ras = self.delivery, self.delivery.params, self.projector, self.raster
        rail = dev.rail_for(state)
        sig, r = state.tip_sigma_mm, state.retraction_mm
        cap_prox = sig - r - p.capsule_length_mm
        bands = np.array([sig - r - p.marker_offset_mm, sig - p.cp_offset_mm])
        # (sigma samples, radius, mu, wall fraction) of each tube, distal to proximal
        tubes = [
            (arc_samples(cap_prox, rail.sigma_min, 2.0), p.shaft_radius_mm, MU_SHAFT, 0.45),
            (arc_samples(sig - r, cap_prox, 1.5), p.capsule_radius_mm, MU_CAPSULE, 0.3),
        ]
        if r < p.frame_height_mm:
            tubes.append(
                (arc_samples(sig - r, sig - p.frame_height_mm, 1.5), p.crimped_radius_mm, MU_CRIMPED, 1.0)
            )
        if r > 0:
            tubes.append(
                (arc_samples(sig + 0.5, sig - r - 1.0, 1.5), INNER_SHAFT_RADIUS_MM, MU_INNER_SHAFT, 1.0)
            )
        sigma = np.concatenate([bands, *(t[0] for t in tubes)])
        pts = rail.point(sigma) + offset
        tangents = rail.frame(bands)[0]
        across = _cross3(tangents, proj.beam)
        across /= np.linalg.norm(across, axis=1, keepdims=True)
        band_pts = np.vstack([pts[:2], pts[:2] + tangents, pts[:2] + across])
        px = proj.project(np.vstack([pts, band_pts]))
        mm_px = float(proj.object_mm_per_px(pts[0]))
        start = len(bands)
        for samples, radius_mm, mu, wall in tubes:
            ras.tube(
                att, px[start : start + len(samples)], radius_mm / mm_px, radius_mm, mu, wall_fraction=wall
            )
            start += len(samples)
        centre, unit_along, unit_across = px[start : start + 2], px[start + 2 : start + 4], px[start + 4 :]
        for i, (half_mm, radius_mm, mu, wall) in enumerate(
            (
                (MARKER_HALF_LENGTH_MM, p.capsule_radius_mm + 0.1, MU_MARKER, 0.06),
                (ANCHOR_HALF_LENGTH_MM, ANCHOR_RADIUS_MM, MU_ANCHOR, 1.0),
            )
        ):
            along = half_mm * (unit_along[i] - centre[i])
            ras.band(att, centre[i], along, radius_mm * (unit_across[i] - centre[i]), radius_mm, mu, wall)
        rings_px = proj.project(dev.lattice(state, p.stent_columns) + offset)
        ras.lines(att, list(rings_px), MU_STRUT * STRUT_AREA_MM2 / mm_px, closed=False)

    def attenuation(self, t_s: float, state: DeliveryState, contrast: float) -> np.ndarray:
        """Noise-free line integral map ``att`` at ``t_s`` (a view of an internal buffer)."""
        s = self.size_px
        motion = self.motion
        offset = motion.root_mm(t_s)
        resp = motion.respiratory_mm(t_s)
        pulse = self.case.motion.heart_pulsation * float(motion.cardiac_level(t_s))
        moved_body = self._body_anchors + resp - pulse * (self._body_anchors - self.body.heart.centre)
        att, tmp, tmp2 = self._att, self._tmp, self._tmp2
        cv2.warpAffine(
            self.lungs,
            self._affine(self._body_anchors, moved_body),
            (s, s),
            dst=tmp,
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        np.add(self.static, tmp, out=att)
        cv2.scaleAdd(self.root_contrast, float(contrast), self.root_static, dst=tmp2)
        cv2.warpAffine(
            tmp2,
            self._affine(self._root_anchors, self._root_anchors + offset),
            (s, s),
            dst=tmp,
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0.0,
        )
        att += tmp
        self._draw_devices(att, state, offset)
        return att

    def render(self, t_s: float, state: DeliveryState, contrast: float, noise_seed: int) -> np.ndarray:
        """The displayed image (uint8 or uint16) at ``t_s``; ``noise_seed`` fixes the quantum noise."""
        att = self.attenuation(t_s, state, contrast)
        sigma, noise = self._tmp, self._noise
        np.multiply(att, 0.5, out=sigma)
        cv2.exp(sigma, sigma)
        sigma *= self._noise_scale
        cv2.setRNGSeed(int(noise_seed) & 0x7FFFFFFF)
        cv2.randn(noise, 0.0, 1.0)
        noise *= sigma
        np.add(noise, att, out=noise)  # attenuation with quantum noise (log domain)
        if self.blur_px > 0.05:
            cv2.GaussianBlur(noise, (0, 0), self.blur_px, dst=noise)
        d, pos = noise, self._tmp2
        d -= self.reference_att
        np.maximum(d, 0.0, out=pos)
        np.minimum(d, 0.0, out=d)
        g, room = self.display_gain, DISPLAY_ROOM
        d *= g / room
        cv2.exp(d, d)
        top = 255.0 if self.bit_depth == 8 else 65535.0
        # y = mid - g * max(d, 0) + room * (1 - exp(g * min(d, 0) / room)), in [0, 1] before clipping
        d *= -room * top
        d += (self.display_mid + room) * top + 0.5
        pos *= g * top
        d -= pos
        np.clip(d, 0.0, top, out=d)
        return d.astype(np.uint8 if self.bit_depth == 8 else np.uint16)
