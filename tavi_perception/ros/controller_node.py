"""Reference controller node: ``guidance`` (tavi_msgs/Guidance) -> ``manipulator/command`` at a fixed rate.

A lifecycle node (:mod:`tavi_perception.ros.lifecycle`): *configure* builds the controller and the
publishers, *activate* subscribes ``guidance`` and starts the command timer, *deactivate* publishes one
hold command (the manipulator stops now, not after its command timeout) and stops both. An unconfigured
or inactive controller commands nothing; with ``autostart`` (default) the process activates itself.

The command is computed by :class:`tavi_perception.controller.ReferenceController` on a timer, so the
node keeps publishing (holds) when guidance stops arriving. Staleness is measured on the monotonic
clock from the receipt of the last guidance. The command header stamp is the answered guidance's stamp
(frame ``annulus``); before any guidance it is the node's clock.
"""

from __future__ import annotations

import dataclasses
import sys
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header
from tavi_msgs.msg import Guidance, ManipulatorCommand

from tavi_perception.controller import Command, ControllerParams, Phase, ReferenceController
from tavi_perception.ros.diagnostics import status
from tavi_perception.ros.lifecycle import AUTOSTART, ManagedNode, run
from tavi_perception.ros.messages import command_to_msg, guidance_sample
from tavi_perception.ros.params import ParamSpec, declare_parameters, dynamic_parameter_guard

_DEFAULTS = ControllerParams()


def _limit(name: str, description: str, low: float, high: float) -> ParamSpec:
    """A run-time changeable controller limit whose default is ControllerParams' default."""
    return ParamSpec(name, getattr(_DEFAULTS, name), description, low, high, dynamic=True)


PARAMETERS: tuple[ParamSpec, ...] = (
    AUTOSTART,
    ParamSpec("rate_hz", 30.0, "[Hz] command publication rate", 1.0, 1000.0),
    _limit("max_advance_speed_mm_s", "[mm/s] bound on |advance speed|", 0.01, 20.0),
    _limit("max_retraction_speed_mm_s", "[mm/s] capsule retraction speed (bound and cruise)", 0.01, 10.0),
    _limit("max_accel_mm_s2", "[mm/s^2] bound on the change of either speed per second", 0.01, 100.0),
    _limit("depth_gain_per_s", "[1/s] advance speed per mm of depth error", 0.01, 20.0),
    _limit("guidance_timeout_s", "[s] hold when the last guidance is older (receipt time)", 0.01, 10.0),
    _limit("settle_time_s", "[s] time in the depth band before deployment starts", 0.01, 60.0),
    _limit("done_fraction", "[1] deployment fraction that completes the implantation", 0.05, 1.0),
    _limit("max_abs_depth_error_mm", "[mm] hold when |depth error| is larger (implausible)", 0.1, 100.0),
    _limit("max_steer_rate_deg_s", "[deg/s] bound on |steer rate|", 0.01, 30.0),
    _limit(
        "max_steer_accel_deg_s2", "[deg/s^2] bound on the change of the steer rate per second", 0.01, 100.0
    ),
    _limit("steer_gain_per_s", "[1/s] steer rate per degree of tilt outside the deadband", 0.01, 20.0),
    _limit("tilt_deadband_deg", "[deg] no steering while |delivery tilt| is within this", 0.01, 10.0),
    _limit(
        "max_deploy_tilt_deg", "[deg] deployment starts only with |delivery tilt| within this", 0.01, 45.0
    ),
    _limit(
        "deploy_band_mm",
        "[mm] the capsule retraction runs only while |depth error| is within this (and the tolerance)",
        0.01,
        10.0,
    ),
    ParamSpec("guidance_reliable", True, "subscribe to guidance reliably (false: best effort)"),
)

_CONTROLLER_KEYS = frozenset(f.name for f in dataclasses.fields(ControllerParams))


def controller_params(values: dict[str, object]) -> ControllerParams:
    """ControllerParams from node parameter values (extra keys ignored)."""
    return ControllerParams(**{k: v for k, v in values.items() if k in _CONTROLLER_KEYS})  # type: ignore[arg-type]


class ControllerNode(ManagedNode):
    """Subscribes ``guidance``, publishes ``manipulator/command`` and ``/diagnostics`` while active."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__("controller_node", **kwargs)  # type: ignore[arg-type]
        self._values = declare_parameters(self, PARAMETERS)
        controller_params(self._values)  # fail fast on an inconsistent set
        self.add_on_set_parameters_callback(dynamic_parameter_guard(PARAMETERS))
        self.add_post_set_parameters_callback(self._apply_parameters)
        self._controller: ReferenceController | None = None
        self._subscription = None
        self._command_timer = None

    # --- lifecycle -----------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._controller = ReferenceController(controller_params(self._values))
        self._last_header = Header()
        self._phase = self._controller.phase
        self._commands = 0
        self._last_reason = "inactive"
        self._holding = True
        self._pub = self.create_lifecycle_publisher(ManipulatorCommand, "manipulator/command", 10)
        self._diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(f"controller configured: {self._controller.params}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        reliability = (
            ReliabilityPolicy.RELIABLE if self._values["guidance_reliable"] else ReliabilityPolicy.BEST_EFFORT
        )
        self._subscription = self.create_subscription(
            Guidance, "guidance", self._on_guidance, QoSProfile(depth=1, reliability=reliability)
        )
        self._command_timer = self.create_timer(1.0 / float(self._values["rate_hz"]), self._tick)
        self.get_logger().info("active: commanding the manipulator")
        return super().on_activate(state)

    def _stop(self) -> None:
        """Stop commanding; an active controller first tells the manipulator to hold at once (deactivate,
        shutdown) rather than leaving it to its own command timeout."""
        if self._subscription is not None:
            self._publish(Command(0.0, 0.0, 0.0, True, "controller deactivated", self._phase, None))
        self._destroy("_subscription", "_command_timer")

    def _release(self) -> None:
        if self._controller is None:
            return
        self.destroy_lifecycle_publisher(self._pub)
        self.destroy_publisher(self._diag)
        self.destroy_timer(self._diag_timer)
        self._controller = None

    # --- parameters and messages ---------------------------------------------------------------

    def _apply_parameters(self, params: list[Parameter]) -> None:
        self._values.update({p.name: p.value for p in params if p.name in self._values})
        if self._controller is not None:
            self._controller.params = controller_params(self._values)
            self.get_logger().info(f"controller parameters now {self._controller.params}")

    def _on_guidance(self, msg: Guidance) -> None:
        self._last_header = msg.header
        self._controller.on_guidance(guidance_sample(msg, time.monotonic()))

    def _tick(self) -> None:
        self._publish(self._controller.step(time.monotonic()))

    def _publish(self, command: Command) -> None:
        header = (
            self._last_header
            if command.stamp_s is not None
            else Header(stamp=self.get_clock().now().to_msg())
        )
        self._pub.publish(command_to_msg(command, header))
        self._commands += 1
        self._last_reason = command.reason
        self._holding = command.hold
        if command.phase is not self._phase:
            self.get_logger().info(f"phase {self._phase.value} -> {command.phase.value}")
            self._phase = command.phase

    def _publish_diagnostics(self) -> None:
        active = self._command_timer is not None
        if not active:
            level, message = DiagnosticStatus.WARN, "inactive"
        elif self._holding and self._phase is not Phase.DONE:
            level, message = DiagnosticStatus.WARN, self._last_reason
        else:
            level, message = DiagnosticStatus.OK, self._last_reason
        values = {
            "active": active,
            "phase": self._phase.value,
            "commands": self._commands,
            "last_reason": self._last_reason,
        }
        array = DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()))
        array.status = [
            status(
                self.get_fully_qualified_name(),
                "reference controller",
                "controller",
                level,
                message,
                values,
            )
        ]
        self._diag.publish(array)


def main(argv: list[str] | None = None) -> int:
    """Run the controller node until interrupted (see :func:`tavi_perception.ros.lifecycle.run`)."""
    return run(ControllerNode, "controller_node", argv)


if __name__ == "__main__":
    sys.exit(main())
