"""One simulated patient/procedure ("case"): every random choice, drawn from a seed.

Ranges (docs/simulator.md): annulus 19-29 mm, magnification 1.2-1.6, 60-100 bpm with root excursion up
to ~10 mm, 12-20 breaths/min with ~5 mm cranio-caudal motion. C-arm views are drawn around the S-curve
of the annulus plane (the coplanar views operators use), with some cases off the curve. Patient
coordinates are LPS millimetres with the origin at the annulus centre at rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tavi_perception.sim.carm import CArmView, s_curve_cran_deg
from tavi_perception.sim.motion import MotionParams

ANNULUS_DIAMETER_RANGE_MM = (19.0, 29.0)
MAGNIFICATION_RANGE = (1.2, 1.6)
HEART_RATE_RANGE_BPM = (60.0, 100.0)
CARDIAC_AMPLITUDE_RANGE_MM = (4.0, 10.0)
RESPIRATORY_RATE_RANGE_PER_MIN = (12.0, 20.0)
RESPIRATORY_AMPLITUDE_RANGE_MM = (2.5, 5.0)
LAO_RANGE_DEG = (-30.0, 35.0)
CRAN_RANGE_DEG = (-35.0, 40.0)

# Self-expanding valve catalogue (Evolut-like): nominal diameter -> (largest annulus [mm], frame height [mm])
VALVE_CATALOGUE: tuple[tuple[float, float, float], ...] = (
    (23.0, 20.0, 45.0),
    (26.0, 23.0, 55.0),
    (29.0, 26.0, 48.0),
    (34.0, 30.0, 46.0),
)


@dataclass(frozen=True)
class AnatomyParams:
    """Aortic root and body habitus."""

    root_axis_lps: tuple[float, float, float]  # unit, from the ventricle towards the aorta
    annulus_diameter_mm: float
    sinus_ratio: float  # largest sinus radius / annulus radius
    stj_ratio: float  # sinotubular junction radius / annulus radius
    ascending_ratio: float  # ascending aorta radius / annulus radius
    sinus_height_mm: float  # annulus plane to STJ along the root axis
    cusp_rotation_deg: float  # rotation of the cusps about the axis from their nominal orientation
    calcium_blobs: int  # calcified nodules on the leaflets
    thorax_semi_axes_mm: tuple[float, float]  # lateral (x), antero-posterior (y)
    thorax_centre_mm: tuple[float, float]  # (x, y) of the thorax centre
    spine_offset_mm: float  # lateral (x) offset of the spine from the thorax centre
    detail_seed: int  # seeds coronary paths, calcium and rib details

    @property
    def annulus_radius_mm(self) -> float:
        return 0.5 * self.annulus_diameter_mm


@dataclass(frozen=True)
class DeviceParams:
    """Delivery system, valve, pigtail and guidewire. Distances along the delivery rail from CT."""

    valve_diameter_mm: float  # nominal (expanded inflow) diameter
    frame_height_mm: float  # valve frame height: deployment fraction = retraction / this
    crimped_radius_mm: float
    capsule_radius_mm: float
    shaft_radius_mm: float
    marker_offset_mm: float  # capsule marker band (CD) proximal of the capsule's distal rim
    cp_gap_mm: float  # inner-shaft anchor (CP) proximal of the frame's outflow end
    stent_columns: int  # diamond cells around the frame
    delivery_tilt_deg: float  # angle between the delivery axis and the root axis
    delivery_tilt_azimuth_deg: float
    delivery_offset_mm: tuple[float, float]  # rail offset from the annulus centre in the annulus plane
    rail_straight_mm: float  # straight rail above the annulus before the arch bend
    rail_bend_radius_mm: float  # mean radius of the bend (length / turn); tightest 1/2 of it mid-bend
    rail_bend_deg: float
    rail_bend_azimuth_deg: float  # rotation of the bend about the delivery axis from the arch direction
    pigtail_loop_radius_mm: float
    pigtail_loop_azimuth_deg: float  # curl plane about the root axis, from facing the detector
    guidewire_loop_radius_mm: float

    @property
    def cp_offset_mm(self) -> float:
        """CT to CP along the rail."""
        return self.frame_height_mm + self.cp_gap_mm

    @property
    def capsule_length_mm(self) -> float:
        return self.frame_height_mm + self.cp_gap_mm + 6.0

    @property
    def cp_cd_closed_mm(self) -> float:
        """CP-CD distance along the rail with the capsule closed (3D)."""
        return self.cp_offset_mm - self.marker_offset_mm

    @property
    def max_retraction_mm(self) -> float:
        """Capsule retraction at full release."""
        return self.frame_height_mm


@dataclass(frozen=True)
class ImagingParams:
    """C-arm view and X-ray chain."""

    view: CArmView
    photons_per_px: float  # detected photons per 512²-image pixel at the median body attenuation
    detector_blur_mm: float  # Gaussian sigma of the detector blur, at the detector
    vignetting: float  # relative intensity loss at the image corners
    shutters: tuple[float, float, float, float]  # collimated fraction at left, right, top, bottom
    window_scale: float  # display window width relative to the automatic one
    window_offset: float  # display level shift, fraction of the display range


@dataclass(frozen=True)
class CaseParams:
    seed: int
    anatomy: AnatomyParams
    devices: DeviceParams
    motion: MotionParams
    imaging: ImagingParams
    # the coplanar view (same primary angle, secondary on the annulus S-curve, same isocentre) in which
    # the truth is measured when the images come from a view off the S-curve (``view_offset_deg`` of
    # ``sim.ct.simulator.simulation_case``); None: the truth is measured in the imaging view
    truth_view: CArmView | None = None


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _perpendicular(n: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random unit vector perpendicular to ``n``."""
    v = rng.normal(size=3)
    return _unit(v - (v @ n) * n)


def valve_for_annulus(annulus_diameter_mm: float) -> tuple[float, float]:
    """(valve diameter, frame height) of the smallest catalogue valve for this annulus."""
    for size, max_annulus, height in VALVE_CATALOGUE:
        if annulus_diameter_mm <= max_annulus:
            return size, height
    return VALVE_CATALOGUE[-1][0], VALVE_CATALOGUE[-1][2]


def sample_case(
    seed: int,
    *,
    lao_deg: float | None = None,
    cran_deg: float | None = None,
    magnification: float | None = None,
) -> CaseParams:
    """Draw a case from ``seed`` (deterministic). The view may be pinned with the keyword arguments."""
    rng = np.random.default_rng([int(seed), 0x7A11])
    u = rng.uniform

    # Aortic root: annulus-plane angulation 35-60° from horizontal, axis towards right/posterior/superior.
    tilt, azimuth = math.radians(u(35, 60)), math.radians(u(-10, 35))
    axis = np.array([-math.sin(tilt) * math.cos(azimuth), math.sin(tilt) * math.sin(azimuth), math.cos(tilt)])
    annulus_d = u(*ANNULUS_DIAMETER_RANGE_MM)
    anatomy = AnatomyParams(
        root_axis_lps=tuple(axis),
        annulus_diameter_mm=annulus_d,
        sinus_ratio=u(1.25, 1.45),
        stj_ratio=u(1.05, 1.2),
        ascending_ratio=u(1.1, 1.35),
        sinus_height_mm=annulus_d * u(0.75, 0.95),
        cusp_rotation_deg=u(-15, 15),
        calcium_blobs=int(rng.integers(2, 8)),
        thorax_semi_axes_mm=(u(135, 170), u(100, 125)),
        thorax_centre_mm=(u(-10, 10), u(20, 35)),
        spine_offset_mm=u(-8, 8),
        detail_seed=int(rng.integers(2**31)),
    )

    valve_d, height = valve_for_annulus(annulus_d)
    offset_angle, offset_r = u(0, 2 * math.pi), u(0, 3)
    devices = DeviceParams(
        valve_diameter_mm=valve_d,
        frame_height_mm=height,
        crimped_radius_mm=u(2.4, 2.7),
        capsule_radius_mm=u(3.0, 3.4),
        shaft_radius_mm=u(2.2, 2.7),
        marker_offset_mm=2.0,
        cp_gap_mm=5.0,
        stent_columns=int(rng.integers(12, 16)),
        delivery_tilt_deg=u(0, 10),
        delivery_tilt_azimuth_deg=u(0, 360),
        delivery_offset_mm=(offset_r * math.cos(offset_angle), offset_r * math.sin(offset_angle)),
        rail_straight_mm=u(40, 70),
        rail_bend_radius_mm=u(28, 45),
        rail_bend_deg=u(60, 110),
        rail_bend_azimuth_deg=u(-30, 30),
        pigtail_loop_radius_mm=u(3.5, 5.5),
        pigtail_loop_azimuth_deg=u(-50, 50),
        guidewire_loop_radius_mm=u(12, 20),
    )

    kappa = math.radians(u(10, 35))
    cardiac_dir = _unit(-axis * math.cos(kappa) + _perpendicular(axis, rng) * math.sin(kappa))
    motion = MotionParams(
        heart_rate_bpm=u(*HEART_RATE_RANGE_BPM),
        cardiac_amplitude_mm=u(*CARDIAC_AMPLITUDE_RANGE_MM),
        cardiac_direction_lps=tuple(cardiac_dir),
        cardiac_phase0=u(0, 1),
        respiratory_rate_per_min=u(*RESPIRATORY_RATE_RANGE_PER_MIN),
        respiratory_amplitude_mm=u(*RESPIRATORY_AMPLITUDE_RANGE_MM),
        respiratory_phase0=u(0, 1),
    )

    # View: around the S-curve (coplanar) in most cases, off it in some.
    # a pinned angle or magnification still takes its draw, so every later draw (SID, isocentre, image
    # quality) is the same as the unpinned case's: pinning changes the view, not the patient or the chain
    lao = u(*LAO_RANGE_DEG)
    lao = lao if lao_deg is None else float(lao_deg)
    on_curve = rng.random() < 0.7
    jitter = rng.normal(0, 4) if on_curve else u(-20, 20)
    cran = float(np.clip(s_curve_cran_deg(axis, lao) + jitter, *CRAN_RANGE_DEG))
    if cran_deg is not None:
        cran = float(cran_deg)
    sid = u(950, 1150)
    mag = u(*MAGNIFICATION_RANGE)
    mag = mag if magnification is None else float(magnification)
    probe = CArmView(lao, cran, sid, sid / mag, 200.0)
    _, x_img, y_img = probe.axes()
    iso = axis * u(8, 25) + x_img * u(-12, 12) + y_img * u(-10, 10)
    view = CArmView(lao, cran, sid, sid / mag, u(150, 250), tuple(iso))
    shutters = (
        (0.0, 0.0, 0.0, 0.0) if rng.random() < 0.5 else (u(0, 0.12), u(0, 0.12), u(0, 0.08), u(0, 0.08))
    )
    imaging = ImagingParams(
        view=view,
        photons_per_px=u(40, 160),
        detector_blur_mm=u(0.25, 0.45),
        vignetting=u(0.1, 0.3),
        shutters=shutters,
        window_scale=u(0.9, 1.1),
        window_offset=u(-0.04, 0.04),
    )
    return CaseParams(int(seed), anatomy, devices, motion, imaging)
