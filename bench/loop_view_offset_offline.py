"""Closed loop without the ROS graph, for views off the S-curve: simulator -> pipeline -> controller.

The trials of ``tavi-perception loop --seed S --view-offset-deg D`` (same ``sample_trial`` specs, case,
contrast schedule, start position, plan and C-arm angles) with the simulator (command drive), the
:class:`PerceptionPipeline` (shipped model) and the :class:`ReferenceController` called in turn, frame
by frame, in simulated time: no DDS, no real-time deadline, so no frame is ever stale or dropped. It
measures the model and the view correction, not the graph (``loop`` does that on an idle machine).
Truth is the simulator's coplanar truth, scored as ``trial_result`` scores it: success = completed,
|final depth error| <= 1 mm and final asymmetry < 2 mm; moves on invalid guidance counted per frame.

    nice .venv/bin/python bench/loop_view_offset_offline.py --trials 20 --view-offset-deg 15
    # -> bench/results/loop_view_offset15_offline.json (--renderer ct: the CT renderer, ~4x slower)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from tavi_perception.controller.reference import GuidanceSample, ReferenceController
from tavi_perception.core.calibration import Calibration
from tavi_perception.core.carm import CArmPose
from tavi_perception.core.pipeline import FrameResult, PerceptionPipeline, shipped_model_path
from tavi_perception.evaluation.trials import SUCCESS_DEPTH_MM, SYMMETRIC_MM, sample_trial
from tavi_perception.geometry.params import GeometryParams
from tavi_perception.inference.engines import create_engine, file_sha256
from tavi_perception.inference.refinement import Refinement, create_refinements
from tavi_perception.plan.obliquity import ViewCorrection
from tavi_perception.plan.simulated import case_plan
from tavi_perception.ros.simulator_node import command_schedule
from tavi_perception.sim.ct.simulator import create_simulator, simulation_case
from tavi_perception.sim.delivery import DeliveryCommand, DeliveryState

FPS = 15.0
TARGET_MM = 4.0


def run_trial(
    seed: int,
    index: int,
    offset_deg: float,
    correct: bool,
    engine,
    max_s: float,
    refinements: tuple[Refinement, ...] = (),
    renderer: str = "stylised",
) -> dict:
    spec = sample_trial(seed, index)
    case = simulation_case(renderer, spec.case_seed, view_offset_deg=offset_deg)
    schedule = command_schedule(spec.contrast_first_s, spec.contrast_interval_s, spec.contrast_plateau_s)
    sim = create_simulator(renderer, case, fps=FPS, contrast=schedule)
    sim.place(DeliveryState(spec.start_tip_mm, 0.0))
    geometry = GeometryParams(
        valve_frame_height_mm=case.devices.frame_height_mm, cp_cd_length_mm=case.devices.cp_cd_closed_mm
    )
    view = case.imaging.view
    correction = ViewCorrection(case_plan(case, renderer) if correct else None)
    pipeline = PerceptionPipeline(
        engine,
        Calibration(sim.mm_per_px, 512, True, "case"),
        None,
        geometry,
        view=correction,
        refinements=refinements,
    )
    pipeline.set_carm(CArmPose(view.lao_deg, view.cran_deg))
    controller = ReferenceController()
    moves_invalid, done_at, truth = 0, None, None
    valid = False
    for _ in range(int(max_s * FPS)):
        frame = sim.step()
        truth = frame.truth
        result = pipeline.step(frame.t_s, None, frame.image)
        if isinstance(result, FrameResult) or result.estimate is not None:
            estimate = result.estimate
            values = {f.name: getattr(estimate, f.name) for f in dataclasses.fields(estimate)}
            controller.on_guidance(GuidanceSample(**values, received_s=frame.t_s, stamp_s=frame.t_s))
            valid = estimate.valid
        command = controller.step(frame.t_s)
        moving = not command.hold and any(
            v != 0.0
            for v in (command.advance_speed_mm_s, command.retraction_speed_mm_s, command.steer_rate_deg_s)
        )
        moves_invalid += int(moving and not valid)
        sim.command(
            DeliveryCommand(
                command.advance_speed_mm_s,
                command.retraction_speed_mm_s,
                command.steer_rate_deg_s,
                command.hold,
            )
        )
        if done_at is None and controller.phase.value == "done":
            done_at = frame.t_s
        if done_at is not None and frame.t_s - done_at > 1.0:
            break
    error = truth.depth_mm - TARGET_MM
    completed = done_at is not None
    return {
        "index": index,
        "case_seed": spec.case_seed,
        "primary_deg": view.lao_deg,
        "secondary_deg": view.cran_deg,
        "completed": completed,
        "final_depth_error_mm": error,
        "final_asymmetry_mm": truth.stent_asymmetry_mm,
        "success": bool(
            completed and abs(error) <= SUCCESS_DEPTH_MM and truth.stent_asymmetry_mm < SYMMETRIC_MM
        ),
        "moves_while_invalid": moves_invalid,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--view-offset-deg", type=float, default=15.0)
    p.add_argument("--renderer", choices=("stylised", "ct"), default="stylised")
    p.add_argument("--no-view-correction", action="store_true")
    p.add_argument("--max-duration", type=float, default=120.0, help="[s] simulated time per trial")
    p.add_argument("--model", type=Path, default=None, help="model file (default: the shipped model)")
    p.add_argument(
        "--refine", type=Path, help="valve-refinement model (inference/refinement.py); default: none"
    )
    p.add_argument("--refine-root", type=Path, help="root-refinement model; default: none")
    p.add_argument("--out", type=Path, default=Path("bench/results/loop_view_offset15_offline.json"))
    args = p.parse_args()
    model = args.model or shipped_model_path()
    engine = create_engine(model, threads=2)
    refinements = tuple(create_refinements(args.refine, args.refine_root, threads=2))
    trials = []
    started = time.time()
    for i in range(args.trials):
        trials.append(
            run_trial(
                args.seed,
                i,
                args.view_offset_deg,
                not args.no_view_correction,
                engine,
                args.max_duration,
                refinements,
                args.renderer,
            )
        )
        t = trials[-1]
        print(
            f"trial {i:2d} case {t['case_seed']}: {'success' if t['success'] else 'FAILURE'}, "
            f"completed {t['completed']}, depth error {t['final_depth_error_mm']:+.2f} mm, "
            f"asymmetry {t['final_asymmetry_mm']:.2f} mm, moves while invalid {t['moves_while_invalid']}",
            flush=True,
        )
        errors = [abs(t["final_depth_error_mm"]) for t in trials if t["completed"]]
        summary = {
            "trials": len(trials),
            "success": sum(t["success"] for t in trials),
            "completed": sum(t["completed"] for t in trials),
            "depth_error_mm_mean_completed": float(np.mean(errors)) if errors else None,
            "moves_while_invalid": sum(t["moves_while_invalid"] for t in trials),
            "wall_s": time.time() - started,
        }
        command = "nice .venv/bin/python bench/loop_view_offset_offline.py " + shlex.join(sys.argv[1:])
        record = {"command": command, "model_sha256": file_sha256(model), "summary": summary}
        if args.refine is not None:
            record["refine_model_sha256"] = file_sha256(args.refine)
        if args.refine_root is not None:
            record["root_refine_model_sha256"] = file_sha256(args.refine_root)
        record["trials"] = trials
        args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
