"""A real rclpy node for tests: republishes every message of one tavi_msgs type from one topic on another.

``python relay.py TYPE IN OUT [--latched-in]``: TYPE is a tavi_msgs message name (``Guidance``,
``ManipulatorCommand``). The output is reliable and transient local, so the test's subscriber gets what
was relayed whenever it matches; the input is reliable, and transient local with ``--latched-in`` (to
take a latched test publisher's message, which a volatile subscription would miss before discovery).
"""

from __future__ import annotations

import argparse

import rclpy
import tavi_msgs.msg
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("type")
    parser.add_argument("topic_in")
    parser.add_argument("topic_out")
    parser.add_argument("--latched-in", action="store_true")
    args = parser.parse_args()
    msg_type = getattr(tavi_msgs.msg, args.type)
    reliable = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
    latched = QoSProfile(
        depth=1000, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
    )
    rclpy.init()
    node = rclpy.create_node("relay")
    out = node.create_publisher(msg_type, args.topic_out, latched)
    node.create_subscription(msg_type, args.topic_in, out.publish, latched if args.latched_in else reliable)
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
