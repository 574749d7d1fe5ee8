"""Delivery system: rail through the root, kinematics under speed limits, and per-state device geometry.

Conventions (docs/ARCHITECTURE.md, shared with the geometry and the controller):

- The delivery system slides along a fixed *rail* (its path through the arch and the root), which moves
  rigidly with the root. ``sigma`` is the arc length along the rail [mm], increasing towards the
  ventricle, 0 where the rail crosses the annulus plane; the rail is straight for ``sigma >= -L_straight``
  and bends over the arch above. The bend's curvature rises and falls smoothly (a raised cosine over the
  bend's length R * theta, peak 2 / R at its middle) as an elastic shaft's does, so it bends most at its
  middle; a constant-curvature arc has no such point in the image (simulator 1.2).
- CT (tip) is at ``sigma_tip``: the ventricular (inflow) edge of the crimped valve, so before deployment
  the tip depth is the would-be implantation depth. It stays the centre of the frame's inflow edge.
- The capsule's distal rim is ``retraction`` proximal of CT; CD (marker band) is ``marker_offset`` further.
- CP (inner-shaft anchor) is ``frame_height + cp_gap`` proximal of CT, fixed to the valve, so the
  CP-CD distance shrinks by exactly the retraction; CM is the middle of the arch bend, where the
  rail is most curved.
- The frame between CT and the capsule rim has expanded (flaring over ``EXPANSION_LENGTH_MM``); FE1/FE2
  are the ends of its inflow edge seen side-on. Deployment fraction = retraction / frame height.
- Steering: the manipulator tilts the whole delivery system by ``steer_deg`` about the rail's annulus
  crossing (sigma = 0), about an axis parallel to the C-arm beam, so a steer turns the delivery axis in the
  image by the same angle (positive from image +x towards +y) and barely moves the valve along the root.
  The robot is registered to the C-arm (it knows the beam direction); the guidewire, anchored in the
  ventricle, does not follow. An idealised remote centre of motion, not a model of catheter mechanics.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np

from tavi_perception.sim.case import DeviceParams
from tavi_perception.sim.motion import smoothstep
from tavi_perception.sim.phantom import RootGeometry, rotate_about, unit

EXPANSION_LENGTH_MM = 6.0  # frame length between the capsule rim (crimped) and full expansion
ARCH_DIRECTION_LPS = np.array([0.5, 0.85, 0.0])  # the arch turns towards the patient's left-posterior
RAIL_PROXIMAL_MM = 260.0  # rail length modelled beyond the bend
BEND_SAMPLES = 1025  # table of the bend's shape (its integral has no closed form)
LATTICE_POINTS_PER_STRUT = 3  # samples along each strut of the drawn lattice (its vertices every 3rd)
GUIDEWIRE_STRAIGHT_MM = 45.0  # wire past the annulus before its pre-shaped curl


@dataclass(frozen=True)
class DeliveryState:
    """Delivery-system configuration: tip position along the rail, capsule retraction and steer."""

    tip_sigma_mm: float  # CT along the rail; + = towards the ventricle, 0 at the annulus plane
    retraction_mm: float = 0.0  # capsule pulled back from CT (0 = closed)
    steer_deg: float = 0.0  # tilt about the annulus crossing, in the image plane (+ = from image +x to +y)


@dataclass(frozen=True)
class DeliveryCommand:
    """Manipulator velocity command (tavi_msgs/ManipulatorCommand without the header)."""

    advance_speed_mm_s: float = 0.0  # + = towards the ventricle
    retraction_speed_mm_s: float = 0.0  # >= 0: capsule retraction only goes forward
    steer_rate_deg_s: float = 0.0  # [deg/s] steer rate, + = delivery axis turns from image +x to +y
    hold: bool = False  # stop every axis


HOLD = DeliveryCommand(hold=True)


@dataclass(frozen=True)
class DeliveryLimits:
    """Manipulator limits (a motorised delivery-system handle)."""

    max_advance_speed_mm_s: float = 5.0
    max_retraction_speed_mm_s: float = 2.0
    max_steer_rate_deg_s: float = 3.0
    max_steer_deg: float = 25.0  # steer range: |steer_deg| <= this
    tip_min_mm: float = -30.0  # most proximal tip position along the rail
    tip_max_mm: float = 20.0  # deepest tip position along the rail

    def __post_init__(self) -> None:
        rates = (self.max_advance_speed_mm_s, self.max_retraction_speed_mm_s, self.max_steer_rate_deg_s)
        if min(rates) <= 0:
            raise ValueError("speed limits must be positive")
        if self.max_steer_deg < 0:
            raise ValueError("max_steer_deg must be >= 0")
        if self.tip_min_mm >= self.tip_max_mm:
            raise ValueError("tip_min_mm must be below tip_max_mm")


def arc_samples(sigma_from: float, sigma_to: float, step_mm: float) -> np.ndarray:
    """Arc lengths from ``sigma_from`` to ``sigma_to`` (both included), about ``step_mm`` apart."""
    return np.linspace(sigma_from, sigma_to, max(2, math.ceil(abs(sigma_to - sigma_from) / step_mm) + 1))


@dataclass(frozen=True)
class AppliedSpeeds:
    """Speeds the manipulator applies after the hold and its limits."""

    advance_mm_s: float = 0.0
    retraction_mm_s: float = 0.0
    steer_deg_s: float = 0.0


def clamp_command(command: DeliveryCommand, limits: DeliveryLimits) -> AppliedSpeeds:
    """Speeds actually applied: zero on hold, clipped to the limits."""
    if command.hold:
        return AppliedSpeeds()
    v_max, w_max = limits.max_advance_speed_mm_s, limits.max_steer_rate_deg_s
    return AppliedSpeeds(
        float(np.clip(command.advance_speed_mm_s, -v_max, v_max)),
        float(np.clip(command.retraction_speed_mm_s, 0.0, limits.max_retraction_speed_mm_s)),
        float(np.clip(command.steer_rate_deg_s, -w_max, w_max)),
    )


def integrate(
    state: DeliveryState,
    speeds: AppliedSpeeds,
    dt_s: float,
    limits: DeliveryLimits,
    max_retraction_mm: float,
) -> DeliveryState:
    """State after ``dt_s`` at the given speeds, with tip, retraction and steer kept within limits."""
    tip = float(
        np.clip(state.tip_sigma_mm + speeds.advance_mm_s * dt_s, limits.tip_min_mm, limits.tip_max_mm)
    )
    ret = float(
        np.clip(state.retraction_mm + max(speeds.retraction_mm_s, 0.0) * dt_s, 0.0, max_retraction_mm)
    )
    steer = float(
        np.clip(state.steer_deg + speeds.steer_deg_s * dt_s, -limits.max_steer_deg, limits.max_steer_deg)
    )
    return DeliveryState(tip, ret, steer)


class DeliveryRail:
    """The delivery system's path (rest pose): straight through the root, then bending over the arch."""

    def __init__(self, root: RootGeometry, devices: DeviceParams) -> None:
        n = root.axis
        tilt = math.radians(devices.delivery_tilt_deg)
        perp = root.direction(math.radians(devices.delivery_tilt_azimuth_deg))
        self.axis = unit(-n * math.cos(tilt) + perp * math.sin(tilt))  # towards the ventricle
        ox, oy = devices.delivery_offset_mm
        self.origin = root.centre + ox * root.e1 + oy * root.e2  # sigma = 0
        a = self.axis
        b = unit(ARCH_DIRECTION_LPS - (ARCH_DIRECTION_LPS @ a) * a)
        self.bend_dir = rotate_about(b, a, math.radians(devices.rail_bend_azimuth_deg))
        self.binormal = unit(np.cross(a, self.bend_dir))
        self.straight_mm = devices.rail_straight_mm
        self.bend_rad = math.radians(devices.rail_bend_deg)
        self.bend_length_mm = devices.rail_bend_radius_mm * self.bend_rad
        self.sigma_min = -(self.straight_mm + self.bend_length_mm + RAIL_PROXIMAL_MM)
        self.bend_mid_sigma = -(self.straight_mm + 0.5 * self.bend_length_mm)
        # the bend in its plane: along -axis (u) and bend_dir (v) against the length ell into the bend
        self._ell_table = np.linspace(0.0, self.bend_length_mm, BEND_SAMPLES)
        heading = self._heading_rad(self._ell_table)
        step = np.diff(self._ell_table)
        self._u_table = np.concatenate(
            ([0.0], np.cumsum(step * 0.5 * (np.cos(heading[1:]) + np.cos(heading[:-1]))))
        )
        self._v_table = np.concatenate(
            ([0.0], np.cumsum(step * 0.5 * (np.sin(heading[1:]) + np.sin(heading[:-1]))))
        )
        self._rotation = np.eye(3)

    def _heading_rad(self, ell: np.ndarray) -> np.ndarray:
        """Turn of the travel direction ``ell`` mm into the bend (integral of the raised-cosine curvature)."""
        x = np.clip(ell / self.bend_length_mm, 0.0, 1.0)
        return self.bend_rad * (x - np.sin(2.0 * np.pi * x) / (2.0 * np.pi))

    def curvature_per_mm(self, sigma: np.ndarray | float) -> np.ndarray:
        """Rail curvature [1/mm] at ``sigma``: 0 on the straight parts, peak 2 * theta / length mid-bend."""
        ell = -self.straight_mm - np.asarray(sigma, dtype=float)
        x = ell / self.bend_length_mm
        inside = (x >= 0.0) & (x <= 1.0)
        return np.where(inside, self.bend_rad / self.bend_length_mm * (1.0 - np.cos(2.0 * np.pi * x)), 0.0)

    def steered(self, steer_deg: float, steer_axis: np.ndarray) -> DeliveryRail:
        """This rail turned by ``steer_deg`` (right-handed) about ``steer_axis`` through sigma = 0.

        :meth:`point` and :meth:`frame` are turned; the attributes (``axis``, ``bend_dir``, ...) stay
        those of the rest pose.
        """
        turned = copy.copy(self)
        angle = math.radians(steer_deg)
        turned._rotation = np.column_stack([rotate_about(e, steer_axis, angle) for e in np.eye(3)])
        return turned

    def _turn(self, vectors: np.ndarray) -> np.ndarray:
        return vectors @ self._rotation.T

    def _proximal_dir(self, ell: np.ndarray) -> np.ndarray:
        """Unit direction of travel *away* from the ventricle, ``ell`` mm into the bend."""
        ang = self._heading_rad(ell)[..., None]
        return np.cos(ang) * -self.axis + np.sin(ang) * self.bend_dir

    def point(self, sigma: np.ndarray | float) -> np.ndarray:
        """Rail points (..., 3) at arc length ``sigma``."""
        s = np.asarray(sigma, dtype=float)
        straight = self.origin + s[..., None] * self.axis
        ell = np.maximum(-self.straight_mm - s, 0.0)
        arc_len = self.bend_length_mm
        into = np.minimum(ell, arc_len)
        u = np.interp(into, self._ell_table, self._u_table)[..., None]
        v = np.interp(into, self._ell_table, self._v_table)[..., None]
        start = self.origin - self.straight_mm * self.axis
        arc = start + u * -self.axis + v * self.bend_dir
        beyond = np.maximum(ell - arc_len, 0.0)[..., None] * self._proximal_dir(np.full_like(ell, arc_len))
        rest = np.where((ell > 0)[..., None], arc + beyond, straight)
        return self.origin + self._turn(rest - self.origin)

    def frame(self, sigma: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(tangent towards the ventricle, in-plane normal, binormal) at ``sigma`` (the rail is planar)."""
        s = np.asarray(sigma, dtype=float)
        ell = np.maximum(-self.straight_mm - s, 0.0)
        tangent = -self._proximal_dir(ell)
        normal = np.cross(self.binormal, tangent)
        binormal = np.broadcast_to(self.binormal, tangent.shape)
        return self._turn(tangent), self._turn(normal), self._turn(binormal)


@dataclass(frozen=True)
class DevicePoints:
    """Keypoint positions of the delivery system (rest pose, 3D)."""

    ct: np.ndarray
    cd: np.ndarray
    cp: np.ndarray
    inflow_radius_mm: float  # radius of the frame's inflow edge (crimped until it expands)


def expanded_radius_mm(u_frac: np.ndarray, inflow_radius_mm: float) -> np.ndarray:
    """Free expanded frame radius along the frame (0 = inflow, 1 = outflow): waist and outflow flare."""
    u = np.asarray(u_frac, dtype=float)
    waist = np.exp(-(((u - 0.35) / 0.18) ** 2))
    return inflow_radius_mm * (1.0 - 0.15 * waist + 0.35 * smoothstep((u - 0.55) / 0.45))


class DeliverySystem:
    """Geometry of the delivery system for a case: keypoints and drawable parts for any state."""

    def __init__(
        self, root: RootGeometry, devices: DeviceParams, image_x: np.ndarray, image_y: np.ndarray
    ) -> None:
        """``image_x``, ``image_y``: the image axes' directions in LPS; a positive steer turns x towards y."""
        self.params = devices
        self.rail = DeliveryRail(root, devices)
        self.steer_axis = unit(np.cross(image_x, image_y))
        self.inflow_radius_mm = min(0.5 * devices.valve_diameter_mm, 1.05 * root.radius)
        rows = max(4, round(devices.frame_height_mm / 7.5))
        self.ring_u_mm = np.linspace(0.0, devices.frame_height_mm, rows + 1)

    def frame_radius_mm(self, u_mm: np.ndarray, retraction_mm: float) -> np.ndarray:
        """Frame radius at ``u_mm`` proximal of CT for a given retraction (crimped inside the capsule)."""
        p = self.params
        u = np.asarray(u_mm, dtype=float)
        free = expanded_radius_mm(u / p.frame_height_mm, self.inflow_radius_mm)
        w = smoothstep((u - (retraction_mm - EXPANSION_LENGTH_MM)) / EXPANSION_LENGTH_MM)
        w = np.where(u >= retraction_mm, 1.0, w)
        return free + (p.crimped_radius_mm - free) * w

    def rail_for(self, state: DeliveryState) -> DeliveryRail:
        """The rail as steered in ``state``."""
        return self.rail if state.steer_deg == 0.0 else self.rail.steered(state.steer_deg, self.steer_axis)

    def points(self, state: DeliveryState) -> DevicePoints:
        p = self.params
        rail = self.rail_for(state)
        sig = state.tip_sigma_mm
        return DevicePoints(
            ct=rail.point(sig),
            cd=rail.point(sig - state.retraction_mm - p.marker_offset_mm),
            cp=rail.point(sig - p.cp_offset_mm),
            inflow_radius_mm=float(self.frame_radius_mm(0.0, state.retraction_mm)),
        )

    def lattice(self, state: DeliveryState, columns: int) -> np.ndarray:
        """Stent struts as zigzag rings (rows, points, 3): diamonds between consecutive rings."""
        u_rings = self.ring_u_mm
        rows = len(u_rings) - 1
        sub = LATTICE_POINTS_PER_STRUT
        j = np.arange(2 * columns * sub + 1) / sub  # vertex coordinate along the ring, closed
        phi = j * np.pi / columns
        k = np.arange(rows)[:, None]
        vertex = np.floor(j).astype(int)
        frac = j - vertex
        low_first = ((vertex[None, :] + k) % 2 == 0).astype(float)
        # u at vertex v: low ring when (v + k) even; linear along the strut to the next vertex
        u_here = np.where(low_first > 0, u_rings[k], u_rings[k + 1])
        u_next = np.where(low_first > 0, u_rings[k + 1], u_rings[k])
        u = u_here + (u_next - u_here) * frac[None, :]
        sigma = state.tip_sigma_mm - u
        rail = self.rail_for(state)
        centre = rail.point(sigma)
        _, normal, binormal = rail.frame(sigma)
        rho = self.frame_radius_mm(u, state.retraction_mm)[..., None]
        radial = np.cos(phi)[None, :, None] * normal + np.sin(phi)[None, :, None] * binormal
        return centre + rho * radial

    def guidewire_path(self, loop_radius_mm: float, curl_azimuth_rad: float) -> np.ndarray:
        """Stiff wire along the rail into the ventricle, ending in its pre-shaped curl (rest pose)."""
        rail = self.rail
        straight = rail.point(arc_samples(rail.sigma_min, GUIDEWIRE_STRAIGHT_MM, 2.0))
        q = math.cos(curl_azimuth_rad) * rail.bend_dir + math.sin(curl_azimuth_rad) * rail.binormal
        centre = straight[-1] + loop_radius_mm * q
        theta = np.linspace(0.0, 1.7 * np.pi, 60)[:, None]
        curl = centre - loop_radius_mm * (q * np.cos(theta) - rail.axis * np.sin(theta))
        return np.vstack([straight, curl[1:]])
