"""controller_node over real DDS: a lifecycle node that commands nothing until active; holds without
guidance, acts on valid guidance, holds when it stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from ros_graph import Probe
from tavi_msgs.msg import Guidance, ManipulatorCommand

pytestmark = pytest.mark.ros

MODULE = "tavi_perception.ros.controller_node"
RELAY_NODE = Path(__file__).parent / "nodes" / "relay.py"
LATCHED = QoSProfile(
    depth=1000, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


def _guidance(depth_error_mm: float, *, valid: bool = True) -> Guidance:
    msg = Guidance(valid=valid, depth_error_mm=depth_error_mm, depth_tolerance_mm=0.5)
    msg.header.frame_id = "fluoro"
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1234, 5678
    msg.invalid_reason = "" if valid else "annulus LOST"
    return msg


def test_controller_node_holds_then_advances_then_holds_when_guidance_stops() -> None:
    with Probe() as probe:
        node = probe.start(MODULE, ["-p", "rate_hz:=50.0", "-p", "guidance_timeout_s:=0.3"])
        commands = probe.collect(ManipulatorCommand, "manipulator/command")
        assert probe.spin_until(lambda: len(commands) > 0), "no command from controller_node"
        assert commands[0].hold and "no guidance" in commands[0].reason

        pub = probe.node.create_publisher(Guidance, "guidance", 10)
        feeding = probe.node.create_timer(1 / 30, lambda: pub.publish(_guidance(-3.0)))
        assert probe.spin_until(lambda: commands[-1].advance_speed_mm_s > 0.0), "controller never advanced"
        moving = commands[-1]
        assert not moving.hold
        assert (moving.header.stamp.sec, moving.header.stamp.nanosec) == (1234, 5678)
        assert moving.header.frame_id == "annulus"

        feeding.cancel()
        assert probe.spin_until(lambda: commands[-1].hold), "controller kept moving without guidance"
        assert "stale" in commands[-1].reason
        assert node.alive()


def test_controller_node_holds_on_invalid_guidance() -> None:
    with Probe() as probe:
        probe.start(MODULE, ["-p", "rate_hz:=50.0"])
        commands = probe.collect(ManipulatorCommand, "manipulator/command")
        pub = probe.node.create_publisher(Guidance, "guidance", 10)
        probe.node.create_timer(1 / 30, lambda: pub.publish(_guidance(-3.0, valid=False)))
        assert probe.spin_until(lambda: bool(commands) and "annulus LOST" in commands[-1].reason)
        assert commands[-1].hold and commands[-1].advance_speed_mm_s == 0.0


@pytest.mark.parametrize("interrupt", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_controller_commands_a_hold_that_arrives_before_it_exits(interrupt: int) -> None:
    with Probe() as probe:
        node = probe.start(MODULE, ["-p", "rate_hz:=50.0"])
        commands = probe.collect(ManipulatorCommand, "manipulator/command", QoSProfile(depth=1000))
        pub = probe.node.create_publisher(Guidance, "guidance", 10)
        probe.node.create_timer(1 / 30, lambda: pub.publish(_guidance(-3.0)))
        assert probe.spin_until(lambda: bool(commands) and commands[-1].advance_speed_mm_s > 0.0)

        os.killpg(node.proc.pid, interrupt)
        code, output = node.wait(timeout_s=30)
        assert code == 0, output
        # the process is gone: its last command is already in this subscriber's queue, not still on its way
        assert probe.spin_until(lambda: commands[-1].reason == "controller deactivated", 5, watch=[]), output
        assert commands[-1].hold and commands[-1].advance_speed_mm_s == 0.0


def test_a_stopping_controller_waits_until_a_subscriber_that_was_not_running_has_its_hold() -> None:
    """The relay process is frozen (SIGSTOP) while the controller shuts down: the controller's last command
    reaches it only because the controller waits for the acknowledgement before it exits."""
    relay_cmd = [
        sys.executable,
        str(RELAY_NODE),
        "ManipulatorCommand",
        "manipulator/command",
        "manipulator/command_relayed",
    ]
    relay = subprocess.Popen(relay_cmd, env=dict(os.environ), start_new_session=True)
    try:
        with Probe() as probe:
            controller = probe.start(MODULE, ["-p", "rate_hz:=50.0"])
            relayed = probe.collect(ManipulatorCommand, "manipulator/command_relayed", LATCHED)
            assert probe.spin_until(lambda: len(relayed) > 0, 60), "the relay passed on no command"

            os.kill(relay.pid, signal.SIGSTOP)
            os.killpg(controller.proc.pid, signal.SIGINT)
            # resume the relay once the controller has exited, or after 1.5 s while it waits (at most 4 s)
            probe.spin_until(lambda: not controller.alive(), 1.5, watch=[])
            os.kill(relay.pid, signal.SIGCONT)
            code, output = controller.wait(timeout_s=30)
            assert code == 0, output
            assert probe.spin_until(lambda: relayed[-1].reason == "controller deactivated", 10, watch=[]), (
                f"the frozen subscriber never got the hold; last: {relayed[-1].reason!r}"
            )
    finally:
        os.kill(relay.pid, signal.SIGCONT)
        relay.send_signal(signal.SIGINT)
        relay.wait(timeout=15)


def test_controller_node_refuses_out_of_range_parameters_with_a_clear_error() -> None:
    with Probe() as probe:
        node = probe.start(MODULE, ["-p", "max_advance_speed_mm_s:=500.0"])
        code, output = node.wait(timeout_s=60)
    assert code != 0
    assert "max_advance_speed_mm_s" in output and "maximum" in output


def test_controller_node_accepts_a_run_time_limit_change_and_rejects_a_read_only_one() -> None:
    with Probe() as probe:
        probe.start(MODULE)
        client = probe.node.create_client(SetParameters, "controller_node/set_parameters")
        assert probe.spin_until(lambda: client.service_is_ready()), "parameter service never appeared"

        def set_param(name: str, value: float) -> bool:
            param = ParameterMsg(
                name=name, value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
            )
            future = client.call_async(SetParameters.Request(parameters=[param]))
            assert probe.spin_until(future.done), f"no answer setting {name}"
            return future.result().results[0].successful

        assert set_param("max_advance_speed_mm_s", 1.0)
        assert not set_param("max_advance_speed_mm_s", 500.0)
        assert not set_param("rate_hz", 10.0)


def _transition(probe: Probe, transition_id: int) -> None:
    client = probe.node.create_client(ChangeState, "controller_node/change_state")
    assert probe.spin_until(client.service_is_ready), "no change_state service"
    future = client.call_async(ChangeState.Request(transition=Transition(id=transition_id)))
    assert probe.spin_until(future.done) and future.result().success, f"transition {transition_id} failed"


def test_an_inactive_controller_commands_nothing_while_guidance_arrives_and_commands_once_active() -> None:
    with Probe() as probe:
        probe.start(MODULE, ["-p", "autostart:=false", "-p", "rate_hz:=50.0"])
        commands = probe.collect(ManipulatorCommand, "manipulator/command")
        diagnostics = probe.collect(DiagnosticArray, "/diagnostics")
        pub = probe.node.create_publisher(Guidance, "guidance", 10)
        probe.node.create_timer(1 / 30, lambda: pub.publish(_guidance(-3.0)))

        get_state = probe.node.create_client(GetState, "controller_node/get_state")
        assert probe.spin_until(get_state.service_is_ready), "no get_state service: not a lifecycle node"
        future = get_state.call_async(GetState.Request())
        assert probe.spin_until(future.done)
        assert future.result().current_state.id == State.PRIMARY_STATE_UNCONFIGURED

        _transition(probe, Transition.TRANSITION_CONFIGURE)
        assert probe.wait_matched("manipulator/command"), "the configured controller has no command publisher"

        def inactive_reports() -> int:
            return sum(
                d.status[0].message == "inactive"
                for d in diagnostics
                if d.status[0].name == "/controller_node: reference controller"
            )

        # a report of the configured, inactive node (its first comes a second after configure), while
        # guidance has been arriving at 30 Hz
        assert probe.spin_until(lambda: inactive_reports() >= 1, 30), "no diagnostics from the inactive node"
        assert pub.get_subscription_count() == 0, "an inactive controller listens to guidance"
        assert commands == [], "an inactive controller commanded the manipulator"

        _transition(probe, Transition.TRANSITION_ACTIVATE)
        assert probe.spin_until(lambda: bool(commands) and commands[-1].advance_speed_mm_s > 0.0), (
            "the activated controller never advanced on valid guidance"
        )

        _transition(probe, Transition.TRANSITION_DEACTIVATE)
        assert probe.spin_until(lambda: commands[-1].reason == "controller deactivated")
        assert commands[-1].hold and commands[-1].advance_speed_mm_s == 0.0
