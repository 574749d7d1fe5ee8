"""One process runner for the three lifecycle nodes (perception, controller, simulator).

Every node of this package is an ``rclpy.lifecycle.LifecycleNode``: parameters are declared and
validated at construction, *configure* allocates (model, simulator, publishers), *activate* starts the
work (subscriptions, timers), *deactivate* stops it. A lifecycle manager (``ros2 lifecycle set``,
nav2_lifecycle_manager, launch_ros' ``LifecycleNode`` events) can therefore hold a node inactive.

Each node declares :data:`AUTOSTART`: true (the default) makes the process configure and activate
itself, so ``ros2 run``, the launch files and the ``demo``/``loop`` runners start a working node with no
manager; false leaves it unconfigured, waiting for transitions.

Exit codes of :func:`run`: 0 after an interrupt or an external shutdown, 1 when an autostart
transition fails, 2 when a parameter is invalid (the message names it).
"""

from __future__ import annotations

import abc
import sys
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.timer import Timer

from tavi_perception.ros.params import ParamSpec

AUTOSTART = ParamSpec(
    "autostart", True, "configure and activate at start (false: wait for lifecycle transitions)"
)

EXIT_OK = 0
EXIT_TRANSITION_FAILED = 1
EXIT_BAD_PARAMETERS = 2


class ManagedNode(LifecycleNode, abc.ABC):
    """A lifecycle node whose teardown transitions reduce to two hooks.

    ``_stop`` undoes *activate* (subscriptions, timers) and ``_release`` undoes *configure* (publishers,
    the model or simulator); both must be safe to call twice. *deactivate* stops, *cleanup* releases,
    *shutdown* (from any state) does both.
    """

    @abc.abstractmethod
    def _stop(self) -> None:
        """Undo *activate*: destroy subscriptions and timers (safe to call twice)."""

    @abc.abstractmethod
    def _release(self) -> None:
        """Undo *configure*: destroy publishers, drop the model or simulator (safe to call twice)."""

    def _destroy(self, *attributes: str) -> None:
        """Destroy the subscription or timer held in each of ``attributes`` that is set, and clear it (so
        that a second call does nothing)."""
        for attribute in attributes:
            entity = getattr(self, attribute)
            if entity is None:
                continue
            if isinstance(entity, Timer):
                self.destroy_timer(entity)
            else:
                self.destroy_subscription(entity)
            setattr(self, attribute, None)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        self._release()
        return TransitionCallbackReturn.SUCCESS


class TransitionError(RuntimeError):
    """An autostart transition (configure or activate) did not succeed."""


def autostart(node: LifecycleNode) -> None:
    """Configure then activate ``node``; raise :class:`TransitionError` naming the failed step."""
    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        raise TransitionError("configure failed (see the error above)")
    if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
        raise TransitionError("activate failed (see the error above)")


def run(factory: Callable[[], LifecycleNode], name: str, argv: list[str] | None = None) -> int:
    """Initialise rclpy with ``argv`` (default ``sys.argv``), build the node, autostart it, spin.

    ``factory`` constructs the node (raising ``ValueError`` on invalid parameters); ``name`` prefixes
    the messages on stderr.
    """
    rclpy.init(args=sys.argv if argv is None else argv)
    try:
        node = factory()
    except ValueError as err:
        print(f"{name}: {err}", file=sys.stderr)
        rclpy.try_shutdown()
        return EXIT_BAD_PARAMETERS
    code = EXIT_OK
    try:
        if node.get_parameter(AUTOSTART.name).value:
            autostart(node)
        rclpy.spin(node)
    except TransitionError as err:
        print(f"{name}: {err}", file=sys.stderr)
        code = EXIT_TRANSITION_FAILED
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return code
