"""A plain node in a ROS context of its own, with the executor that spins it: what the command-line tools
(``bag record``, ``bag play``, ``publish``), the loop's recorder and the tests' probe are built on. Each
starts and ends its own context, so several can live in one process (a test's, a runner's) without
touching the default context or each other."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node


class IsolatedNode:
    """The node ``name`` in a new context initialised with ``args`` (ROS arguments), added to a
    single-threaded executor of that context; :meth:`close` undoes all of it."""

    def __init__(self, name: str, args: list[str] | None = None) -> None:
        self.context = Context()
        rclpy.init(args=args, context=self.context)
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def close(self) -> None:
        """Shut the executor down, destroy the node and shut the context down."""
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@contextmanager
def standalone_node(name: str, args: list[str] | None = None) -> Iterator[Node]:
    """The node of an :class:`IsolatedNode`, closed on leaving. Ctrl-C ends the block quietly: a stop
    asked for, not an error."""
    isolated = IsolatedNode(name, args)
    try:
        yield isolated.node
    except KeyboardInterrupt:
        pass
    finally:
        isolated.close()
