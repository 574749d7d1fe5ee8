"""A real rclpy node for tests: republishes every tavi_msgs/Guidance from `guidance_in` on `guidance_out`.

Both topics are reliable and transient-local, so neither side depends on discovery timing.
"""

from __future__ import annotations

import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from tavi_msgs.msg import Guidance

LATCHED = QoSProfile(
    depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


def main() -> None:
    rclpy.init()
    node = rclpy.create_node("guidance_echo")
    out = node.create_publisher(Guidance, "guidance_out", LATCHED)
    node.create_subscription(Guidance, "guidance_in", out.publish, LATCHED)
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
