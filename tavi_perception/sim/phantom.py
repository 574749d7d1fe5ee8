"""The procedural 3D phantom in patient LPS millimetres (origin: annulus centre at rest).

Aortic root: a surface of revolution about the root axis with three sinus bulges. Lumen radius at
height ``s`` above the annulus plane and azimuth ``phi``::

    r(s, phi) = R + (R_stj - R) s / H + (R_sinus - R) lobe(phi) sin(pi s / H)^0.8      (0 <= s <= H)
    r(s, phi) = R_stj + (R_asc - R_stj) smoothstep((s - H) / 20 mm)                    (s > H)

``lobe`` is 1 at a cusp centre and 0 at the commissures. The closed leaflets bound the contrast from
below: a bowl per cusp from the leaflet attachment on the wall (0 at the cusp nadir, rising towards the
commissures) to the coaptation height at the centre. The cusp nadirs lie on the annulus plane (s = 0)
at radius R; AA1/AA2 are the non-coronary and left-coronary cusp nadirs (clinical depth reference,
docs/simulator.md). Cusp orientation: right coronary cusp anterior, left coronary cusp towards the patient's
left, non-coronary cusp towards the right.

Body: thorax (elliptic cylinder of soft tissue), lungs (ellipsoids minus heart and mediastinum), heart
(ventricles: ellipsoid from the root towards the apex; atria: ellipsoid right-posterior of the root),
vertebrae and pedicles (capped elliptic cylinders) and ribs (tubes along the thorax wall).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tavi_perception.sim.case import AnatomyParams
from tavi_perception.sim.motion import smoothstep

CUSPS = ("RCC", "LCC", "NCC")
ASCENDING_TOP_MM = 150.0  # lumen modelled up to this height above the annulus (beyond the field)
COAPTATION_HEIGHT = 0.30  # leaflet coaptation height / sinus height
COMMISSURE_HEIGHT = 0.60  # leaflet attachment height at the commissures / sinus height
ASCENDING_DILUTION = 0.45  # contrast density 70 mm above the STJ relative to the root


def unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


def rotate_about(v: np.ndarray, axis: np.ndarray, angle_rad: float) -> np.ndarray:
    """Rodrigues rotation of ``v`` about unit ``axis``."""
    k = unit(axis)
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return v * c + np.cross(k, v) * s + k * (k @ v) * (1 - c)


def _wrap_angle(a: np.ndarray) -> np.ndarray:
    return (a + np.pi) % (2 * np.pi) - np.pi


class RootGeometry:
    """Aortic root lumen, cusps and reference points of one case (rest pose)."""

    def __init__(self, anatomy: AnatomyParams) -> None:
        self.params = anatomy
        self.centre = np.zeros(3)
        self.axis = unit(np.asarray(anatomy.root_axis_lps))
        n = self.axis
        anterior = np.array([0.0, -1.0, 0.0])
        e1 = unit(anterior - (anterior @ n) * n)
        self.e1 = rotate_about(e1, n, math.radians(anatomy.cusp_rotation_deg))  # RCC centre direction
        self.e2 = np.cross(n, self.e1)
        third = 2 * math.pi / 3
        toward_left = self.direction(third)[0] > self.direction(-third)[0]
        self.cusp_angles = {
            "RCC": 0.0,
            "LCC": third if toward_left else -third,
            "NCC": -third if toward_left else third,
        }
        self.radius = anatomy.annulus_radius_mm
        self.sinus_radius = self.radius * anatomy.sinus_ratio
        self.stj_radius = self.radius * anatomy.stj_ratio
        self.ascending_radius = self.radius * anatomy.ascending_ratio
        self.sinus_height = anatomy.sinus_height_mm
        self.max_radius = max(self.sinus_radius, self.ascending_radius) + 0.5

    def direction(self, angle_rad: float | np.ndarray) -> np.ndarray:
        """Unit radial direction(s) at azimuth ``angle_rad`` about the root axis (0 = RCC centre)."""
        a = np.asarray(angle_rad, dtype=float)[..., None]
        return np.cos(a) * self.e1 + np.sin(a) * self.e2

    def point(self, s_mm: float, radius_mm: float, angle_rad: float) -> np.ndarray:
        """Point at height ``s_mm`` above the annulus plane, radius and azimuth about the axis."""
        return self.centre + s_mm * self.axis + radius_mm * self.direction(angle_rad)

    def nadir(self, cusp: str) -> np.ndarray:
        """Lowest point of a cusp's leaflet attachment (annulus plane, radius R)."""
        return self.point(0.0, self.radius, self.cusp_angles[cusp])

    def lobe(self, phi: np.ndarray) -> np.ndarray:
        """1 at a cusp centre, 0 at a commissure (60° away); the cusps are 120° apart from RCC at 0."""
        delta = np.abs(_wrap_angle(3.0 * np.asarray(phi))) / 3.0  # distance to the nearest cusp centre
        return np.cos(np.clip(1.5 * delta, 0.0, np.pi / 2)) ** 0.7

    def wall_radius(self, s: np.ndarray, lobe: np.ndarray) -> np.ndarray:
        """Lumen radius at height ``s`` (any s >= 0) and the given lobe value."""
        h = self.sinus_height
        sc = np.clip(s / h, 0.0, 1.0)
        sinus = (
            self.radius
            + (self.stj_radius - self.radius) * sc
            + (self.sinus_radius - self.radius) * lobe * np.sin(np.pi * sc) ** 0.8
        )
        above = self.stj_radius + (self.ascending_radius - self.stj_radius) * smoothstep((s - h) / 20.0)
        return np.where(s <= h, sinus, above)

    def leaflet_floor(self, rho_frac: np.ndarray, lobe: np.ndarray) -> np.ndarray:
        """Height of the closed-leaflet surface at relative radius ``rho/r`` (0 centre, 1 wall)."""
        h = self.sinus_height
        crown = COMMISSURE_HEIGHT * h * (1.0 - lobe)
        x2 = np.clip(rho_frac, 0.0, 1.0) ** 2
        return COAPTATION_HEIGHT * h * (1.0 - x2) + crown * x2

    def cylindrical(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(height s, radius rho, azimuth phi) of points (..., 3) about the root axis."""
        q = np.asarray(points, dtype=float) - self.centre
        s = q @ self.axis
        x1, x2 = q @ self.e1, q @ self.e2
        return s, np.hypot(x1, x2), np.arctan2(x2, x1)

    def lumen_contains(self, points: np.ndarray) -> np.ndarray:
        """Whether points (..., 3) lie in the contrast-fillable lumen (sinuses and ascending aorta)."""
        s, rho, phi = self.cylindrical(points)
        lobe = self.lobe(phi)
        r = self.wall_radius(s, lobe)
        return (rho < r) & (s >= self.leaflet_floor(rho / r, lobe)) & (s <= ASCENDING_TOP_MM)

    def contrast_density(self, points: np.ndarray) -> np.ndarray:
        """Relative iodine density at points: 1 in the root, diluting up the ascending aorta."""
        s = (np.asarray(points, dtype=float) - self.centre) @ self.axis
        dilution = 1.0 - (1.0 - ASCENDING_DILUTION) * np.clip((s - self.sinus_height - 5.0) / 65.0, 0.0, 1.0)
        return self.lumen_contains(points) * dilution

    def floor_point(self, cusp: str, rho_frac: float, lift_mm: float = 0.0) -> np.ndarray:
        """Point on (``lift_mm`` above) the closed leaflet of ``cusp`` at relative radius ``rho_frac``."""
        phi = self.cusp_angles[cusp]
        lobe = float(self.lobe(np.array(phi)))
        s = float(self.leaflet_floor(np.array(rho_frac), np.array(lobe))) + lift_mm
        r = float(self.wall_radius(np.array(s), np.array(lobe)))
        return self.point(s, rho_frac * r, phi)


def _bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, p3: np.ndarray, n: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3


@dataclass(frozen=True)
class Pigtail:
    """Pigtail catheter: shaft down the ascending aorta, curl resting in the non-coronary cusp."""

    path: np.ndarray  # (N, 3) centreline, proximal to distal
    tip_point: np.ndarray  # (3,) PT: lowest point of the curl, on the cusp floor


def make_pigtail(
    root: RootGeometry, loop_radius_mm: float, loop_azimuth_deg: float, facing: np.ndarray
) -> Pigtail:
    """Pigtail resting in the NCC: PT is the curl's lowest point, 0.8 mm above the closed leaflet.

    The curl's plane contains the root axis and a direction ``loop_azimuth_deg`` (about the axis) from
    ``facing`` (e.g. the image x axis, so the curl is seen as a loop rather than edge-on).
    """
    n = root.axis
    pt = root.floor_point("NCC", 0.78, lift_mm=0.8)
    in_plane = np.asarray(facing, dtype=float) - (np.asarray(facing, dtype=float) @ n) * n
    w = rotate_about(unit(in_plane), n, math.radians(loop_azimuth_deg))
    theta = np.linspace(0.5 * np.pi, 2.9 * np.pi, 80)
    rho = loop_radius_mm * (1.0 - 0.15 * (theta - 0.5 * np.pi) / (2.4 * np.pi))
    rho_bottom = loop_radius_mm * (1.0 - 0.15 * 0.5 / 2.4)
    loop_centre = pt + rho_bottom * n
    curl = loop_centre + rho[:, None] * (np.sin(theta)[:, None] * w + np.cos(theta)[:, None] * n)
    junction = curl[0]
    top = root.point(ASCENDING_TOP_MM, 0.45 * root.ascending_radius, root.cusp_angles["NCC"] + 0.6)
    shaft = _bezier(top, top - 45.0 * n, junction + 30.0 * n, junction, 60)
    return Pigtail(np.vstack([shaft, curl[1:]]), pt)


@dataclass(frozen=True)
class Vessel:
    """A contrast-filled tube: centreline and radius per segment of points."""

    path: np.ndarray  # (N, 3)
    radius_mm: float


def _vessel_path(
    start: np.ndarray,
    direction: np.ndarray,
    target: np.ndarray,
    length_mm: float,
    rng: np.random.Generator,
    step_mm: float = 1.5,
) -> np.ndarray:
    """A smooth wandering path that turns from ``direction`` towards ``target``."""
    pts = [np.asarray(start, dtype=float)]
    d = unit(direction)
    goal = unit(target)
    for _ in range(int(length_mm / step_mm)):
        d = unit(d + 0.12 * goal + rng.normal(0, 0.08, 3))
        pts.append(pts[-1] + step_mm * d)
    return np.array(pts)


def make_coronaries(root: RootGeometry, rng: np.random.Generator) -> list[Vessel]:
    """Left main with LAD and circumflex from the LCC, right coronary artery from the RCC."""
    h = root.sinus_height
    vessels: list[Vessel] = []
    lobe1 = np.array(1.0)
    s_left = 0.6 * h
    u_lcc = root.direction(root.cusp_angles["LCC"])
    lm_start = root.point(
        s_left, float(root.wall_radius(np.array(s_left), lobe1)) - 1.0, root.cusp_angles["LCC"]
    )
    lm = _vessel_path(lm_start, u_lcc, np.array([0.6, 0.2, -0.2]), 10.0, rng)
    vessels.append(Vessel(lm, 2.0))
    lad = _vessel_path(
        lm[-1], np.array([0.5, -0.5, -0.3]), np.array([0.4, -0.6, -0.7]), rng.uniform(45, 65), rng
    )
    lcx = _vessel_path(
        lm[-1], np.array([0.5, 0.4, -0.3]), np.array([0.3, 0.6, -0.75]), rng.uniform(35, 50), rng
    )
    for path in (lad, lcx):
        half = len(path) // 2
        vessels += [Vessel(path[: half + 1], 1.6), Vessel(path[half:], 1.1)]
    s_right = 0.55 * h
    u_rcc = root.direction(root.cusp_angles["RCC"])
    rca_start = root.point(
        s_right, float(root.wall_radius(np.array(s_right), lobe1)) - 1.0, root.cusp_angles["RCC"]
    )
    rca_a = _vessel_path(rca_start, u_rcc, np.array([-0.7, -0.6, -0.1]), 18.0, rng)
    rca_b = _vessel_path(
        rca_a[-1], np.array([-0.6, -0.3, -0.6]), np.array([-0.3, 0.1, -0.95]), rng.uniform(40, 60), rng
    )
    vessels += [Vessel(rca_a, 1.8), Vessel(rca_b, 1.4)]
    return vessels


@dataclass(frozen=True)
class Ellipsoid:
    """An ellipsoid: points x with |A (x - centre)| < 1, A = diag(1/semi) R^T (rows: unit axes)."""

    centre: np.ndarray  # (3,)
    axes: np.ndarray  # (3, 3) rows are the unit principal axes
    semi_mm: np.ndarray  # (3,) semi-axis lengths

    def contains(self, points: np.ndarray) -> np.ndarray:
        q = (np.asarray(points) - self.centre) @ self.axes.T / self.semi_mm
        return np.einsum("...i,...i->...", q, q) < 1.0


def make_calcium(root: RootGeometry, count: int, rng: np.random.Generator) -> list[Ellipsoid]:
    """Calcified nodules on the closed leaflets (aortic stenosis), visible without contrast."""
    blobs = []
    for _ in range(count):
        cusp = CUSPS[int(rng.integers(3))]
        phi = root.cusp_angles[cusp] + math.radians(rng.uniform(-40, 40))
        frac = rng.uniform(0.35, 0.9)
        lobe = root.lobe(np.array(phi))
        s = float(root.leaflet_floor(np.array(frac), lobe)) + 0.5
        r = float(root.wall_radius(np.array(s), lobe))
        centre = root.point(s, frac * r, phi)
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        blobs.append(Ellipsoid(centre, q.T, rng.uniform(1.0, 2.8, 3)))
    return blobs


@dataclass(frozen=True)
class CappedCylinder:
    """An elliptic cylinder along patient z between ``z0`` and ``z1`` (vertebral bodies, pedicles)."""

    centre_xy: tuple[float, float]
    semi_xy: tuple[float, float]
    z0: float
    z1: float


@dataclass(frozen=True)
class Body:
    """Body primitives of one case (rest pose)."""

    thorax_centre_xy: tuple[float, float]
    thorax_semi_xy: tuple[float, float]
    lungs: tuple[Ellipsoid, Ellipsoid]
    heart: Ellipsoid  # ventricles, from the base towards the apex
    atria: Ellipsoid  # right and left atria, right-posterior of the root
    mediastinum_centre_xy: tuple[float, float]
    mediastinum_semi_xy: tuple[float, float]
    vertebrae: tuple[CappedCylinder, ...]  # bodies
    pedicles: tuple[CappedCylinder, ...]
    ribs: tuple[np.ndarray, ...]  # (N, 3) centrelines

    def lung_contains(self, points: np.ndarray) -> np.ndarray:
        """Aerated lung: inside a lung ellipsoid, outside the heart and the mediastinum."""
        p = np.asarray(points)
        in_lung = self.lungs[0].contains(p) | self.lungs[1].contains(p)
        mx, my = self.mediastinum_centre_xy
        ax, ay = self.mediastinum_semi_xy
        in_mediastinum = ((p[..., 0] - mx) / ax) ** 2 + ((p[..., 1] - my) / ay) ** 2 < 1.0
        return in_lung & ~self.heart.contains(p) & ~self.atria.contains(p) & ~in_mediastinum


def make_body(anatomy: AnatomyParams, root: RootGeometry, rng: np.random.Generator) -> Body:
    """Thorax, lungs, heart, spine and ribs around the root."""
    cx, cy = anatomy.thorax_centre_mm
    ax, ay = anatomy.thorax_semi_axes_mm
    eye = np.eye(3)
    right_lung = Ellipsoid(
        np.array([cx - 0.55 * ax, cy + 5.0, 40.0]), eye, np.array([0.45 * ax, 0.85 * ay, 130.0])
    )
    left_lung = Ellipsoid(
        np.array([cx + 0.57 * ax, cy + 5.0, 25.0]), eye, np.array([0.42 * ax, 0.85 * ay, 128.0])
    )
    apex_dir = unit(np.array([0.65, -0.45, -0.6]) + rng.normal(0, 0.08, 3))
    u1 = unit(np.cross(apex_dir, np.array([0.0, 0.0, 1.0])))
    u2 = np.cross(apex_dir, u1)
    heart = Ellipsoid(  # the valve sits at the heart's base, inside its silhouette
        root.centre + rng.uniform(25, 35) * apex_dir,
        np.stack([apex_dir, u1, u2]),
        np.array([rng.uniform(78, 90), rng.uniform(62, 72), rng.uniform(55, 65)]),
    )
    atria = Ellipsoid(
        root.centre + np.array([rng.uniform(-45, -30), rng.uniform(20, 35), rng.uniform(-25, -10)]),
        eye,
        np.array([rng.uniform(42, 52), rng.uniform(35, 45), rng.uniform(40, 50)]),
    )
    spine_x = cx + anatomy.spine_offset_mm
    spine_y = cy + ay - rng.uniform(55, 65)
    rx, ry = rng.uniform(19, 23), rng.uniform(15, 18)
    height, disc = rng.uniform(20, 25), rng.uniform(5, 7)
    phase = rng.uniform(0, height + disc)
    vertebrae, pedicles = [], []
    z = -260.0 + phase
    while z < 220.0:
        vertebrae.append(CappedCylinder((spine_x, spine_y), (rx, ry), z, z + height))
        for side in (-1.0, 1.0):
            pedicles.append(
                CappedCylinder(
                    (spine_x + side * 0.7 * rx, spine_y + ry + 5.0), (4.5, 7.0), z + 3.0, z + height - 5.0
                )
            )
        z += height + disc
    ribs = []
    for k in range(10):
        z_spine = 160.0 - 26.0 * k + rng.uniform(-3, 3)
        for side in (-1.0, 1.0):
            theta = np.linspace(0.15 * np.pi, 0.78 * np.pi, 40)  # from the spine around to the front
            x = cx + side * 0.93 * ax * np.sin(theta)
            y = cy + 0.93 * ay * np.cos(theta)
            zz = z_spine - rng.uniform(45, 60) * (1 - np.cos(theta - 0.15 * np.pi)) / 1.5
            ribs.append(np.stack([x, y, zz], axis=1))
    return Body(
        thorax_centre_xy=(cx, cy),
        thorax_semi_xy=(ax, ay),
        lungs=(right_lung, left_lung),
        heart=heart,
        atria=atria,
        mediastinum_centre_xy=(cx - 5.0, cy - 20.0),
        mediastinum_semi_xy=(rng.uniform(28, 36), 0.8 * ay),
        vertebrae=tuple(vertebrae),
        pedicles=tuple(pedicles),
        ribs=tuple(ribs),
    )
