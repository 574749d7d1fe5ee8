"""The recorder node: subscribes a run's topics and keeps rows of everything it receives (no processes)."""

from __future__ import annotations

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from tavi_msgs.msg import Guidance, KeypointArray, ManipulatorCommand

from tavi_perception.evaluation.report import CommandRow, GuidanceRow, KeypointRow
from tavi_perception.ros.diagnostics import status_name
from tavi_perception.ros.imaging import image_to_numpy
from tavi_perception.ros.messages import guidance_row, stamp_ns
from tavi_perception.ros.standalone import IsolatedNode

RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
PERCEPTION_STATUS = status_name("/perception_node", "pipeline")  # the loop's perception node


def keypoint_row(msg: KeypointArray, truth: bool) -> KeypointRow:
    """Positions and presence: visible in the truth (state MEASURED), not LOST in a tracked array."""
    xy = np.array([[k.x_px, k.y_px] for k in msg.keypoints], dtype=float)
    states = np.array([k.state for k in msg.keypoints])
    present = states == 0 if truth else states != 2
    return KeypointRow(stamp_ns(msg.header.stamp), xy, present)


class LoopRecorder(IsolatedNode):
    """Subscribes the loop's topics and keeps rows of everything (and every overlay frame) it receives."""

    def __init__(self, name: str = "tavi_loop_recorder", overlay: bool = True) -> None:
        super().__init__(name)
        self.perceived: list[GuidanceRow] = []
        self.truth: list[GuidanceRow] = []
        self.keypoints: list[KeypointRow] = []
        self.truth_keypoints: list[KeypointRow] = []
        self.commands: list[CommandRow] = []
        self.overlays: list[np.ndarray] = []
        self.perception_diagnostics: dict[str, str] = {}
        sub = self.node.create_subscription
        sub(Guidance, "guidance", lambda m: self.perceived.append(guidance_row(m)), RELIABLE)
        sub(Guidance, "fluoro/ground_truth/guidance", lambda m: self.truth.append(guidance_row(m)), RELIABLE)
        sub(KeypointArray, "keypoints", lambda m: self.keypoints.append(keypoint_row(m, False)), RELIABLE)
        sub(
            KeypointArray,
            "fluoro/ground_truth/keypoints",
            lambda m: self.truth_keypoints.append(keypoint_row(m, True)),
            RELIABLE,
        )
        sub(ManipulatorCommand, "manipulator/command", self._on_command, RELIABLE)
        sub(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        if overlay:
            sub(Image, "overlay", lambda m: self.overlays.append(image_to_numpy(m)), QoSProfile(depth=5))

    def _on_command(self, msg: ManipulatorCommand) -> None:
        self.commands.append(
            CommandRow(
                stamp_ns(msg.header.stamp),
                float(msg.advance_speed_mm_s),
                float(msg.retraction_speed_mm_s),
                float(msg.steer_rate_deg_s),
                bool(msg.hold),
                msg.reason,
            )
        )

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for st in msg.status:
            if st.name == PERCEPTION_STATUS:
                self.perception_diagnostics = {kv.key: kv.value for kv in st.values}

    def spin_once(self, timeout_s: float) -> None:
        self.executor.spin_once(timeout_sec=timeout_s)
