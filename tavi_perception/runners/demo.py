"""``tavi-perception demo``: a simulated valve implantation closed through real ROS 2 nodes.

simulator_node (command drive) -> fluoro/image -> perception_node -> guidance -> controller_node ->
manipulator/command -> simulator_node, each node its own process over DDS. A recorder node in this
process keeps the perception outputs, the simulator's ground truth and the commands; at the end
``runs/<name>/`` holds ``report.md`` (summary table, plots, overlay GIF), ``summary.json``, the plots
and the node logs. ``--json`` prints the summary as one JSON object on the last line.

The perception node is given what an operator knows (:func:`tavi_perception.runners.case_parameters`):
the C-arm calibration of the case (mm per pixel, as from the DICOM header), the valve's frame height and
the delivery system's closed CP-CD length (device specifications); the projected closed-capsule CP-CD
distance is learned online. Nothing else of the truth reaches it.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from tqdm import tqdm

from tavi_perception.evaluation.report import (
    plot_depth,
    plot_keypoints,
    plot_latency,
    summarize,
    write_gif,
    write_report,
)
from tavi_perception.evaluation.trials import DONE_REASON
from tavi_perception.ros.recorder import LoopRecorder
from tavi_perception.runners import case_parameters
from tavi_perception.runners.processes import (
    NodeProcesses,
    NodeSpec,
    add_procedure_arguments,
    end_procedure,
    start_procedure,
)

SUMMARY_KEYS = (
    "frames",
    "tracking_ok_fraction",
    "depth_error_mm_mean",
    "latency_ms_p50",
    "latency_ms_p99",
    "dropped",
)

NODE_DIAGNOSTICS = (  # the perception node's own account, from its last /diagnostics
    "processing_ms_p50",
    "processing_ms_p99",
    "inference_ms_p50",
    "dropped_transport",
    "admission_stale",
    "admission_out_of_order",
    "admission_undecodable",
    "admission_repeat",
    "admission_frozen",
    "admission_non_scene",
    "calibration_source",
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tavi-perception demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--name", default="demo", help="run name: results in <runs-dir>/<name>/ (default demo)")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="parent folder of runs (default runs)")
    p.add_argument("--seed", type=int, default=0, help="simulated case seed (default 0)")
    add_procedure_arguments(p)
    p.add_argument(
        "--start-tip", type=float, default=-15.0, help="[mm] initial tip depth on the rail (default -15)"
    )
    p.add_argument(
        "--contrast-every",
        type=float,
        default=0.0,
        help="[s] repeat the aortogram this often (default 0: only the one at 1 s)",
    )
    p.add_argument("--max-duration", type=float, default=120.0, help="[s] stop after this long (default 120)")
    p.add_argument("--gif-every", type=int, default=3, help="overlay frames: every n-th frame (default 3)")
    return p


def node_specs(args: argparse.Namespace) -> list[NodeSpec]:
    """The three nodes of the loop with the demo's parameters (perception: :func:`case_parameters`)."""
    perception = {
        **case_parameters(args.seed, args.image_size, args.renderer),
        "target_depth_mm": float(args.target_depth),
        "depth_tolerance_mm": float(args.tolerance),
        "overlay_every_n": int(args.gif_every),
    }
    if args.model:
        perception["model_path"] = str(Path(args.model).resolve())
    if args.refine:
        perception["refine_valve"] = True
    if args.refine_root:
        perception["refine_root"] = True
    simulator = {
        "seed": int(args.seed),
        "drive": "command",
        "fps": float(args.fps),
        "image_size": int(args.image_size),
        "renderer": str(args.renderer),
        "physics": str(args.physics),
        "start_tip_mm": float(args.start_tip),
        "target_depth_mm": float(args.target_depth),
        "depth_tolerance_mm": float(args.tolerance),
        "contrast_first_injection_s": 1.0,
        "contrast_interval_s": float(args.contrast_every),
    }
    return [
        NodeSpec(
            "perception_node", "tavi_perception.ros.perception_node", perception, {"image": "fluoro/image"}
        ),
        NodeSpec("controller_node", "tavi_perception.ros.controller_node"),
        NodeSpec("simulator_node", "tavi_perception.ros.simulator_node", simulator),
    ]


def run_loop(args: argparse.Namespace, out_dir: Path) -> tuple[LoopRecorder, str]:
    """Run until the deployment completes or ``max_duration``; returns the recorder and why it ended."""
    perception, controller, simulator = node_specs(args)
    recorder = LoopRecorder()
    procs = NodeProcesses(out_dir / "logs", [perception, controller])
    ended = "max duration"
    try:
        start_procedure(recorder, procs, simulator)
        expected = math.ceil(args.max_duration * args.fps)
        start_s = time.monotonic()
        done_at_s: float | None = None
        progress = {"desc": "closed loop", "unit": "frame", "disable": args.no_progress, "mininterval": 0.5}
        with tqdm(total=expected, file=sys.stderr, **progress) as bar:
            while time.monotonic() - start_s < args.max_duration:
                recorder.spin_once(0.05)
                bar.update(len(recorder.truth) - bar.n)
                if recorder.commands:
                    last = recorder.commands[-1]
                    bar.set_postfix_str(last.reason[:60], refresh=False)
                    if done_at_s is None and DONE_REASON in last.reason:
                        done_at_s = time.monotonic()
                if done_at_s is not None and time.monotonic() - done_at_s > 1.0:
                    ended = "deployment complete"
                    break
                if procs.dead():
                    name = procs.dead()[0]
                    raise RuntimeError(f"{name} died during the run:\n{procs.log_tail(name)}")
        end_procedure(recorder, procs, simulator, drain_s=1.0)
    finally:
        procs.stop()
        recorder.close()
    return recorder, ended


def _outcome(recorder: LoopRecorder, ended: str, target_mm: float, tolerance_mm: float) -> dict:
    """How the implantation ended, from the truth of the last frame and the commands."""
    last = recorder.truth[-1] if recorder.truth else None
    holds = sum(c.hold for c in recorder.commands)
    final_depth = last.depth_mm if last else None
    return {
        "ended": ended,
        "final_true_depth_mm": final_depth,
        "final_depth_error_mm": None if final_depth is None else final_depth - target_mm,
        "final_depth_in_band": None if final_depth is None else abs(final_depth - target_mm) <= tolerance_mm,
        "final_deployment_fraction": last.deployment_fraction if last else None,
        "hold_fraction": holds / len(recorder.commands) if recorder.commands else None,
    }


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    out_dir = args.runs_dir / args.name
    out_dir.mkdir(parents=True, exist_ok=True)
    command = "tavi-perception demo " + shlex.join(argv)
    print(
        f"demo: simulator -> perception -> controller (case seed {args.seed}); writing {out_dir}/",
        file=sys.stderr,
    )
    try:
        recorder, ended = run_loop(args, out_dir)
    except RuntimeError as err:
        print(f"demo failed: {err}", file=sys.stderr)
        return 1
    summary = summarize(recorder.perceived, recorder.truth)
    diag = recorder.perception_diagnostics
    context = {
        "name": args.name,
        "command": command,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_path": diag.get("model_path", ""),
        "model_sha256": diag.get("model_sha256", ""),
        "backend": diag.get("backend", ""),
        "scenario": f"case seed {args.seed}, {args.image_size}² at {args.fps:g} fps, tip from "
        f"{args.start_tip:g} mm to target {args.target_depth:g} ± {args.tolerance:g} mm, "
        + (
            f"aortograms at 1 s and every {args.contrast_every:g} s (pigtail-bound in between)"
            if args.contrast_every > 0
            else "one aortogram at 1 s, then pigtail-bound"
        ),
        "outcome": _outcome(recorder, ended, args.target_depth, args.tolerance),
        "perception_node": {k: diag.get(k, "") for k in NODE_DIAGNOSTICS},
    }
    files = {}
    if recorder.truth:
        plot_depth(recorder.perceived, recorder.truth, out_dir / "depth.png")
        files["depth"] = "depth.png"
        plot_keypoints(recorder.keypoints, recorder.truth_keypoints, out_dir / "keypoints.png")
        files["keypoints"] = "keypoints.png"
    if recorder.perceived:
        plot_latency(recorder.perceived, out_dir / "latency.png")
        files["latency"] = "latency.png"
    if recorder.overlays:
        write_gif(
            recorder.overlays,
            out_dir / "overlay.gif",
            span_s=len(recorder.overlays) * args.gif_every / args.fps,
        )
        files["gif"] = "overlay.gif"
    report = write_report(out_dir, summary, context, files)
    print(report.read_text().split("## Summary", 1)[1].split("Definitions:", 1)[0].strip())
    print(f"report: {report}")
    if args.json:
        print(json.dumps({**{k: summary[k] for k in SUMMARY_KEYS}, **summary, "outcome": context["outcome"]}))
    return 0
