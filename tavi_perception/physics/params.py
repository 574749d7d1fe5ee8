"""Parameters of the delivery-system physics, drawn per case within documented ranges (docs/physics.md).

Forces are in newtons, stiffnesses in N/mm, lengths in mm, as the clinical and bench literature quotes
them; :mod:`tavi_perception.physics.model` converts to SI for MuJoCo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

PHYSICS = ("kinematic", "mujoco")  # the simulator's manipulator models (ProcedureSimulator(physics=...))

# (low, high) ranges of the per-case draw; docs/physics.md gives the sources and the reasoning.
RANGES: dict[str, tuple[float, float]] = {
    "shaft_friction_n": (2.0, 6.0),
    "static_friction_ratio": (1.2, 1.6),
    "shaft_damping_n_s_mm": (0.005, 0.02),
    "axial_stiffness_n_mm": (1.0, 3.0),
    "backlash_mm": (0.5, 2.0),
    "bend_friction_gain": (1.0, 3.0),
    "steer_stiffness_n_mm_deg": (2.0, 6.0),
    "steer_friction_n_mm": (2.0, 6.0),
    "capsule_friction_n": (0.5, 1.5),
    "sheath_stiffness_n_mm": (3.0, 8.0),
    "engage_fraction": (0.12, 0.25),
    "release_jump_mm": (0.5, 1.5),
    "anchor_stiffness_n_mm": (4.0, 10.0),
    "ejection_force_n": (0.3, 1.0),
    "respiratory_share": (0.05, 0.2),
}


@dataclass(frozen=True)
class PhysicsParams:
    """One delivery system in one patient (defaults: the middle of every range, a forward release jump)."""

    shaft_friction_n: float = 4.0  # [N] kinetic Coulomb friction of the whole shaft along the path
    static_friction_ratio: float = 1.4  # [1] static / kinetic friction (stick-slip when > 1)
    shaft_damping_n_s_mm: float = 0.0125  # [N s/mm] viscous drag of the whole shaft (blood, wall)
    axial_stiffness_n_mm: float = 2.0  # [N/mm] handle-to-tip axial stiffness of the shaft
    backlash_mm: float = 1.25  # [mm] dead band of the advance drive at the handle (total play)
    bend_friction_gain: float = 2.0  # [1] extra friction per unit of (curvature x mean bend radius)
    steer_stiffness_n_mm_deg: float = 4.0  # [N mm/deg] bending stiffness handle steer -> tip direction
    steer_friction_n_mm: float = 4.0  # [N mm] Coulomb torque resisting the tip's turn
    capsule_friction_n: float = 1.0  # [N] friction between the capsule and the crimped valve
    sheath_stiffness_n_mm: float = 5.5  # [N/mm] outer sheath, retraction knob to capsule
    engage_fraction: float = 0.18  # [1] deployment fraction at which the frame meets the annulus
    release_jump_mm: float = 1.0  # [mm] signed: + the valve dives towards the ventricle, - pops up
    anchor_stiffness_n_mm: float = 7.0  # [N/mm] hold of the fully engaged frame in the annulus
    ejection_force_n: float = 0.65  # [N] peak systolic push of the ejection on the capsule (aortic)
    respiratory_share: float = 0.1  # [1] share of the root's breathing along the rail the handle misses

    def __post_init__(self) -> None:
        bad = [f.name for f in fields(self) if not math.isfinite(getattr(self, f.name))]
        bad += [f.name for f in fields(self) if f.name != "release_jump_mm" and getattr(self, f.name) < 0.0]
        if self.static_friction_ratio < 1.0:
            bad.append("static_friction_ratio (>= 1)")
        if self.axial_stiffness_n_mm <= 0 or self.sheath_stiffness_n_mm <= 0:
            bad.append("stiffnesses (> 0)")
        if not 0.0 < self.engage_fraction < 1.0:
            bad.append("engage_fraction (0..1)")
        if bad:
            raise ValueError("invalid physics parameters: " + ", ".join(bad))


def sample_physics(seed: int) -> PhysicsParams:
    """Parameters of case ``seed``: uniform within :data:`RANGES`, the release jump's sign at random."""
    rng = np.random.default_rng([int(seed), 0x9E7])
    values = {name: float(rng.uniform(lo, hi)) for name, (lo, hi) in RANGES.items()}
    if rng.random() < 0.5:
        values["release_jump_mm"] = -values["release_jump_mm"]
    return PhysicsParams(**values)


@dataclass(frozen=True)
class HandleState:
    """The robot side: where the servos are commanded (the delivery state itself without physics)."""

    advance_mm: float  # advance carriage, in tip arc length at rest (the tip's place without load)
    retraction_mm: float  # retraction knob travel
    steer_deg: float  # steer servo
