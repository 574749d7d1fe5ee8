"""A real rclpy node for tests: republishes every tavi_msgs/ManipulatorCommand from `manipulator/command`
on `manipulator/command_relayed` (transient local, so the test's subscriber gets them whenever it matches).

A test stops this process (SIGSTOP) to stand for a subscriber the scheduler is not running.
"""

from __future__ import annotations

import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from tavi_msgs.msg import ManipulatorCommand

RELIABLE = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(
    depth=1000, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


def main() -> None:
    rclpy.init()
    node = rclpy.create_node("command_relay")
    out = node.create_publisher(ManipulatorCommand, "manipulator/command_relayed", LATCHED)
    node.create_subscription(ManipulatorCommand, "manipulator/command", out.publish, RELIABLE)
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
