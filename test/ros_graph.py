"""Helpers for tests over a real DDS graph: node processes and a probe node that waits on messages.

Nothing here sleeps and hopes: every wait spins the probe node until a condition holds or a timeout
passes, and reports which.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rclpy.qos import QoSProfile

from tavi_perception.ros.standalone import IsolatedNode

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args: str, timeout_s: float = 240) -> subprocess.CompletedProcess:
    """``tavi-perception ARGS`` as a subprocess in the repository, output captured as text."""
    cmd = [sys.executable, "-m", "tavi_perception.cli", *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout_s)


class NodeProcess:
    """A node module run as its own process (``python -m module --ros-args ...``), output captured."""

    def __init__(self, module: str, ros_args: list[str] | None = None, args: list[str] | None = None) -> None:
        cmd = [sys.executable, "-m", module, *(args or [])]
        if ros_args:
            cmd += ["--ros-args", *ros_args]
        self.cmd = cmd
        self.proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout_s: float = 15.0) -> str:
        """Interrupt the process (SIGINT, then SIGKILL after ``timeout_s``) and return its output."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            out, _ = self.proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            out, _ = self.proc.communicate()
        return out or ""

    def wait(self, timeout_s: float) -> tuple[int, str]:
        """Wait for the process to exit by itself; returns (exit code, output)."""
        out, _ = self.proc.communicate(timeout=timeout_s)
        return self.proc.returncode, out or ""


class Probe:
    """A test node in its own rclpy context, with an executor the test spins explicitly."""

    def __init__(self, name: str = "probe") -> None:
        self.ros = IsolatedNode(name)
        self.node, self.executor = self.ros.node, self.ros.executor
        self.processes: list[NodeProcess] = []
        self.subscriptions: dict[str, Any] = {}

    def start(
        self, module: str, ros_args: list[str] | None = None, args: list[str] | None = None
    ) -> NodeProcess:
        proc = NodeProcess(module, ros_args, args)
        self.processes.append(proc)
        return proc

    def collect(self, msg_type: type, topic: str, qos: QoSProfile | int = 10) -> list[Any]:
        """Subscribe ``topic`` and return the list that fills with the messages received."""
        received: list[Any] = []
        self.subscriptions[topic] = self.node.create_subscription(msg_type, topic, received.append, qos)
        return received

    def wait_matched(self, topic: str, timeout_s: float = 60.0) -> bool:
        """Spin until the subscription made by :meth:`collect` on ``topic`` is matched with a publisher.

        Messages published before the match are lost on volatile topics, so wait for it before causing them.
        """
        subscription = self.subscriptions[topic]
        return self.spin_until(lambda: subscription.get_publisher_count() > 0, timeout_s)

    def spin_until(
        self, condition: Callable[[], bool], timeout_s: float = 30.0, watch: list[NodeProcess] | None = None
    ) -> bool:
        """Spin until ``condition()`` holds (True), ``timeout_s`` passes or a watched process dies (False).

        ``watch`` defaults to every started process; name the long-lived ones when others end normally.
        """
        watched = self.processes if watch is None else watch
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return True
            if any(not p.alive() for p in watched):
                return condition()
            self.executor.spin_once(timeout_sec=0.05)
        return condition()

    def close(self) -> list[str]:
        """Stop the started processes (returns their outputs) and shut the probe down."""
        outputs = [p.stop() for p in self.processes]
        self.ros.close()
        return outputs

    def __enter__(self) -> Probe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
