"""One process runner for the three lifecycle nodes (perception, controller, simulator).

Every node of this package is an ``rclpy.lifecycle.LifecycleNode``: parameters are declared and
validated at construction, *configure* allocates (model, simulator, publishers), *activate* starts the
work (subscriptions, timers), *deactivate* stops it. A lifecycle manager (``ros2 lifecycle set``,
nav2_lifecycle_manager, launch_ros' ``LifecycleNode`` events) can therefore hold a node inactive.

Each node declares :data:`AUTOSTART`: true (the default) makes the process configure and activate
itself, so ``ros2 run``, the launch files and the ``demo``/``loop`` runners start a working node with no
manager; false leaves it unconfigured, waiting for transitions.

An interrupt (SIGINT, SIGTERM) shuts the node down through its lifecycle *shutdown* transition while the
ROS context is still valid, so its last words go out: the controller's hold command, and every reliable
message already published. rclpy's own signal handler would invalidate the context first, and a
subscriber that the scheduler had not run meanwhile (a busy recorder, a loaded controller) would never
receive the messages the exiting process had published last. *deactivate* and *shutdown* therefore wait,
up to :data:`FLUSH_TIMEOUT_S`, until every subscriber has acknowledged what the node published.

Exit codes of :func:`run`: 0 after an interrupt or an external shutdown, 1 when an autostart
transition fails, 2 when a parameter is invalid (the message names it).
"""

from __future__ import annotations

import abc
import signal
import sys
import time
from collections.abc import Callable

import rclpy
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.signals import SignalHandlerOptions
from rclpy.timer import Timer

from tavi_perception.ros.params import ParamSpec

AUTOSTART = ParamSpec(
    "autostart", True, "configure and activate at start (false: wait for lifecycle transitions)"
)

EXIT_OK = 0
EXIT_TRANSITION_FAILED = 1
EXIT_BAD_PARAMETERS = 2

# [s] how long deactivate/shutdown wait for subscribers to acknowledge what was published; Fast DDS asks
# for acknowledgements with a heartbeat every 3 s, so a shorter wait would give up on a healthy subscriber
FLUSH_TIMEOUT_S = 4.0
SIGNAL_POLL_S = 0.1  # [s] longest spin between checks for a pending interrupt


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

    def _flush(self, timeout_s: float = FLUSH_TIMEOUT_S) -> None:
        """Wait until every subscriber acknowledged what this node published (reliable topics), at most
        ``timeout_s`` in all: a subscriber that went away must not hold the node's exit."""
        deadline_s = time.monotonic() + timeout_s
        for pub in list(self.publishers):
            left_s = deadline_s - time.monotonic()
            if left_s <= 0.0 or not pub.wait_for_all_acked(Duration(seconds=left_s)):
                self.get_logger().warning(f"{pub.topic_name}: not acknowledged within {timeout_s:.0f} s")
                return

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        self._flush()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        self._flush()
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
    rclpy.init(args=sys.argv if argv is None else argv, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM, like SIGINT: KeyboardInterrupt
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
        _spin(node)
    except TransitionError as err:
        print(f"{name}: {err}", file=sys.stderr)
        code = EXIT_TRANSITION_FAILED
    except (KeyboardInterrupt, ExternalShutdownException):
        if rclpy.ok():
            _shut_down(node, name)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return code


def _shut_down(node: LifecycleNode, name: str) -> None:
    """The *shutdown* transition after an interrupt (stop, flush, release); an interrupt in the middle of
    another transition leaves none to take, and the process exits without it."""
    try:
        node.trigger_shutdown()
    except Exception as err:  # rclpy raises a plain Exception for a transition the state forbids
        print(f"{name}: no clean shutdown after the interrupt: {err}", file=sys.stderr)


def _spin(node: LifecycleNode) -> None:
    """Spin until the context shuts down; returning to Python every :data:`SIGNAL_POLL_S` lets an
    interrupt raise ``KeyboardInterrupt`` here rather than wait for the next message."""
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    while rclpy.ok():
        executor.spin_once(timeout_sec=SIGNAL_POLL_S)
