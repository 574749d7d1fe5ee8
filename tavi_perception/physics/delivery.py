"""The delivery system stepped in MuJoCo: handle speeds in, the tip, capsule and steer state out.

:class:`DeliveryPhysics` is the ``mujoco`` counterpart of :func:`tavi_perception.sim.delivery.integrate`:
the manipulator's clipped speeds move the robot's servos (advance carriage, retraction knob, steer), and
the state the simulator renders is where the physics puts the valve, the capsule and the distal
direction. Besides the model's own mechanics (:mod:`tavi_perception.physics.model`) it applies, every
control block of ``BLOCK_STEPS`` MuJoCo steps:

- stick-slip: a shaft segment that is not sliding holds with the static friction, a sliding one with the
  kinetic friction;
- the capsule's drag on the valve: the friction force between capsule and valve, reacted on the valve;
- the release interaction: from ``engage_fraction`` of the deployment the frame meets the annulus and
  pulls the valve towards where it engaged plus ``release_jump_mm``, its hold stiffening to
  ``anchor_stiffness_n_mm`` as the frame opens (the ``anchor`` tendon);
- the beating heart: the systolic ejection pushes the capsule towards the aorta (up to
  ``ejection_force_n`` while the frame is not yet engaged), and breathing moves the root along the path
  against the robot-fixed handle by ``respiratory_share`` of its excursion.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

from tavi_perception.physics.model import SEGMENTS, TIMESTEP_S, build_mjcf
from tavi_perception.physics.params import HandleState, PhysicsParams
from tavi_perception.physics.path import FrictionPath, RailPath
from tavi_perception.sim.delivery import AppliedSpeeds, DeliveryLimits, DeliveryRail, DeliveryState
from tavi_perception.sim.motion import Motion, smoothstep

BLOCK_STEPS = 5  # MuJoCo steps between updates of the applied forces and friction levels (5 ms)
SLIP_SPEED_MM_S = 0.2  # a segment slower than this sticks (static friction)
ANCHOR_OPENING_FRACTION = 0.05  # deployment fraction over which the engaging frame's hold reaches full


class DeliveryPhysics:
    """One delivery system in one patient, from a resting start state."""

    def __init__(
        self,
        params: PhysicsParams,
        rail: DeliveryRail,
        motion: Motion,
        start: DeliveryState,
        frame_height_mm: float,
        limits: DeliveryLimits,
        t_s: float = 0.0,
        path: FrictionPath | None = None,
    ) -> None:
        """``t_s``: the procedure time of ``start`` (the heart and breathing are functions of it);
        ``path``: where the shaft rubs (default: the rail's bend)."""
        self.params = params
        self.limits = limits
        self.frame_height_mm = float(frame_height_mm)
        self._motion = motion
        self._axis = rail.axis
        self._start = start
        self.model = mujoco.MjModel.from_xml_string(
            build_mjcf(rail, path or RailPath(rail), start.tip_sigma_mm, params, frame_height_mm)
        )
        self.data = mujoco.MjData(self.model)
        jid = lambda name: self.model.joint(name).dofadr[0]  # noqa: E731
        self._shaft = np.array([jid(f"shaft_{i}") for i in range(SEGMENTS)])
        self._tip, self._capsule = self._shaft[-1], jid("capsule")
        self._tip_steer, self._steer_drive = jid("tip_steer"), jid("steer_drive")
        self._drive, self._knob = jid("drive"), jid("knob")
        self._anchor = self.model.tendon("anchor").id
        self._kinetic_n = self.model.dof_frictionloss[self._shaft].copy()
        self._static_n = self._kinetic_n * params.static_friction_ratio
        self._handle = HandleState(start.tip_sigma_mm, start.retraction_mm, start.steer_deg)
        self._engaged_at_mm: float | None = None  # tip position where the frame met the annulus
        if start.retraction_mm >= params.engage_fraction * self.frame_height_mm:
            self._engaged_at_mm = start.tip_sigma_mm - params.release_jump_mm  # engaged before: no jump
        self.t_s = float(t_s)  # physics time: whole MuJoCo steps
        self._until_s = self.t_s  # procedure time stepped to (step() keeps t_s within half a step of it)
        self._breathing0_mm = self._breathing_mm(self.t_s)
        self._place(start)

    def _place(self, state: DeliveryState) -> None:
        """Every joint at rest for ``state`` (retraction and steer set directly)."""
        d = self.data
        d.qpos[:] = 0.0
        d.qvel[:] = 0.0
        d.qpos[[self._capsule, self._knob]] = 1e-3 * state.retraction_mm
        steer = math.radians(state.steer_deg - self._start.steer_deg)
        d.qpos[[self._tip_steer, self._steer_drive]] = steer
        d.ctrl[:] = [0.0, 1e-3 * state.retraction_mm, steer]
        mujoco.mj_forward(self.model, d)

    @property
    def handle(self) -> HandleState:
        return self._handle

    @property
    def state(self) -> DeliveryState:
        """Where the physics has the valve (CT), the capsule and the distal direction."""
        q = self.data.qpos  # every joint has one coordinate: qpos and dof indices coincide
        return DeliveryState(
            self._start.tip_sigma_mm + 1e3 * float(q[self._tip]),
            max(0.0, 1e3 * float(q[self._capsule])),
            self._start.steer_deg + math.degrees(float(q[self._tip_steer])),
        )

    def step(self, speeds: AppliedSpeeds, dt_s: float) -> DeliveryState:
        """Advance ``dt_s`` with the servos moving at ``speeds`` (already clipped to the limits)."""
        lim = self.limits
        h = self._handle
        self._until_s += dt_s
        steps = round((self._until_s - self.t_s) / TIMESTEP_S)
        done = 0
        while done < steps:
            n = min(BLOCK_STEPS, steps - done)
            block_s = n * TIMESTEP_S
            h = HandleState(
                float(np.clip(h.advance_mm + speeds.advance_mm_s * block_s, lim.tip_min_mm, lim.tip_max_mm)),
                float(np.clip(h.retraction_mm + speeds.retraction_mm_s * block_s, 0.0, self.frame_height_mm)),
                float(
                    np.clip(h.steer_deg + speeds.steer_deg_s * block_s, -lim.max_steer_deg, lim.max_steer_deg)
                ),
            )
            self._control(h, self.t_s + block_s)
            mujoco.mj_step(self.model, self.data, nstep=n)
            done += n
            self.t_s += block_s
        self._handle = h
        return self.state

    def _breathing_mm(self, t_s: float) -> float:
        """The root's breathing along the path that the shaft does not follow [mm]."""
        return float(self._motion.respiratory_mm(t_s) @ self._axis) * self.params.respiratory_share

    def _control(self, h: HandleState, t_s: float) -> None:
        """Servo targets and the interactions for the next block (see the module docstring)."""
        m, d, p = self.model, self.data, self.params
        breathing_mm = self._breathing_mm(t_s) - self._breathing0_mm
        d.ctrl[0] = 1e-3 * (h.advance_mm - self._start.tip_sigma_mm - breathing_mm)
        d.ctrl[1] = 1e-3 * h.retraction_mm
        d.ctrl[2] = math.radians(h.steer_deg - self._start.steer_deg)
        sliding = np.abs(d.qvel[self._shaft]) > 1e-3 * SLIP_SPEED_MM_S
        m.dof_frictionloss[self._shaft] = np.where(sliding, self._kinetic_n, self._static_n)

        state = self.state
        fraction = state.retraction_mm / self.frame_height_mm
        if self._engaged_at_mm is None and fraction >= p.engage_fraction:
            self._engaged_at_mm = state.tip_sigma_mm
        engaged = 0.0
        if self._engaged_at_mm is not None:
            engaged = float(smoothstep((fraction - p.engage_fraction) / ANCHOR_OPENING_FRACTION))
            target_mm = self._engaged_at_mm + p.release_jump_mm - self._start.tip_sigma_mm
            m.tendon_lengthspring[self._anchor] = 1e-3 * target_mm
            m.tendon_stiffness[self._anchor] = 1e3 * p.anchor_stiffness_n_mm * engaged
        capsule_drag_n = 0.0
        if 0.0 < state.retraction_mm < self.frame_height_mm:
            # the friction on the capsule (< 0 while retracting), reacted on the valve
            capsule_drag_n = float(d.qfrc_constraint[self._capsule])
        ejection_n = -p.ejection_force_n * float(self._motion.cardiac_level(t_s)) * (1.0 - engaged)
        d.qfrc_applied[:] = 0.0
        d.qfrc_applied[self._tip] = capsule_drag_n + ejection_n
