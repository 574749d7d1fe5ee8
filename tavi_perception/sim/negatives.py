"""Negative frames for the keypoint model: images with no TAVI scene, every keypoint absent.

Kinds (:data:`KINDS`, in this order):

- ``ct_anatomy``: the shipped chest CT (docs/ct_renderer.md) seen around the heart (the aortic root in
  the field: the isocentre 0-25 mm above the annulus, ±12 mm in the image plane) in random C-arm views
  (primary ±45°, secondary ±30°, detector field 150-300 mm, magnification 1.15-1.6), the heart moving,
  no contrast and no device (:class:`DevicelessCTScene`: the view bank's static and moving layers with
  the CT scene's image formation; no pigtail, guidewire or delivery system);
- ``ct_off_centre``: the same CT with the isocentre moved 50-110 mm up or down the chest and/or 40-90 mm
  sideways (upper mediastinum, abdomen, lung fields, chest wall), kept inside the scanned body;
- ``stylised_background``: the stylised phantom's body, lungs and leaflet calcium without contrast,
  pigtail, guidewire or delivery system (:class:`DevicelessScene`), random views;
- ``black``, ``white``, ``grey``: uniform frames (near 0, near full scale, any level), some with faint noise;
- ``noise``: white noise (Gaussian, uniform or salt-and-pepper) about a random level;
- ``smooth_noise``: Gaussian-smoothed noise (blob textures, 2-40 px at 512²);
- ``gradient``: linear or radial intensity ramps;
- ``stripes``: sinusoidal or square gratings of random period and orientation.

The CT kinds render one bank view per :data:`CT_FRAMES_PER_VIEW` frames (frames of one view differ in
time, dose, blur, window and shutters); the view bank is the process's (``ct_bank``), so the CT is
prepared once. Everything is deterministic for the seed: negative ``j`` of kind ``k`` draws from the
seed sequence ``[seed, NEGATIVE_STREAM, k, j]`` (CT views from ``[seed, NEGATIVE_STREAM, k, view]``),
independent of the positive frames' cases.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

import cv2
import numpy as np

from tavi_perception.sim.carm import CArmView
from tavi_perception.sim.case import CaseParams, sample_case
from tavi_perception.sim.ct.anatomy import ct_case
from tavi_perception.sim.ct.bank import ViewBank
from tavi_perception.sim.ct.scene import CTScene
from tavi_perception.sim.delivery import DeliveryState
from tavi_perception.sim.scene import Scene

CT_KINDS = ("ct_anatomy", "ct_off_centre")
KINDS = (
    "ct_anatomy",
    "ct_off_centre",
    "stylised_background",
    "black",
    "white",
    "grey",
    "noise",
    "smooth_noise",
    "gradient",
    "stripes",
)
# share of each kind among the negatives beyond the first of each (anatomy first: the hard negatives)
WEIGHTS = {
    "ct_anatomy": 0.30,
    "ct_off_centre": 0.15,
    "stylised_background": 0.15,
    "black": 0.04,
    "white": 0.04,
    "grey": 0.04,
    "noise": 0.06,
    "smooth_noise": 0.08,
    "gradient": 0.07,
    "stripes": 0.07,
}
NEGATIVE_STREAM = 0x4E4547  # "NEG": the negatives' seed stream
CT_FRAMES_PER_VIEW = 4
CT_HALF_EXTENT_Z_MM = 160.0  # the CT's scan reaches about ±165 mm from the annulus along the body axis
OFF_CENTRE_Z_MM = (50.0, 110.0)
OFF_CENTRE_X_MM = (40.0, 90.0)


@dataclass(frozen=True)
class NegativeFrame:
    image: np.ndarray  # (S, S) uint8 or uint16
    kind: str
    detail: str  # sub-kind (e.g. "radial" for a gradient) or "" for the rendered kinds
    view: CArmView | None = None  # the C-arm view of the rendered kinds
    mm_per_px: float | None = None


class DevicelessScene(Scene):
    """The stylised scene without contrast, pigtail, guidewire or delivery system (body, lungs, the
    leaflets' calcium): ``render(t, state, 0.0, seed)`` gives its background as the C-arm would see it."""

    def _root_maps(self) -> tuple[np.ndarray, np.ndarray]:
        s = self.size_px
        return np.zeros((s, s), np.float32), self._calcium_map()

    def _draw_devices(self, att: np.ndarray, state: DeliveryState, offset: np.ndarray) -> None:
        return None


class DevicelessCTScene(CTScene):
    """The CT scene without pigtail, guidewire or delivery system: the bank's static body and moving
    heart (rendered with ``contrast`` 0: no iodine) through the CT scene's image formation."""

    def _draw_catheters(self, att: np.ndarray, offset: np.ndarray) -> None:
        return None

    def _draw_devices(self, att: np.ndarray, state: DeliveryState, offset: np.ndarray) -> None:
        return None


def kind_counts(total: int, kinds: tuple[str, ...] = KINDS) -> dict[str, int]:
    """Frames per kind for ``total`` negatives: one of each kind first (the heaviest first when there
    are fewer frames than kinds), the rest by :data:`WEIGHTS` (largest remainders)."""
    if total < 0:
        raise ValueError(f"negative frame count must be >= 0, got {total}")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ValueError(f"unknown negative kinds {unknown}; kinds: {', '.join(KINDS)}")
    order = sorted(kinds, key=lambda k: (-WEIGHTS[k], KINDS.index(k)))
    counts = {k: 0 for k in kinds}
    for k in order[:total]:
        counts[k] = 1
    rest = total - sum(counts.values())
    if rest > 0:
        weight = sum(WEIGHTS[k] for k in kinds)
        share = {k: rest * WEIGHTS[k] / weight for k in kinds}
        for k in kinds:
            counts[k] += int(share[k])
        left = rest - sum(int(v) for v in share.values())
        for k in sorted(kinds, key=lambda k: (-(share[k] - int(share[k])), KINDS.index(k)))[:left]:
            counts[k] += 1
    return {k: counts[k] for k in KINDS if k in counts}


def _rng(seed: int, kind: str, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), NEGATIVE_STREAM, KINDS.index(kind), int(index)])


def _imaging(case: CaseParams, view: CArmView, rng: np.random.Generator) -> CaseParams:
    """``case`` seen through ``view`` with a fresh X-ray chain (dose, blur, vignetting, shutters, window)."""
    u = rng.uniform
    shutters = (0.0, 0.0, 0.0, 0.0) if rng.random() < 0.5 else (u(0, 0.15), u(0, 0.15), u(0, 0.1), u(0, 0.1))
    imaging = replace(
        case.imaging,
        view=view,
        photons_per_px=u(30, 200),
        detector_blur_mm=u(0.2, 0.5),
        vignetting=u(0.05, 0.3),
        shutters=shutters,
        window_scale=u(0.8, 1.2),
        window_offset=u(-0.06, 0.06),
    )
    return replace(case, imaging=imaging)


def random_view(rng: np.random.Generator, centre_lps: np.ndarray) -> CArmView:
    """A C-arm view at any angle, field and magnification with its isocentre at ``centre_lps``."""
    u = rng.uniform
    sid = u(950, 1150)
    return CArmView(
        u(-45, 45), u(-30, 30), sid, sid / u(1.15, 1.6), u(150, 300), tuple(float(v) for v in centre_lps)
    )


def off_centre_isocentre(rng: np.random.Generator, field_mm: float) -> np.ndarray:
    """An isocentre (root frame, LPS axes) away from the heart: up/down the chest, sideways, or both,
    its field kept inside the CT's scanned length along the body axis."""
    u = rng.uniform
    mode = int(rng.integers(3))  # 0 along the body axis, 1 sideways, 2 both
    z = x = 0.0
    if mode in (0, 2):
        reach = max(CT_HALF_EXTENT_Z_MM - 0.5 * field_mm, OFF_CENTRE_Z_MM[0])
        z = float(rng.choice((-1.0, 1.0))) * min(u(*OFF_CENTRE_Z_MM), reach)
    if mode in (1, 2):
        x = float(rng.choice((-1.0, 1.0))) * u(*OFF_CENTRE_X_MM)
    return np.array([x, u(-20, 20), z])


def _ct_frames(
    kind: str, count: int, seed: int, size: int, bit_depth: int, bank: ViewBank
) -> Iterator[NegativeFrame]:
    root = bank.volumes.root
    for view_index in range(math.ceil(count / CT_FRAMES_PER_VIEW)):
        rng = _rng(seed, kind, view_index)
        base = ct_case(int(rng.integers(2**31)), root)
        if kind == "ct_anatomy":  # the root stays in the field (half-field >= 47 mm at the isocentre)
            view = random_view(rng, np.zeros(3))
            _, x_img, y_img = view.axes()
            iso = root.centre + root.axis * rng.uniform(0, 25) + x_img * rng.uniform(-12, 12)
            iso = iso + y_img * rng.uniform(-12, 12)
            view = replace(view, isocentre_lps=tuple(float(v) for v in iso))
        else:
            view = random_view(rng, np.zeros(3))
            field_mm = view.detector_fov_mm / view.magnification
            view = replace(view, isocentre_lps=tuple(float(v) for v in off_centre_isocentre(rng, field_mm)))
        frames = min(CT_FRAMES_PER_VIEW, count - view_index * CT_FRAMES_PER_VIEW)
        for _ in range(frames):
            case = _imaging(base, view, rng)
            scene = DevicelessCTScene(case, bank, size, bit_depth)
            image = scene.render(rng.uniform(0, 10), DeliveryState(0.0), 0.0, int(rng.integers(2**31)))
            yield NegativeFrame(image, kind, "", view, scene.mm_per_px)


def _stylised_frame(rng: np.random.Generator, size: int, bit_depth: int) -> NegativeFrame:
    base = sample_case(int(rng.integers(2**31)))
    centre = np.asarray(base.imaging.view.isocentre_lps) + rng.uniform(-40, 40, size=3)
    view = random_view(rng, centre)
    scene = DevicelessScene(_imaging(base, view, rng), size, bit_depth)
    image = scene.render(rng.uniform(0, 10), DeliveryState(0.0), 0.0, int(rng.integers(2**31)))
    return NegativeFrame(image, "stylised_background", "", view, scene.mm_per_px)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(size) + 0.5) / size - 0.5
    return np.meshgrid(c, c)


def _smooth_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """Zero-mean, unit-range blob texture."""
    sigma = rng.uniform(2.0, 40.0) * size / 512
    field = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), max(sigma, 0.8))
    lo, hi = float(field.min()), float(field.max())
    return (field - lo) / (hi - lo) - 0.5 if hi > lo else np.zeros_like(field)


def pattern(kind: str, rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    """(image in 0..1 float32 (size, size), sub-kind) of a synthetic negative kind."""
    u = rng.uniform
    faint = 0.0
    if kind in ("black", "white", "grey"):
        level = {"black": u(0.0, 0.04), "white": u(0.96, 1.0), "grey": u(0.1, 0.9)}[kind]
        img = np.full((size, size), level, np.float32)
        faint = u(0.0, 0.02) if rng.random() < 0.5 else 0.0
        detail = "faint_noise" if faint else "uniform"
    elif kind == "noise":
        detail = str(rng.choice(("gaussian", "uniform", "salt_pepper")))
        if detail == "gaussian":
            img = u(0.2, 0.8) + u(0.03, 0.3) * rng.standard_normal((size, size))
        elif detail == "uniform":
            lo = u(0.0, 0.5)
            img = rng.uniform(lo, lo + u(0.1, 0.5), (size, size))
        else:
            img = np.full((size, size), u(0.2, 0.8))
            dots = rng.random((size, size)) < u(0.01, 0.2)
            img[dots] = rng.integers(0, 2, size=int(dots.sum()))
    elif kind == "smooth_noise":
        img = u(0.3, 0.7) + u(0.2, 1.0) * _smooth_noise(rng, size)
        detail = "blobs"
    elif kind == "gradient":
        gx, gy = _grid(size)
        detail = str(rng.choice(("linear", "radial")))
        if detail == "linear":
            a = u(0, 2 * np.pi)
            ramp = gx * math.cos(a) + gy * math.sin(a)
        else:
            cx, cy = u(-0.4, 0.4, size=2)
            ramp = np.hypot(gx - cx, gy - cy)
        ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-9)
        span = u(0.2, 1.0)
        img = u(0.0, 1.0 - span) + span * ramp
    elif kind == "stripes":
        gx, gy = _grid(size)
        a = u(0, np.pi)
        period = u(4.0, 80.0) / size  # in image widths
        wave = np.sin(2 * np.pi * (gx * math.cos(a) + gy * math.sin(a)) / period + u(0, 2 * np.pi))
        detail = str(rng.choice(("sine", "square")))
        if detail == "square":
            wave = np.sign(wave)
        img = u(0.3, 0.7) + u(0.1, 0.5) * wave
    else:
        raise ValueError(f"{kind!r} is not a synthetic pattern kind")
    img = np.asarray(img, np.float32)
    if faint:
        img = img + faint * rng.standard_normal((size, size)).astype(np.float32)
    return np.clip(img, 0.0, 1.0), detail


def _to_bit_depth(img: np.ndarray, bit_depth: int) -> np.ndarray:
    top = 255.0 if bit_depth == 8 else 65535.0
    return (img * top + 0.5).astype(np.uint8 if bit_depth == 8 else np.uint16)


def negative_frames(
    counts: dict[str, int], seed: int, size: int, bit_depth: int = 8, bank: ViewBank | None = None
) -> Iterator[NegativeFrame]:
    """The negatives of ``counts`` (kind -> frames; :func:`kind_counts`), kind by kind in :data:`KINDS`
    order. ``bank`` (the CT view bank) is needed only when a CT kind has frames."""
    if bit_depth not in (8, 16):
        raise ValueError(f"bit depth must be 8 or 16, got {bit_depth}")
    for kind in KINDS:
        count = counts.get(kind, 0)
        if count <= 0:
            continue
        if kind in CT_KINDS:
            if bank is None:
                raise ValueError(f"{kind} negatives need the CT view bank")
            yield from _ct_frames(kind, count, seed, size, bit_depth, bank)
        elif kind == "stylised_background":
            for j in range(count):
                yield _stylised_frame(_rng(seed, kind, j), size, bit_depth)
        else:
            for j in range(count):
                img, detail = pattern(kind, _rng(seed, kind, j), size)
                yield NegativeFrame(_to_bit_depth(img, bit_depth), kind, detail)
