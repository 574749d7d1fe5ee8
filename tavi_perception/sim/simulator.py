"""The procedure simulator: steps time, drives the delivery system, renders frames with ground truth.

Two drives: ``timeline`` (the scenario's segments; any time can be rendered directly with
:meth:`ProcedureSimulator.frame_at`) and ``command`` (a manipulator velocity command, clipped to the
speed limits, integrated frame by frame from the current state; entered with
:meth:`ProcedureSimulator.command`).

Visibility rules (docs/simulator.md): anatomical points (AA1, AA2, STJ1, STJ2) only while the root's contrast
fill is at least ``contrast_threshold``; FE1/FE2 only once the capsule retraction is > 0; every point
outside the image or the collimated field is invisible, and CM also when the bend around it is not in
the field (``Scene.keypoints_in_view``).

The true geometry uses the perception's own definitions (``geometry.frames`` and
``geometry.deviations``) on the exact projected keypoints, so it is what a perfect detector would give;
the 3D tip depth and the physical retraction are added for reference.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import numpy as np

from tavi_perception.geometry.deviations import (
    axis_tilt_deg,
    catheter_deviation,
    deployment_fraction,
    stent_axis_px,
    stent_deviation,
)
from tavi_perception.geometry.frames import AnnulusFrame, annulus_frame_from_keypoints
from tavi_perception.guidance import DepthSource, GuidanceEstimate, TrackingState, annulus_fields
from tavi_perception.keypoints import GROUP_MEMBERS, Group, Kp
from tavi_perception.physics.params import PHYSICS, HandleState, PhysicsParams, sample_physics
from tavi_perception.sim.carm import Projector
from tavi_perception.sim.case import CaseParams, sample_case
from tavi_perception.sim.contrast import ContrastSchedule, Injection
from tavi_perception.sim.delivery import (
    HOLD,
    AppliedSpeeds,
    DeliveryCommand,
    DeliveryLimits,
    DeliveryState,
    clamp_command,
    integrate,
)
from tavi_perception.sim.scenario import Scenario, default_scenario, phase_for_state
from tavi_perception.sim.scene import Scene

if TYPE_CHECKING:
    from tavi_perception.physics.delivery import DeliveryPhysics

DEFAULT_CONTRAST_THRESHOLD = 0.5


@dataclass(kw_only=True)
class TrueGeometry(GuidanceEstimate):
    """Ground-truth geometry of one frame: the Guidance contract filled from the truth, plus the case's.

    Every block is valid; 2D values use the annulus frame of the true projected keypoints and
    ``mm_per_px`` at the isocentre. Frame-edge values are those of the frame's inflow edge also before
    deployment (then the crimped edge inside the capsule, not visible); ``delivery_tilt_deg`` is the stent
    axis (perpendicular to FE1-FE2), ``capsule_retraction_mm`` the physical (3D) retraction, the depth
    source the stent once the capsule retraction started. Not known here, left to the publisher: the
    annulus source (contrast or pigtail, by the contrast threshold) and the target (a parameter).
    """

    frame_height_mm: float  # valve frame height of this case
    cp_cd_closed_mm: float  # CP-CD distance with the capsule closed (3D, along the delivery axis)
    tip_depth_3d_mm: float  # CT below the annulus plane along the root axis (3D)

    @property
    def annulus(self) -> AnnulusFrame:
        """The true annulus frame (from the contract's origin, angle and y sign)."""
        frame = self.annulus_frame()
        assert frame is not None  # the truth always has an annulus
        return frame

    def as_dict(self) -> dict[str, float | int | bool | str | list[float]]:
        """JSON-friendly dict: the annulus origin as a list [px], every known field by name (NaN left out)."""
        out: dict[str, float | int | bool | str | list[float]] = {
            "annulus_origin_px": [self.annulus_origin_x_px, self.annulus_origin_y_px],
        }
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                continue
            out[f.name] = int(value) if isinstance(value, int) and not isinstance(value, bool) else value
        return out


@dataclass(frozen=True)
class SimFrame:
    """One rendered frame with its ground truth."""

    image: np.ndarray  # (H, W) uint8 or uint16
    t_s: float
    frame_index: int
    keypoints_px: np.ndarray  # (11, 2) true projections, also for invisible points
    visible: np.ndarray  # (11,) bool
    mm_per_px: float
    contrast: float  # root fill 0..1
    phase: str
    truth: TrueGeometry
    state: DeliveryState
    case_seed: int


def visibility(
    in_fov: np.ndarray, contrast: float, contrast_threshold: float, retraction_mm: float
) -> np.ndarray:
    """Visibility (11,) by the rules of the module docstring."""
    visible = np.asarray(in_fov, dtype=bool).copy()
    if contrast < contrast_threshold:
        visible[list(GROUP_MEMBERS[Group.ANATOMICAL])] = False
    if retraction_mm <= 0.0:
        visible[[Kp.FE1, Kp.FE2]] = False
    return visible


def true_geometry(
    keypoints_px: np.ndarray,
    mm_per_px: float,
    state: DeliveryState,
    case: CaseParams,
    tip_depth_3d_mm: float,
) -> TrueGeometry:
    """Ground truth from exact projected keypoints with the perception's definitions."""
    kp = np.asarray(keypoints_px, dtype=float)
    frame = annulus_frame_from_keypoints(kp)
    stj_mid = 0.5 * (kp[Kp.STJ1] + kp[Kp.STJ2])
    cath = catheter_deviation(frame, kp[Kp.CT], kp[Kp.CD], frame.origin_px - stj_mid, mm_per_px)
    stent = stent_deviation(frame, kp[Kp.FE1], kp[Kp.FE2], mm_per_px)
    dev = case.devices
    deployed = state.retraction_mm > 0.0
    return TrueGeometry(
        valid=True,
        tracking_state=TrackingState.OK,
        annulus_valid=True,
        **annulus_fields(frame),
        mm_per_px=mm_per_px,
        annulus_diameter_mm=float(np.hypot(*(kp[Kp.AA2] - kp[Kp.AA1]))) * mm_per_px,
        catheter_valid=True,
        tip_depth_mm=cath.tip_depth_mm,
        tip_lateral_mm=cath.tip_lateral_mm,
        coaxiality_deg=cath.coaxiality_deg,
        stent_valid=True,
        fe1_depth_mm=stent.fe1_depth_mm,
        fe2_depth_mm=stent.fe2_depth_mm,
        stent_mean_depth_mm=stent.mean_depth_mm,
        stent_asymmetry_mm=stent.asymmetry_mm,
        stent_tilt_deg=stent.tilt_deg,
        delivery_tilt_deg=axis_tilt_deg(frame, stent_axis_px(frame, kp[Kp.FE1], kp[Kp.FE2])),
        extraction_valid=True,
        capsule_retraction_mm=state.retraction_mm,
        deployment_fraction=deployment_fraction(state.retraction_mm, dev.frame_height_mm),
        depth_source=DepthSource.STENT if deployed else DepthSource.TIP,
        depth_mm=stent.mean_depth_mm if deployed else cath.tip_depth_mm,
        depth_std_mm=0.0,
        calibrated=True,
        calibration_source="simulator",
        frame_height_mm=dev.frame_height_mm,
        cp_cd_closed_mm=dev.cp_cd_closed_mm,
        tip_depth_3d_mm=tip_depth_3d_mm,
    )


def reprojected_keypoints(
    points_lps: np.ndarray, root_axis: np.ndarray, delivery_axis: np.ndarray, projector: Projector
) -> np.ndarray:
    """Keypoints (11, 2) [px] of the 3D keypoints of another view seen through ``projector``.

    The STJ ring's and the frame inflow ring's ends seen side-on depend on the beam: they are placed
    again for ``projector``'s beam about their rings' centres (rings perpendicular to ``root_axis`` and
    ``delivery_axis``); side 1 of each pair is again the end with the smaller image x.
    """
    pts = np.asarray(points_lps, dtype=float).copy()
    for (a, b), axis in (((Kp.STJ1, Kp.STJ2), root_axis), ((Kp.FE1, Kp.FE2), delivery_axis)):
        centre, radius = 0.5 * (pts[a] + pts[b]), 0.5 * float(np.linalg.norm(pts[b] - pts[a]))
        side = np.cross(np.asarray(axis, dtype=float), projector.beam)
        side /= np.linalg.norm(side)
        pts[a], pts[b] = centre - radius * side, centre + radius * side
    px = projector.project(pts)
    for a, b in ((Kp.AA1, Kp.AA2), (Kp.STJ1, Kp.STJ2), (Kp.FE1, Kp.FE2)):
        if px[a, 0] > px[b, 0]:
            px[[a, b]] = px[[b, a]]
    return px


def noise_seed(case_seed: int, t_s: float) -> int:
    """Quantum-noise seed of the frame at ``t_s`` (same frame, same noise, whichever way it is rendered)."""
    return (int(case_seed) * 1_000_003 + round(t_s * 1000.0)) & 0x7FFFFFFF


class ProcedureSimulator:
    """Simulated fluoroscopy of one case: a timeline or manipulator-driven delivery, frame by frame."""

    def __init__(
        self,
        case: CaseParams | int,
        *,
        image_size: int = 512,
        bit_depth: int = 8,
        fps: float = 15.0,
        scenario: Scenario | None = None,
        contrast: ContrastSchedule | None = None,
        limits: DeliveryLimits | None = None,
        contrast_threshold: float = DEFAULT_CONTRAST_THRESHOLD,
        scene: Scene | None = None,
        physics: str = "kinematic",
        physics_params: PhysicsParams | None = None,
    ) -> None:
        """``scene``: a prepared scene of ``case`` (the CT renderer's, ``sim.ct``); ``image_size`` and
        ``bit_depth`` are then the scene's. Default: the stylised scene of ``case``.

        ``physics``: how the command drive moves the delivery system: ``kinematic`` (the tip moves exactly
        as commanded) or ``mujoco`` (:mod:`tavi_perception.physics`: friction, compliance, backlash, the
        release jump; parameters ``physics_params``, default drawn from the case seed)."""
        if fps <= 0 or not math.isfinite(fps):
            raise ValueError(f"fps must be positive, got {fps}")
        if physics not in PHYSICS:
            raise ValueError(f"physics must be one of {PHYSICS}, got {physics!r}")
        if not 0.0 < contrast_threshold <= 1.0:
            raise ValueError(f"contrast threshold must be within (0, 1], got {contrast_threshold}")
        self.case = sample_case(case) if isinstance(case, int) else case
        self.scene = scene if scene is not None else Scene(self.case, image_size, bit_depth)
        truth_view = self.case.truth_view
        self._truth_projector = None if truth_view is None else Projector(truth_view, self.scene.size_px)
        self.scenario = scenario if scenario is not None else default_scenario(self.case)
        self.contrast = contrast if contrast is not None else self.scenario.contrast
        self.limits = limits if limits is not None else DeliveryLimits()
        self.fps = float(fps)
        self.contrast_threshold = float(contrast_threshold)
        self.t_s = 0.0
        self.frame_index = 0
        self.mode = "timeline"
        self._state = self.scenario.start
        self._command = HOLD
        self.physics = physics
        self.physics_params = physics_params
        if physics == "mujoco" and physics_params is None:
            self.physics_params = sample_physics(self.case.seed)
        self._physics: DeliveryPhysics | None = None

    @property
    def mm_per_px(self) -> float:
        return self.scene.mm_per_px

    @property
    def image_size(self) -> int:
        return self.scene.size_px

    @property
    def finished(self) -> bool:
        """Timeline drive and past the end of the scenario (the state is held from then on)."""
        return self.mode == "timeline" and self.t_s > self.scenario.duration_s

    @property
    def state(self) -> DeliveryState:
        """Delivery state at the current time."""
        return self._timeline_state(self.t_s) if self.mode == "timeline" else self._state

    @property
    def handle(self) -> HandleState:
        """The manipulator's side: where the servos are (the state itself without physics)."""
        if self._physics is not None:
            return self._physics.handle
        s = self.state
        return HandleState(s.tip_sigma_mm, s.retraction_mm, s.steer_deg)

    def _start_physics(self) -> None:
        """Command drive from the current state: a resting delivery system there (``mujoco`` only)."""
        if self.physics_params is None:
            return
        # imported here: tavi_perception.physics builds on sim.delivery, which imports this package
        from tavi_perception.physics.delivery import DeliveryPhysics
        from tavi_perception.physics.path import friction_path

        self._physics = DeliveryPhysics(
            self.physics_params,
            self.scene.delivery.rail,
            self.scene.motion,
            self._state,
            self.case.devices.frame_height_mm,
            self.limits,
            self.t_s,
            friction_path(self.scene),
        )

    def _timeline_state(self, t_s: float) -> DeliveryState:
        return self.scenario.state_at(t_s, self.limits, self.case.devices.max_retraction_mm)

    def command(self, command: DeliveryCommand) -> None:
        """Drive the delivery system by ``command`` from now on (switches to the command drive)."""
        if self.mode == "timeline":
            self._state = self._timeline_state(self.t_s)
            self.mode = "command"
            self._start_physics()
        self._command = command

    def place(self, state: DeliveryState) -> None:
        """Put the delivery system at ``state`` and hold there (command drive from now on)."""
        dev, lim = self.case.devices, self.limits
        if not lim.tip_min_mm <= state.tip_sigma_mm <= lim.tip_max_mm:
            raise ValueError(f"tip {state.tip_sigma_mm} mm outside {lim.tip_min_mm}..{lim.tip_max_mm} mm")
        if not 0.0 <= state.retraction_mm <= dev.max_retraction_mm:
            raise ValueError(f"retraction {state.retraction_mm} mm outside 0..{dev.max_retraction_mm} mm")
        self.mode = "command"
        self._state = state
        self._command = HOLD
        self._start_physics()

    def inject_contrast(self, plateau_s: float = 2.0, start_s: float | None = None) -> None:
        """Add a contrast injection, starting now unless ``start_s`` is given."""
        start = self.t_s if start_s is None else float(start_s)
        self.contrast = self.contrast.with_injection(Injection(start, plateau_s=plateau_s))

    def applied_speeds(self) -> AppliedSpeeds:
        """Speeds applied in the command drive after the hold and the manipulator limits."""
        return clamp_command(self._command, self.limits)

    def truth_at(self, t_s: float, state: DeliveryState) -> tuple[np.ndarray, TrueGeometry]:
        """(true keypoints (11, 2) [px], true geometry) at ``t_s`` for ``state``, without rendering."""
        kp, truth, _ = self._truth(t_s, state)
        return kp, truth

    def _truth(self, t_s: float, state: DeliveryState) -> tuple[np.ndarray, TrueGeometry, np.ndarray]:
        """True keypoints, true geometry and which keypoints are in view.

        With ``case.truth_view`` the geometry is measured in that coplanar view (what a perfect detector
        would give there), the keypoints are those of the imaging view.
        """
        scene = self.scene
        kp, extra = scene.keypoints(t_s, state)
        root = scene.root
        ct = extra["points_lps"][Kp.CT]
        tip_depth_3d = -float((ct - extra["offset_lps"] - root.centre) @ root.axis)
        if self._truth_projector is None:
            truth = true_geometry(kp, scene.mm_per_px, state, self.case, tip_depth_3d)
        else:
            tangent = scene.delivery.rail_for(state).frame(np.array([state.tip_sigma_mm]))[0].reshape(3)
            kp_ref = reprojected_keypoints(extra["points_lps"], root.axis, tangent, self._truth_projector)
            truth = true_geometry(kp_ref, self._truth_projector.mm_per_px, state, self.case, tip_depth_3d)
        return kp, truth, scene.keypoints_in_view(kp, extra)

    def _render(self, t_s: float, frame_index: int, state: DeliveryState, phase: str) -> SimFrame:
        scene = self.scene
        fill = self.contrast.fill(t_s)
        image = scene.render(t_s, state, fill, noise_seed(self.case.seed, t_s))
        kp, truth, in_view = self._truth(t_s, state)
        vis = visibility(in_view, fill, self.contrast_threshold, state.retraction_mm)
        return SimFrame(
            image, t_s, frame_index, kp, vis, scene.mm_per_px, fill, phase, truth, state, self.case.seed
        )

    def frame_at(self, t_s: float, frame_index: int = 0) -> SimFrame:
        """Render the timeline at any ``t_s`` without stepping (timeline drive only)."""
        if self.mode != "timeline":
            raise RuntimeError("frame_at renders the timeline; this simulator is in the command drive")
        return self._render(t_s, frame_index, self._timeline_state(t_s), self.scenario.phase_at(t_s))

    def step(self) -> SimFrame:
        """The frame at the current time, then advance by 1/fps (integrating the command drive)."""
        if self.mode == "timeline":
            frame = self.frame_at(self.t_s, self.frame_index)
        else:
            phase = phase_for_state(self._state, self.case.devices.frame_height_mm)
            frame = self._render(self.t_s, self.frame_index, self._state, phase)
            if self._physics is not None:
                self._state = self._physics.step(self.applied_speeds(), 1.0 / self.fps)
            else:
                self._state = integrate(
                    self._state,
                    self.applied_speeds(),
                    1.0 / self.fps,
                    self.limits,
                    self.case.devices.max_retraction_mm,
                )
        self.frame_index += 1
        self.t_s = self.frame_index / self.fps
        return frame

    def frames(self, count: int) -> Iterator[SimFrame]:
        """``count`` consecutive frames (a sequence for tracker evaluation)."""
        for _ in range(count):
            yield self.step()
