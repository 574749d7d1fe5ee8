"""Node processes of a closed-loop run: start, watch, stop, and the procedure's start/end sequence.

Used by ``tavi-perception demo``, ``tavi-perception loop`` and the benchmarks. Each node runs as its own
process (``python -m <module> --ros-args ...``) with its output in a log file; the recorder
(:mod:`tavi_perception.ros.recorder`) lives in the calling process, in its own rclpy context.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tavi_perception.physics.params import PHYSICS
from tavi_perception.ros.recorder import LoopRecorder
from tavi_perception.sim.ct.simulator import add_renderer_argument


def add_procedure_arguments(p: argparse.ArgumentParser) -> None:
    """The options every closed-loop command shares (``demo``, ``loop``)."""
    p.add_argument("--fps", type=float, default=15.0, help="[Hz] fluoroscopy frame rate (default 15)")
    p.add_argument("--image-size", type=int, default=512, help="[px] square image side (default 512)")
    add_renderer_argument(p)
    p.add_argument(
        "--physics",
        choices=PHYSICS,
        default="kinematic",
        help="manipulator model: kinematic (the tip moves exactly as commanded) or mujoco (friction, "
        "compliance, backlash, the release jump; docs/physics.md); default kinematic",
    )
    p.add_argument(
        "--target-depth", type=float, default=4.0, help="[mm] target implantation depth (default 4)"
    )
    p.add_argument("--tolerance", type=float, default=1.0, help="[mm] depth tolerance (default 1)")
    p.add_argument("--model", default="", help="model file (default: the shipped models/tavi_keypoints.onnx)")
    p.add_argument(
        "--refine",
        action="store_true",
        help="read the frame edges again on a full-resolution crop of the valve (perception_node's "
        "refine_valve: the shipped models/tavi_valve_refine.onnx)",
    )
    p.add_argument(
        "--refine-root",
        action="store_true",
        help="read the annulus landmarks again on a full-resolution crop of the root (perception_node's "
        "refine_root: the shipped models/tavi_root_refine.onnx)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON on the last line")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def param_arg(name: str, value: object) -> str:
    """``name:=value`` for ``--ros-args -p`` (booleans lower case, floats always with a decimal point,
    strings YAML-quoted: rcl reads the value as YAML, so an empty string would not parse and ``true`` or
    ``1.5`` would change type)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        text = repr(value)
    elif isinstance(value, str):
        text = "'" + value.replace("'", "''") + "'"
    else:
        text = str(value)
    return f"{name}:={text}"


@dataclass
class NodeSpec:
    """One node process: its module, parameters and remappings."""

    name: str
    module: str
    params: dict[str, object] = field(default_factory=dict)
    remaps: dict[str, str] = field(default_factory=dict)

    def command(self) -> list[str]:
        args = [sys.executable, "-m", self.module, "--ros-args"]
        for key, value in self.params.items():
            args += ["-p", param_arg(key, value)]
        for src, dst in self.remaps.items():
            args += ["-r", f"{src}:={dst}"]
        return args


class NodeProcesses:
    """Started node processes with their logs; :meth:`stop` interrupts them all and waits."""

    def __init__(self, log_dir: Path, specs: Sequence[NodeSpec] = ()) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}
        for spec in specs:
            self.start(spec)

    def start(self, spec: NodeSpec) -> None:
        """Start one node process, its output going to ``<log_dir>/<name>.log``."""
        log = (self.log_dir / f"{spec.name}.log").open("w")
        self.procs[spec.name] = subprocess.Popen(
            spec.command(), stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ), start_new_session=True
        )

    def dead(self) -> list[str]:
        """Names of the processes that have exited."""
        return [name for name, proc in self.procs.items() if proc.poll() is not None]

    def log_tail(self, name: str, lines: int = 15) -> str:
        return "\n".join((self.log_dir / f"{name}.log").read_text().splitlines()[-lines:])

    def interrupt(self, names: list[str]) -> None:
        """SIGINT the named processes and return at once: each shuts down (and flushes) on its own."""
        for name in names:
            if self.procs[name].poll() is None:
                os.killpg(self.procs[name].pid, signal.SIGINT)

    def stop(self, names: list[str] | None = None, timeout_s: float = 10.0) -> None:
        """Interrupt the named processes (default: all), SIGKILL after ``timeout_s``, and wait for them."""
        names = list(self.procs) if names is None else names
        self.interrupt(names)
        procs = [self.procs[n] for n in names]
        for proc in procs:
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def wait_for(
    condition: Callable[[], bool],
    recorder: LoopRecorder,
    procs: NodeProcesses,
    what: str,
    timeout_s: float = 120.0,
) -> None:
    """Spin until ``condition()``; raise with the log of a node that exited meanwhile."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if procs.dead():
            name = procs.dead()[0]
            raise RuntimeError(f"{name} exited at start:\n{procs.log_tail(name)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {timeout_s:.0f} s (see {procs.log_dir})")
        recorder.spin_once(0.05)


def start_procedure(recorder: LoopRecorder, procs: NodeProcesses, simulator: NodeSpec) -> None:
    """Once perception is active and the controller commands, start the simulator; wait for its first frame.

    Perception and the controller start first, so no frame is lost to their start-up.
    """
    active = lambda: recorder.perception_diagnostics.get("active") == "True"  # noqa: E731
    wait_for(active, recorder, procs, "perception start")
    wait_for(lambda: bool(recorder.commands), recorder, procs, "controller start")
    procs.start(simulator)
    wait_for(lambda: bool(recorder.truth), recorder, procs, "the first simulated frame")


def end_procedure(recorder: LoopRecorder, procs: NodeProcesses, simulator: NodeSpec, drain_s: float) -> None:
    """Stop the simulator (no new frames); keep receiving for ``drain_s``: the last guidance is on its way."""
    procs.stop([simulator.name])
    drain_until = time.monotonic() + drain_s
    while time.monotonic() < drain_until:
        recorder.spin_once(0.05)
