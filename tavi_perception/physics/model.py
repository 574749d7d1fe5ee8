"""The delivery system as a MuJoCo model (MJCF text built from the scene's rail and the case's parameters).

A lumped axial model along the vessel path (docs/physics.md):

- ``drive``: the robot's advance carriage, a slide joint held by a position servo at the commanded
  position. It meets the delivery system's handle (``shaft_0``) only at the ends of a dead band (a
  limited fixed tendon ``backlash``): reversals are lost until the play is taken up.
- ``shaft_0 .. shaft_{N-1}``: segments of the shaft from the handle to the valve, one slide joint each
  along the path's tangent, coordinates in metres of travel along the path. Neighbours are joined by
  spring tendons (axial compliance); each segment has Coulomb friction (``frictionloss``) and viscous
  drag (``damping``) against the vessel wall, more where the path bends (capstan effect); the last
  segment is the valve in its capsule (CT).
- ``knob`` and ``capsule``: the retraction servo on the handle and the capsule's retraction relative to
  the valve, joined by the outer sheath's spring; ``capsule`` slides on the crimped valve with Coulomb
  friction, whose reaction drags the valve back (applied by :mod:`tavi_perception.physics.delivery`).
- ``anchor``: a spring tendon on the valve whose stiffness and rest position the release interaction
  sets while the frame engages the annulus (0 before).
- ``steer_drive`` and ``tip_steer``: the steer servo and the distal direction, joined by the shaft's
  bending stiffness; the distal turn has Coulomb friction.

Geometry (capsule geoms along the rail, no contacts) only places the segments for a viewer; the
dynamics are in the joints' generalised coordinates. SI units inside: m, kg, N, s, rad.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tavi_perception.physics.params import PhysicsParams
from tavi_perception.physics.path import FrictionPath
from tavi_perception.sim.delivery import DeliveryRail

TIMESTEP_S = 0.001  # MuJoCo step
SEGMENTS = 12  # shaft segments from the handle to the valve
SHAFT_LENGTH_MM = 1000.0  # handle to valve, femoral access (groin to aortic root)
SEGMENT_MASS_KG = 0.02  # lumped, with the blood moved along; the dynamics are friction-dominated
DRIVE_MASS_KG = 0.2  # advance carriage and retraction knob
DRIVE_STIFFNESS_N_M = 2.0e4  # position servos of the robot (advance, retraction)
LINK_DAMPING_RATIO = 0.3  # internal (material) damping of each spring link, share of critical
STEER_INERTIA_KG_M2 = (1.0e-4, 1.0e-5)  # steer servo, distal section
STEER_SERVO_N_M_RAD = 10.0
FRICTION_SAMPLES_PER_SEGMENT = 64  # samples of the path's curvature per segment
NOSLIP_ITERATIONS = 10  # hard dry friction: without them the soft friction constraints let the shaft creep
HARD_LIMIT = f"{2 * TIMESTEP_S} 1"  # solref of the play and the capsule range: as stiff as the step allows


@dataclass(frozen=True)
class ModelLayout:
    """Where the shaft starts: segment arc lengths [mm] along the rail and their friction shares."""

    segment_sigma_mm: np.ndarray  # (SEGMENTS,) start position of each segment, last = the tip
    friction_share: np.ndarray  # (SEGMENTS,) share of the shaft's friction, sums to 1


def layout(path: FrictionPath, tip_sigma_mm: float, params: PhysicsParams) -> ModelLayout:
    """Segment positions from the handle to the tip and the friction shares along the path.

    Each segment's share is its length plus ``bend_friction_gain`` x the path's bend radius x the path's
    turn over it: a shaft pressed into a bend by its own load rubs there more (the capstan effect,
    linearised for a fixed load).
    """
    sigma = tip_sigma_mm - np.linspace(SHAFT_LENGTH_MM, 0.0, SEGMENTS)
    seg_mm = SHAFT_LENGTH_MM / (SEGMENTS - 1)
    weights = []
    for s in sigma:
        samples = np.linspace(s - 0.5 * seg_mm, s + 0.5 * seg_mm, FRICTION_SAMPLES_PER_SEGMENT)
        turn_rad = float(np.mean(path.curvature_per_mm(samples))) * seg_mm
        weights.append(seg_mm + params.bend_friction_gain * path.bend_radius_mm * turn_rad)
    share = np.asarray(weights) / float(np.sum(weights))
    return ModelLayout(sigma, share)


def _vec(v: np.ndarray) -> str:
    return " ".join(f"{x:.6g}" for x in np.asarray(v, dtype=float).ravel())


def _critical_damping(stiffness: float, mass: float) -> float:
    return 2.0 * math.sqrt(stiffness * mass)


def build_mjcf(
    rail: DeliveryRail, path: FrictionPath, tip_sigma_mm: float, params: PhysicsParams, frame_height_mm: float
) -> str:
    """MJCF text of the delivery system for a tip starting at ``tip_sigma_mm`` (every joint at 0 = rest):
    segments placed along ``rail``, their friction where ``path`` bends."""
    lay = layout(path, tip_sigma_mm, params)
    points_m = 1e-3 * rail.point(lay.segment_sigma_mm)
    tangents = rail.frame(lay.segment_sigma_mm)[0]
    friction_n = params.shaft_friction_n * lay.friction_share
    damping_n_s_m = 1e3 * params.shaft_damping_n_s_mm * lay.friction_share
    seg_m = 1e-3 * SHAFT_LENGTH_MM / (SEGMENTS - 1)
    link_n_m = 1e3 * params.axial_stiffness_n_mm * (SEGMENTS - 1)  # N-1 links in series
    link_damping = LINK_DAMPING_RATIO * _critical_damping(link_n_m, SEGMENT_MASS_KG)
    sheath_n_m = 1e3 * params.sheath_stiffness_n_mm
    sheath_damping = LINK_DAMPING_RATIO * _critical_damping(sheath_n_m, SEGMENT_MASS_KG)
    drive_kv = _critical_damping(DRIVE_STIFFNESS_N_M, DRIVE_MASS_KG)
    steer_n_m_rad = 1e-3 * params.steer_stiffness_n_mm_deg * 180.0 / math.pi
    steer_servo_kv = _critical_damping(STEER_SERVO_N_M_RAD, STEER_INERTIA_KG_M2[0])
    steer_damping = LINK_DAMPING_RATIO * _critical_damping(steer_n_m_rad, STEER_INERTIA_KG_M2[1])
    half_play_m = max(0.5e-3 * params.backlash_mm, 1e-6)  # MuJoCo needs a range: no play = 1 µm
    proximal = points_m[0] - 0.05 * tangents[0]

    drive_inertial = f'<inertial pos="0 0 0" mass="{DRIVE_MASS_KG}" diaginertia="1e-4 1e-4 1e-4"/>'
    bodies = [
        f'<body name="{name}" pos="{_vec(proximal)}">'
        f'<joint name="{name}" type="slide" axis="{_vec(axis)}"/>{drive_inertial}</body>'
        for name, axis in (("drive", tangents[0]), ("knob", -tangents[0]))
    ]
    for i, (p, t) in enumerate(zip(points_m, tangents, strict=True)):
        a, b = -0.5 * seg_m * t, 0.5 * seg_m * t
        bodies.append(
            f'<body name="shaft_{i}" pos="{_vec(p)}">'
            f'<joint name="shaft_{i}" type="slide" axis="{_vec(t)}" damping="{damping_n_s_m[i]:.6g}" '
            f'frictionloss="{friction_n[i]:.6g}"/>'
            f'<geom type="capsule" fromto="{_vec(a)} {_vec(b)}" size="0.003" mass="{SEGMENT_MASS_KG}"/>'
            "</body>"
        )
    bodies.append(
        f'<body name="capsule" pos="{_vec(points_m[-1])}">'
        f'<joint name="capsule" type="slide" axis="{_vec(-tangents[-1])}" limited="true" '
        f'solreflimit="{HARD_LIMIT}" '
        f'range="0 {1e-3 * frame_height_mm:.6g}" frictionloss="{params.capsule_friction_n:.6g}"/>'
        f'<inertial pos="0 0 0" mass="{SEGMENT_MASS_KG}" diaginertia="1e-6 1e-6 1e-6"/></body>'
    )
    beam = np.cross(tangents[-1], rail.frame(lay.segment_sigma_mm[-1])[1])
    for name, inertia in zip(("steer_drive", "tip_steer"), STEER_INERTIA_KG_M2, strict=True):
        extra = f' frictionloss="{1e-3 * params.steer_friction_n_mm:.6g}"' if name == "tip_steer" else ""
        bodies.append(
            f'<body name="{name}" pos="{_vec(points_m[-1])}">'
            f'<joint name="{name}" type="hinge" axis="{_vec(beam)}"{extra}/>'
            f'<inertial pos="0 0 0" mass="0.01" diaginertia="{inertia} {inertia} {inertia}"/></body>'
        )

    def spring(name: str, terms: list[tuple[str, float]], stiffness: float, damping: float) -> str:
        joints = "".join(f'<joint joint="{j}" coef="{c:g}"/>' for j, c in terms)
        return (
            f'<fixed name="{name}" stiffness="{stiffness:.6g}" damping="{damping:.6g}" '
            f'springlength="0 0">{joints}</fixed>'
        )

    tendons = [
        f'<fixed name="backlash" limited="true" solreflimit="{HARD_LIMIT}" '
        f'range="{-half_play_m:.6g} {half_play_m:.6g}">'
        '<joint joint="shaft_0" coef="1"/><joint joint="drive" coef="-1"/></fixed>'
    ]
    tendons += [
        spring(f"link_{i}", [(f"shaft_{i}", 1.0), (f"shaft_{i - 1}", -1.0)], link_n_m, link_damping)
        for i in range(1, SEGMENTS)
    ]
    tendons.append(spring("sheath", [("knob", 1.0), ("capsule", -1.0)], sheath_n_m, sheath_damping))
    tendons.append(spring("anchor", [(f"shaft_{SEGMENTS - 1}", 1.0)], 0.0, 0.0))
    tendons.append(
        spring("bending", [("tip_steer", 1.0), ("steer_drive", -1.0)], steer_n_m_rad, steer_damping)
    )
    servos = (
        ("advance", "drive", DRIVE_STIFFNESS_N_M, drive_kv),
        ("retraction", "knob", DRIVE_STIFFNESS_N_M, drive_kv),
        ("steer", "steer_drive", STEER_SERVO_N_M_RAD, steer_servo_kv),
    )
    actuators = [
        f'<position name="{name}" joint="{joint}" kp="{kp:.6g}" kv="{kv:.6g}"/>'
        for name, joint, kp, kv in servos
    ]
    return (
        '<mujoco model="tavi_delivery_system">'
        f'<option timestep="{TIMESTEP_S}" integrator="implicitfast" gravity="0 0 0" '
        f'noslip_iterations="{NOSLIP_ITERATIONS}"/>'
        '<default><geom contype="0" conaffinity="0"/></default>'
        f"<worldbody>{''.join(bodies)}</worldbody>"
        f"<tendon>{''.join(tendons)}</tendon>"
        f"<actuator>{''.join(actuators)}</actuator>"
        "</mujoco>"
    )
