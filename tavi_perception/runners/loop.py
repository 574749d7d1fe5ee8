"""``tavi-perception loop``: the robotic loop closed in simulation over randomised trials, with faults.

Each trial starts its own simulator_node (command drive), perception_node and controller_node as
separate processes over DDS, with a recorder node in this process. The controller advances the
delivery system to the target depth using only the published Guidance, waits for stability, then
retracts the capsule while holding depth; the trial ends one second after the controller declares the
deployment complete, or after ``--max-duration`` seconds. Trials are randomised by
:func:`tavi_perception.evaluation.trials.sample_trial` (anatomy, C-arm view, motion, contrast timing, start
position) and may carry an injected fault: frame drops, a frozen image stream, a perception node
restart, or a start with no contrast yet.

Writes ``<out>/summary.json`` (run settings, summary, every trial's result and spec), ``<out>/depth.png``
(true depth vs time of every trial with the target band) and the node logs under
``<out>/logs/trial_NN/``. ``--json`` prints the summary as one JSON object on the last line.
Definitions of every figure: :mod:`tavi_perception.evaluation.trials`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tavi_perception.core.pipeline import SHIPPED_REFINE_MODEL, SHIPPED_ROOT_REFINE_MODEL, shipped_model_path
from tavi_perception.evaluation.trials import (
    DONE_REASON,
    FAULTS,
    GRABBER_FPS,
    TrialResult,
    TrialSpec,
    duration_limit_s,
    plot_trials,
    sample_trial,
    summarize_trials,
    trial_result,
    unsteered_asymmetry_mm,
)
from tavi_perception.inference.engines import file_sha256
from tavi_perception.physics.params import sample_physics
from tavi_perception.plan.simulated import view_parameters
from tavi_perception.ros.recorder import LoopRecorder
from tavi_perception.runners import case_parameters
from tavi_perception.runners.processes import (
    NodeProcesses,
    NodeSpec,
    add_procedure_arguments,
    end_procedure,
    start_procedure,
)

SUMMARY_KEYS = ("trials", "success_rate", "depth_error_mm_mean", "depth_error_mm_p95", "moves_while_invalid")
PERCEPTION = "perception_node"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tavi-perception loop", description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=20, help="trials (per fault with --fault all; default 20)")
    p.add_argument(
        "--seed", type=int, default=0, help="run seed: trial i is sample_trial(seed, i) (default 0)"
    )
    p.add_argument(
        "--fault",
        choices=(*FAULTS, "all"),
        default="none",
        help="fault injected into every trial; 'all': each fault in turn, --trials each (default none)",
    )
    p.add_argument("--out", type=Path, default=Path("runs/loop"), help="output folder (default runs/loop)")
    add_procedure_arguments(p)
    p.add_argument(
        "--retraction-speed",
        type=float,
        default=2.0,
        help="[mm/s] controller's capsule retraction speed (default 2, the simulated manipulator's limit)",
    )
    p.add_argument(
        "--max-duration", type=float, default=120.0, help="[s] per trial (default 120; pedal trials 4x)"
    )
    p.add_argument(
        "--view-offset-deg",
        type=float,
        help="[deg] put every view this far off the annulus S-curve (+ cranial); truth in the coplanar view",
    )
    p.add_argument(
        "--no-view-correction",
        action="store_true",
        help="with --view-offset-deg: do not give perception the case's plan and C-arm angles",
    )
    return p


def trial_specs(trials: int, seed: int, fault: str) -> list[TrialSpec]:
    """The run's trials: ``trials`` of ``fault``, or of each fault in turn for ``all``."""
    faults = FAULTS[1:] if fault == "all" else (fault,)
    return [sample_trial(seed, i, f) for f in faults for i in range(trials)]


def node_specs(spec: TrialSpec, args: argparse.Namespace) -> tuple[NodeSpec, NodeSpec, NodeSpec]:
    """(perception, controller, simulator) of one trial; perception knows only the C-arm and valve."""
    perception = {
        **case_parameters(spec.case_seed, args.image_size, args.renderer),
        "target_depth_mm": float(args.target_depth),
        "depth_tolerance_mm": float(args.tolerance),
    }
    if args.model:
        perception["model_path"] = str(Path(args.model).resolve())
    if args.refine:
        perception["refine_valve"] = True
    if args.refine_root:
        perception["refine_root"] = True
    if args.view_offset_deg is not None and not args.no_view_correction:  # the truth is then coplanar
        perception |= view_parameters(spec.case_seed, args.renderer, args.view_offset_deg, args.out / "plans")
    simulator = {
        "seed": spec.case_seed,
        "drive": "command",
        "fps": GRABBER_FPS if spec.grabber_pulse_hz > 0 else float(args.fps),
        "image_size": int(args.image_size),
        "renderer": str(args.renderer),
        "physics": str(args.physics),
        "start_tip_mm": spec.start_tip_mm,
        "target_depth_mm": float(args.target_depth),
        "depth_tolerance_mm": float(args.tolerance),
        "contrast_first_injection_s": spec.contrast_first_s,
        "contrast_interval_s": spec.contrast_interval_s,
        "contrast_plateau_s": spec.contrast_plateau_s,
        "fault_drop_probability": spec.drop_probability,
        "fault_freeze_start_s": spec.freeze_start_s,
        "fault_freeze_duration_s": spec.freeze_duration_s,
        "fault_grabber_pulse_hz": spec.grabber_pulse_hz,
        "fault_pedal_seed": spec.pedal_seed,
        "wait_for_subscribers": True,
        "pin_view_offset": args.view_offset_deg is not None,
        "view_offset_deg": float(args.view_offset_deg or 0.0),
    }
    controller = {"max_retraction_speed_mm_s": float(args.retraction_speed)}
    return (
        NodeSpec(PERCEPTION, "tavi_perception.ros.perception_node", perception, {"image": "fluoro/image"}),
        NodeSpec("controller_node", "tavi_perception.ros.controller_node", controller),
        NodeSpec("simulator_node", "tavi_perception.ros.simulator_node", simulator),
    )


def trial_physics(spec: TrialSpec, physics: str) -> dict[str, dict[str, float]]:
    """``{"physics": parameters}`` of a trial on the MuJoCo delivery system (drawn from its case seed)."""
    return {"physics": dataclasses.asdict(sample_physics(spec.case_seed))} if physics == "mujoco" else {}


class _Restart:
    """Interrupts the perception node at ``restart_at_s`` (image time) and starts another ``down_s`` later.

    The interrupted node stops taking frames at once but may take seconds to exit: it waits until its
    subscribers acknowledge its last messages (:mod:`tavi_perception.ros.lifecycle`). The runner neither
    waits for that nor counts it as down time; the end of the trial reaps the process.
    """

    def __init__(self, spec: TrialSpec, perception: NodeSpec, procs: NodeProcesses) -> None:
        self.at_s = spec.restart_at_s
        self.down_s = spec.restart_down_s
        self.restarted = dataclasses.replace(perception, name=f"{PERCEPTION}.restarted")
        self.procs = procs
        self.stopped_at: float | None = None
        self.done = self.at_s < 0

    @property
    def stopped(self) -> set[str]:
        """Processes this restart stopped on purpose (their exit is no failure)."""
        return {PERCEPTION} if self.stopped_at is not None else set()

    def tick(self, elapsed_s: float) -> None:
        if self.done:
            return
        if self.stopped_at is None and elapsed_s >= self.at_s:
            self.procs.interrupt([PERCEPTION])
            self.stopped_at = time.monotonic()
        elif self.stopped_at is not None and time.monotonic() - self.stopped_at >= self.down_s:
            self.procs.start(self.restarted)
            self.done = True


def run_trial(spec: TrialSpec, args: argparse.Namespace, log_dir: Path) -> tuple[TrialResult, LoopRecorder]:
    """One trial through the ROS 2 graph; returns its result and the recorder with what it kept."""
    perception, controller, simulator = node_specs(spec, args)
    recorder = LoopRecorder(overlay=False)
    procs = NodeProcesses(log_dir, [perception, controller])
    restart = _Restart(spec, perception, procs)
    ended = "max duration"
    try:
        start_procedure(recorder, procs, simulator)
        first_ns = recorder.truth[0].stamp_ns
        done_at: float | None = None
        while True:
            recorder.spin_once(0.02)
            elapsed_s = (recorder.truth[-1].stamp_ns - first_ns) * 1e-9
            restart.tick(elapsed_s)
            if done_at is None and recorder.commands and DONE_REASON in recorder.commands[-1].reason:
                done_at = time.monotonic()
            if done_at is not None and time.monotonic() - done_at > 1.0:
                ended = DONE_REASON
                break
            if elapsed_s >= duration_limit_s(spec, args.max_duration):
                break
            dead = [n for n in procs.dead() if n not in restart.stopped]
            if dead:
                raise RuntimeError(f"{dead[0]} died during the trial:\n{procs.log_tail(dead[0])}")
        end_procedure(recorder, procs, simulator, drain_s=0.5)
    finally:
        procs.stop()
        recorder.close()
    unsteered = unsteered_asymmetry_mm(
        spec.case_seed, args.target_depth, args.image_size, args.renderer, args.view_offset_deg
    )
    result = trial_result(spec, ended, recorder.perceived, recorder.truth, recorder.commands, unsteered)
    return result, recorder


def _depth_series(recorder: LoopRecorder) -> tuple[np.ndarray, np.ndarray]:
    """(t_s from the first frame, true controlled depth [mm]) of a trial."""
    truth = sorted(recorder.truth, key=lambda r: r.stamp_ns)
    if not truth:
        return np.zeros(0), np.zeros(0)
    t_s = (np.asarray([r.stamp_ns for r in truth], dtype=np.int64) - truth[0].stamp_ns) * 1e-9
    return t_s, np.asarray([r.depth_mm for r in truth])


def _line(r: TrialResult) -> str:
    err = "-" if r.final_depth_error_mm is None else f"{r.final_depth_error_mm:+.2f} mm"
    asym = "-" if r.final_asymmetry_mm is None else f"{r.final_asymmetry_mm:.2f} mm"
    kinds = ", ".join(f"{k} {n}" for k, n in r.moves_while_invalid_by_kind.items() if n)
    moves = f"{r.moves_while_invalid} ({kinds})" if kinds else f"{r.moves_while_invalid}"
    return (
        f"trial {r.index:2d} [{r.fault}] case {r.case_seed}: {'success' if r.success else 'FAILURE'}, "
        f"{r.ended}, final depth error {err}, asymmetry {asym}, moves while invalid {moves}, "
        f"dropped {r.frames_dropped} (+{r.frames_dropped_injected} injected)"
    )


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.trials < 1:
        print("tavi-perception loop: --trials must be >= 1", file=sys.stderr)
        return 2
    specs = trial_specs(args.trials, args.seed, args.fault)
    args.out.mkdir(parents=True, exist_ok=True)
    model = Path(args.model) if args.model else shipped_model_path()
    print(f"loop: {len(specs)} trials ({args.fault}), seed {args.seed}; writing {args.out}/", file=sys.stderr)
    results: list[TrialResult] = []
    series = []
    bar = tqdm(specs, desc="closed-loop trials", unit="trial", file=sys.stderr, disable=args.no_progress)
    for spec in bar:
        try:
            result, recorder = run_trial(spec, args, args.out / "logs" / f"trial_{len(results):02d}")
        except RuntimeError as err:
            print(f"loop failed in trial {spec.index} ({spec.fault}): {err}", file=sys.stderr)
            return 1
        results.append(result)
        series.append((result, *_depth_series(recorder)))
        tqdm.write(_line(result), file=sys.stderr)
        bar.set_postfix_str(f"{sum(r.success for r in results)}/{len(results)} successful")
    summary = summarize_trials(results)
    plot_trials(series, args.target_depth, args.tolerance, str(args.out / "depth.png"))
    report = {
        "command": "tavi-perception loop " + shlex.join(argv),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_path": str(model),
        "model_sha256": file_sha256(model),
        "refine_model_sha256": file_sha256(shipped_model_path(SHIPPED_REFINE_MODEL)) if args.refine else None,
        "root_refine_model_sha256": (
            file_sha256(shipped_model_path(SHIPPED_ROOT_REFINE_MODEL)) if args.refine_root else None
        ),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "summary": summary,
        "trials": [
            r.as_dict() | {"spec": dataclasses.asdict(s)} | trial_physics(s, args.physics)
            for r, s in zip(results, specs, strict=True)
        ],
    }
    (args.out / "summary.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"success {sum(r.success for r in results)}/{len(results)}; summary: {args.out / 'summary.json'}")
    if args.json:
        print(json.dumps({**{k: summary[k] for k in SUMMARY_KEYS}, **summary}))
    return 0
