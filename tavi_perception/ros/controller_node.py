"""Reference controller node: ``guidance`` (tavi_msgs/Guidance) -> ``manipulator/command`` at a fixed rate.

The command is computed by :class:`tavi_perception.controller.ReferenceController` on a timer, so the
node keeps publishing (holds) when guidance stops arriving. Staleness is measured on the monotonic
clock from the receipt of the last guidance. The command header stamp is the answered guidance's stamp
(frame ``annulus``); before any guidance it is the node's clock.
"""

from __future__ import annotations

import dataclasses
import sys
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header
from tavi_msgs.msg import Guidance, ManipulatorCommand

from tavi_perception.controller import ControllerParams, Phase, ReferenceController
from tavi_perception.ros.diagnostics import status
from tavi_perception.ros.messages import command_to_msg, guidance_sample
from tavi_perception.ros.params import ParamSpec, declare_parameters, dynamic_parameter_guard

_DEFAULTS = ControllerParams()


def _limit(name: str, description: str, low: float, high: float) -> ParamSpec:
    """A run-time changeable controller limit whose default is ControllerParams' default."""
    return ParamSpec(name, getattr(_DEFAULTS, name), description, low, high, dynamic=True)


PARAMETERS: tuple[ParamSpec, ...] = (
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
    ParamSpec("guidance_reliable", True, "subscribe to guidance reliably (false: best effort)"),
)

_CONTROLLER_KEYS = frozenset(f.name for f in dataclasses.fields(ControllerParams))


def controller_params(values: dict[str, object]) -> ControllerParams:
    """ControllerParams from node parameter values (extra keys ignored)."""
    return ControllerParams(**{k: v for k, v in values.items() if k in _CONTROLLER_KEYS})  # type: ignore[arg-type]


class ControllerNode(Node):
    """Subscribes ``guidance``, publishes ``manipulator/command`` and ``/diagnostics``."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__("controller_node", **kwargs)  # type: ignore[arg-type]
        self._values = declare_parameters(self, PARAMETERS)
        self._controller = ReferenceController(controller_params(self._values))
        self.add_on_set_parameters_callback(dynamic_parameter_guard(PARAMETERS))
        self.add_post_set_parameters_callback(self._apply_parameters)
        reliability = (
            ReliabilityPolicy.RELIABLE if self._values["guidance_reliable"] else ReliabilityPolicy.BEST_EFFORT
        )
        self._last_header = Header()
        self._phase = self._controller.phase
        self._commands = 0
        self._last_reason = ""
        self._holding = True
        self._pub = self.create_publisher(ManipulatorCommand, "manipulator/command", 10)
        self._diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_subscription(
            Guidance, "guidance", self._on_guidance, QoSProfile(depth=1, reliability=reliability)
        )
        self.create_timer(1.0 / float(self._values["rate_hz"]), self._tick)
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(f"controller ready: {self._controller.params}")

    def _apply_parameters(self, params: list[Parameter]) -> None:
        self._values.update({p.name: p.value for p in params if p.name in self._values})
        self._controller.params = controller_params(self._values)
        self.get_logger().info(f"controller parameters now {self._controller.params}")

    def _on_guidance(self, msg: Guidance) -> None:
        self._last_header = msg.header
        self._controller.on_guidance(guidance_sample(msg, time.monotonic()))

    def _tick(self) -> None:
        command = self._controller.step(time.monotonic())
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
        level = (
            DiagnosticStatus.WARN if self._holding and self._phase is not Phase.DONE else DiagnosticStatus.OK
        )
        values = {"phase": self._phase.value, "commands": self._commands, "last_reason": self._last_reason}
        array = DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()))
        array.status = [
            status("controller_node: reference controller", "controller", level, self._last_reason, values)
        ]
        self._diag.publish(array)


def main(argv: list[str] | None = None) -> int:
    """Run the controller node until interrupted."""
    rclpy.init(args=sys.argv if argv is None else argv)
    try:
        node = ControllerNode()
    except ValueError as err:
        print(f"controller_node: {err}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
