"""A tavi_msgs/Guidance crosses process boundaries over real DDS with every field intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from tavi_msgs.msg import Guidance

pytestmark = pytest.mark.ros

LATCHED = QoSProfile(
    depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
RELAY_NODE = Path(__file__).parent / "nodes" / "relay.py"


def _guidance() -> Guidance:
    msg = Guidance()
    msg.header.frame_id = "fluoro"
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1_700_000_000, 123_456_789
    msg.valid = True
    msg.tracking_state = Guidance.TRACKING_OK
    msg.annulus_valid = True
    msg.annulus_source = Guidance.ANNULUS_PIGTAIL_BOUND
    msg.annulus_origin_x_px, msg.annulus_origin_y_px = 250.5, 301.25
    msg.mm_per_px = 0.2734
    msg.catheter_valid = True
    msg.tip_depth_mm, msg.tip_lateral_mm, msg.coaxiality_deg = 3.75, -0.5, 4.0
    msg.stent_valid = False
    msg.stent_reason = "FE1 not visible"
    msg.depth_source = Guidance.DEPTH_SOURCE_TIP
    msg.depth_mm, msg.target_depth_mm = 3.75, 4.0
    msg.depth_error_mm = -0.25
    msg.latency_ms = 6.5
    msg.annulus_y_sign = -1
    msg.depth_std_mm = 0.31
    msg.calibrated = True
    msg.calibration_source = "parameter mm_per_px"
    return msg


def test_guidance_message_crosses_processes_unchanged() -> None:
    relay = [sys.executable, str(RELAY_NODE), "Guidance", "guidance_in", "guidance_out", "--latched-in"]
    echo = subprocess.Popen(relay, env=dict(os.environ), start_new_session=True)
    rclpy.init()
    node = rclpy.create_node("guidance_cross_process_test")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    received: list[Guidance] = []
    try:
        node.create_subscription(Guidance, "guidance_out", received.append, LATCHED)
        sent = _guidance()
        node.create_publisher(Guidance, "guidance_in", LATCHED).publish(sent)
        deadline = time.monotonic() + 30.0
        while not received and time.monotonic() < deadline and echo.poll() is None:
            executor.spin_once(timeout_sec=0.1)
        assert echo.poll() is None, "echo node died"
        assert received, "no Guidance came back from the other process within 30 s"
        assert received[0] == sent
        assert received[0].header.stamp.nanosec == 123_456_789
        assert received[0].stent_reason == "FE1 not visible"
        assert received[0].annulus_y_sign == -1 and received[0].calibration_source == "parameter mm_per_px"
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        os.killpg(echo.pid, signal.SIGINT)
        echo.wait(timeout=10)
