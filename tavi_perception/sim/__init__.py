"""Synthetic X-ray fluoroscopy of a TAVI procedure: phantom, C-arm projection, motion, contrast, scenarios.

API summary::

    from tavi_perception.sim import ProcedureSimulator, DeliveryCommand, sample_case

    sim = ProcedureSimulator(seed)              # or a CaseParams from sample_case(seed, lao_deg=..., ...)
    frame = sim.step()                          # SimFrame at t = 0, then t advances by 1/fps
    frame.image                                 # (H, W) uint8 (bit_depth=8) or uint16 (bit_depth=16)
    frame.keypoints_px, frame.visible           # (11, 2) true projections, (11,) bool by the rules
    frame.truth.tip_depth_mm                    # TrueGeometry: annulus frame, depths, retraction, ...
    frame.contrast, frame.phase, frame.mm_per_px, frame.state

    sim.frame_at(t_s)                           # timeline drive: render any time directly (datasets)
    for frame in sim.frames(150): ...           # a sequence (tracker evaluation)

    sim.command(DeliveryCommand(advance_speed_mm_s=1.0, retraction_speed_mm_s=0.0, hold=False))
                                                # command drive from now on: speeds clipped to
                                                # DeliveryLimits (5 mm/s advance, 2 mm/s retraction),
                                                # tip kept within -30..20 mm, retraction only forward
    sim.place(DeliveryState(tip_sigma_mm=-15.0, retraction_mm=0.0))   # command drive from a given state
    sim.inject_contrast(plateau_s=2.0)          # an aortogram now (fault/scenario hook)
    ProcedureSimulator(seed, physics="mujoco")  # command drive through the MuJoCo delivery system
                                                # (docs/physics.md); sim.handle = the servo side
    ProcedureSimulator(seed, contrast=ContrastSchedule())          # no contrast injected at all
    ProcedureSimulator(seed, scenario=default_scenario(case, contrast_at_start=False))

Everything is deterministic for a case seed (the quantum noise is seeded per case and frame time).
Conventions: docs/ARCHITECTURE.md (delivery-system keypoints, annulus frame); docs/simulator.md
(model, visibility rules, side-1 rule, parameters, dataset format and the fixed test split).
"""

from tavi_perception.sim.carm import CArmView, Projector, s_curve_cran_deg
from tavi_perception.sim.case import CaseParams, sample_case
from tavi_perception.sim.contrast import ContrastSchedule, Injection
from tavi_perception.sim.delivery import DeliveryCommand, DeliveryLimits, DeliveryState
from tavi_perception.sim.motion import Motion, MotionParams
from tavi_perception.sim.scenario import PHASES, Scenario, Segment, default_scenario
from tavi_perception.sim.simulator import ProcedureSimulator, SimFrame, TrueGeometry, visibility

SIM_VERSION = "1.3"

__all__ = [
    "PHASES",
    "SIM_VERSION",
    "CArmView",
    "CaseParams",
    "ContrastSchedule",
    "DeliveryCommand",
    "DeliveryLimits",
    "DeliveryState",
    "Injection",
    "Motion",
    "MotionParams",
    "ProcedureSimulator",
    "Projector",
    "Scenario",
    "Segment",
    "SimFrame",
    "TrueGeometry",
    "default_scenario",
    "s_curve_cran_deg",
    "sample_case",
    "visibility",
]
