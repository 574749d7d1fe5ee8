"""A plain node in a ROS context of its own, for the command-line tools (``bag play``, ``publish``):
each call starts and ends its own context, so a tool can also run inside a test's or another program's
process without touching the default context."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import rclpy
from rclpy.context import Context
from rclpy.node import Node


@contextmanager
def standalone_node(name: str, args: list[str] | None = None) -> Iterator[Node]:
    """The node ``name`` in a new context initialised with ``args`` (ROS arguments), destroyed and the
    context shut down on leaving. Ctrl-C ends the block quietly: a stop asked for, not an error."""
    context = Context()
    rclpy.init(args=args, context=context)
    node = Node(name, context=context)
    try:
        yield node
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)
