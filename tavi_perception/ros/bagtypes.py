"""Message types for rosbag2 files: the rosbags typestore with tavi_msgs, and rclpy classes by type name.

Bags are written with each connection's message definition and RIHS01 type hash computed from the
``.msg`` files, so ``ros2 bag`` and ``mcap`` read them elsewhere (the hashes equal the ones rosidl
generates for the installed tavi_msgs; a test checks this).
"""

from __future__ import annotations

import importlib
import os
import sys
from functools import cache
from pathlib import Path

from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

INTERFACE_PACKAGE = "tavi_msgs"


def msg_directories(package: str = INTERFACE_PACKAGE) -> list[Path]:
    """Where ``package``'s .msg files may be: the installed share folders, then this source tree."""
    prefixes = [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    prefixes.append(Path(sys.prefix))
    candidates = [prefix / "share" / package / "msg" for prefix in prefixes]
    candidates.append(Path(__file__).resolve().parents[2] / package / "msg")
    return [c for c in candidates if c.is_dir() and any(c.glob("*.msg"))]


@cache
def typestore() -> Typestore:
    """The ROS 2 Kilted typestore with the tavi_msgs types registered from their .msg files."""
    store = get_typestore(Stores.ROS2_KILTED)
    directories = msg_directories()
    if not directories:
        raise FileNotFoundError(f"no {INTERFACE_PACKAGE}/msg/*.msg found (run scripts/setup.sh)")
    types = {}
    for path in sorted(directories[0].glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{INTERFACE_PACKAGE}/msg/{path.stem}"))
    store.register(types)
    return store


def msg_class(msgtype: str) -> type:
    """The rclpy message class of a type name such as ``sensor_msgs/msg/Image``.

    Raises ``ValueError`` naming the type when its Python package is not importable.
    """
    parts = msgtype.split("/")
    if len(parts) != 3 or parts[1] != "msg":
        raise ValueError(f"not a message type name: {msgtype!r} (expected pkg/msg/Type)")
    try:
        return getattr(importlib.import_module(f"{parts[0]}.msg"), parts[2])
    except (ImportError, AttributeError):
        raise ValueError(f"message type {msgtype} is not installed here") from None


def bag_qos(reliable: bool, transient_local: bool, depth: int) -> Qos:
    """A rosbags Qos record (as written into metadata.yaml) for the offered profile of a publisher."""
    return Qos(
        history=QosHistory.KEEP_LAST,
        depth=depth,
        reliability=QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
        durability=QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE,
        deadline=QosTime(0, 0),
        lifespan=QosTime(0, 0),
        liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=QosTime(0, 0),
        avoid_ros_namespace_conventions=False,
    )
