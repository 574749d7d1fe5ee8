"""The CT scene of one case: frames composed from the view bank, devices drawn from their 3D models.

Per frame::

    att = static + collimation + sum_k warp_k(moving_k + fill * iodine_k) + pigtail + guidewire + devices

with ``warp_k`` the exact image motion of depth slab ``k`` under the root's rigid 3D displacement
(cardiac + respiratory, ``motion.Motion.root_mm``; bank.py), and the pigtail, guidewire and delivery
system projected from 3D at their moved positions (exact perspective). Quantum noise, detector blur and
the display tone curve are the stylised renderer's (``scene.Scene.render``), with the noise level and
display window set from this case's own median attenuation. :meth:`CTScene.direct_attenuation` renders
the same frame by ray casting the moved volumes (the reference the bank is checked against).

The keypoints and the truth are the stylised scene's (``Scene.keypoints``) on the CT root
(``anatomy.CTRoot``): AA1/AA2 the label-derived hinge points, STJ1/STJ2 the ends of the label-derived STJ
ring seen side-on, the devices' points from their models placed in the CT root frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from tavi_perception.sim.carm import Projector
from tavi_perception.sim.case import CaseParams
from tavi_perception.sim.ct.anatomy import CTRoot
from tavi_perception.sim.ct.bank import STEP_FRACTION, ViewBank
from tavi_perception.sim.ct.raycast import cast
from tavi_perception.sim.delivery import DeliveryState
from tavi_perception.sim.motion import Motion
from tavi_perception.sim.phantom import Pigtail, make_pigtail, unit
from tavi_perception.sim.raster import Rasteriser
from tavi_perception.sim.scene import (
    GUIDEWIRE_RADIUS_MM,
    MU_GUIDEWIRE,
    MU_PIGTAIL,
    PIGTAIL_RADIUS_MM,
    SHUTTER_ATTENUATION,
    SHUTTER_SOFT_PX_AT_512,
    Scene,
)

PIGTAIL_JOIN_MM = 15.0  # the phantom pigtail is kept up to this height above PT, the CT route above
ROUTE_END_ABOVE_STJ_MM = 20.0  # the route is followed down to this height above the STJ


def _cubic(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, p3: np.ndarray, n: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3


def ct_pigtail(root: CTRoot, loop_radius_mm: float, loop_azimuth_deg: float, facing: np.ndarray) -> Pigtail:
    """The phantom's pigtail (curl resting in the NCC, PT) with its shaft along the CT's aorta route
    (from the groin up the descending aorta, over the arch, down the ascending aorta)."""
    stylised = make_pigtail(root, loop_radius_mm, loop_azimuth_deg, facing)
    n = root.axis
    height = (stylised.path - stylised.tip_point) @ n
    lower = stylised.path[int(np.nonzero(height >= PIGTAIL_JOIN_MM)[0].max()) + 1 :]
    route = root.aorta_route
    above = np.nonzero(route @ n >= root.sinus_height + ROUTE_END_ABOVE_STJ_MM)[0]
    upper = route[: int(above.max()) + 1]
    p0, p3 = upper[-1], lower[0]
    reach = 0.4 * float(np.linalg.norm(p3 - p0))
    bridge = _cubic(p0, p0 + reach * unit(upper[-1] - upper[-2]), p3 + reach * n, p3, 20)
    return Pigtail(np.vstack([upper[:-1], bridge, lower[1:]]), stylised.tip_point)


def _content(image: np.ndarray, floor: float = 1e-5) -> tuple[np.ndarray, tuple[int, int]]:
    """(the crop of ``image`` holding all of its values above ``floor`` in magnitude, its top-left corner)."""
    rows = np.nonzero(np.abs(image).max(axis=1) > floor)[0]
    cols = np.nonzero(np.abs(image).max(axis=0) > floor)[0]
    if len(rows) == 0:
        return image[:0, :0], (0, 0)
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return np.ascontiguousarray(image[y0:y1, x0:x1]), (int(x0), int(y0))


class CTScene(Scene):
    """A :class:`~tavi_perception.sim.scene.Scene` whose body, heart and contrast come from the CT bank.

    It shares the stylised scene's per-frame machinery (keypoints, visibility field, device drawing,
    noise and display) and replaces its precomputed analytic maps by the bank's layers of this case's
    view; the case must be in the CT root frame (``anatomy.ct_case``).
    """

    def __init__(self, case: CaseParams, bank: ViewBank, size_px: int = 512, bit_depth: int = 8) -> None:
        if bit_depth not in (8, 16):
            raise ValueError(f"bit depth must be 8 or 16, got {bit_depth}")
        self.case = case
        self.bank = bank
        self.size_px = int(size_px)
        self.bit_depth = bit_depth
        self.projector = Projector(case.imaging.view, self.size_px)
        self.mm_per_px = self.projector.mm_per_px
        self.root = bank.volumes.root
        detail = np.random.default_rng([case.anatomy.detail_seed, 1])
        self._place_devices(ct_pigtail, detail)
        self.motion = Motion(case.motion)
        self.raster = Rasteriser(self.size_px)
        self.fov_px = self._fov()
        self._e_stj = unit(np.cross(self.root.axis, self.projector.beam))
        self._stj_centre = self.root.stj_centre

        self.layers = bank.layers(case.imaging.view, self.size_px)
        self.static = (self.layers.static + self._collimation()).astype(np.float32)
        m = self.layers.margin_px
        self._window(self.static + self.layers.moving.sum(axis=0)[m : m + self.size_px, m : m + self.size_px])
        s = self.size_px
        self._att = np.empty((s, s), np.float32)
        self._tmp = np.empty((s, s), np.float32)
        self._tmp2 = np.empty((s, s), np.float32)  # Scene.render's
        layers = self.layers
        self._moving_slabs = [
            (crop, float(d), False)
            for crop, d in zip(map(_content, layers.moving), layers.moving_depth_mm, strict=True)
            if crop[0].size
        ]
        self._iodine_slabs = [
            (crop, float(d), True)
            for crop, d in zip(map(_content, layers.iodine), layers.iodine_depth_mm, strict=True)
            if crop[0].size
        ]
        self._noise = np.empty((s, s), np.float32)
        self.blur_px = case.imaging.detector_blur_mm / self.projector.pixel_spacing_mm

    def _collimation(self) -> np.ndarray:
        """Collimator shutters (soft-edged) and vignetting as attenuation, as in the stylised scene."""
        s = self.size_px
        x0, y0, x1, y1 = self.fov_px
        open_ = np.zeros((s, s), np.float32)
        open_[round(y0) : round(y1), round(x0) : round(x1)] = 1.0
        open_ = cv2.GaussianBlur(open_, (0, 0), SHUTTER_SOFT_PX_AT_512 * s / 512)
        c = (np.arange(s) + 0.5) / s - 0.5
        r2 = (c[None, :] ** 2 + c[:, None] ** 2) / 0.5
        return SHUTTER_ATTENUATION * (1.0 - open_) - np.log(1.0 - self.case.imaging.vignetting * r2)

    def slab_affine(self, depth_mm: float, offset_lps: np.ndarray, margin_px: int = 0) -> np.ndarray:
        """2x3 OpenCV affine (pixel centres at integers) moving the image of a plane at ``depth_mm``
        (perpendicular to the beam) with a 3D displacement ``offset_lps``, from a source image that
        extends ``margin_px`` beyond the image on every side."""
        proj = self.projector
        shifted = depth_mm + float(offset_lps @ proj.beam)
        scale = depth_mm / shifted
        gain = proj.view.sid_mm / (shifted * proj.pixel_spacing_mm)
        c = 0.5 * self.size_px - 0.5
        tx = c * (1.0 - scale) + gain * float(offset_lps @ proj.x_img)
        ty = c * (1.0 - scale) + gain * float(offset_lps @ proj.y_img)
        pad = scale * margin_px
        return np.array([[scale, 0.0, tx - pad], [0.0, scale, ty - pad]])

    def _draw_catheters(self, att: np.ndarray, offset: np.ndarray) -> None:
        """Pigtail and guidewire (they ride on the root), projected at their moved 3D positions."""
        proj = self.projector
        for path, radius, mu, wall in (
            (self.pigtail.path, PIGTAIL_RADIUS_MM, MU_PIGTAIL, 0.6),
            (self.guidewire, GUIDEWIRE_RADIUS_MM, MU_GUIDEWIRE, 1.0),
        ):
            moved = path + offset
            r_px = radius / float(np.median(proj.object_mm_per_px(moved)))
            self.raster.tube(att, proj.project(moved), r_px, radius, mu, wall_fraction=wall)

    def attenuation(self, t_s: float, state: DeliveryState, contrast: float) -> np.ndarray:
        """Noise-free line integrals at ``t_s`` composed from the bank (a view of an internal buffer)."""
        s = self.size_px
        offset = self.motion.root_mm(t_s)
        att, tmp = self._att, self._tmp
        np.copyto(att, self.static)
        slabs = self._moving_slabs + (self._iodine_slabs if contrast > 0.0 else [])
        for (image, (x0, y0)), depth, is_iodine in slabs:
            m = self.slab_affine(depth, offset, self.layers.margin_px)
            m[:, 2] += m[:, :2] @ (x0, y0)  # the content's crop as the source
            # the destination: the moved crop's box (+1 px for the interpolation), inside the image
            h, w = image.shape
            corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], float) @ m[:, :2].T + m[:, 2]
            lo = np.clip(np.floor(corners.min(axis=0)).astype(int) - 1, 0, s)
            hi = np.clip(np.ceil(corners.max(axis=0)).astype(int) + 1, 0, s)
            if np.any(hi <= lo):
                continue
            m[:, 2] -= lo
            out = tmp[: hi[1] - lo[1], : hi[0] - lo[0]]
            cv2.warpAffine(
                image,
                m,
                (hi[0] - lo[0], hi[1] - lo[1]),
                dst=out,
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0.0,
            )
            region = att[lo[1] : hi[1], lo[0] : hi[0]]
            cv2.scaleAdd(out, float(contrast) if is_iodine else 1.0, region, dst=region)
        self._draw_catheters(att, offset)
        self._draw_devices(att, state, offset)
        return att

    def direct_attenuation(self, t_s: float, state: DeliveryState, contrast: float) -> np.ndarray:
        """The same frame by ray casting the moved volumes directly (seconds; the bank's reference)."""
        vols = self.bank.volumes
        offset = self.motion.root_mm(t_s)
        step = STEP_FRACTION * vols.spacing_mm
        moved = 0.0
        for array, box, gain in (
            (vols.moving, vols.moving_box, 1.0),
            (vols.iodine, vols.iodine_box, contrast),
        ):
            if gain > 0.0:
                crop, origin = vols.crop(array, box)
                line, _ = cast(
                    crop[None], origin, vols.spacing_mm, self.projector, step_mm=step, shift_lps=offset
                )
                moved = moved + float(gain) * line[0]
        att = (self.static + moved).astype(np.float32)
        self._draw_catheters(att, offset)
        self._draw_devices(att, state, offset)
        return att

    def noise_sigma(self, att: np.ndarray) -> np.ndarray:
        """Standard deviation of the quantum noise [attenuation] at each pixel of ``att``."""
        return self._noise_scale * np.exp(0.5 * att)
