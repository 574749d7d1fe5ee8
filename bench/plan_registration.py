"""How far the annulus line lies from the truth: read off the detected hinge points, or the plan registered.

For the loop's cases (``sample_trial(seed, i)``) with the view ``D`` degrees off the S-curve, contrast
frames are rendered with the delivery system at several depths (capsule closed, and partly retracted over
the cusps) and run through the shipped model. On each frame where AA1, AA2, STJ1 and STJ2 are detected,
the annulus line is built three ways and its distance from the true hinge points' midpoint measured
across the line [mm at the isocentre] (the depth error it gives), with its angle from the true line [deg]
(times the valve's span, the asymmetry error it gives):

- ``detected``: the line through the detected AA1 and AA2 (what the annulus block does without a plan);
- ``registered``: the plan's shape registered on AA1, AA2 and the STJ (``PlannedAnnulus.register``);
- ``registered_without_stj``: the same without the STJ in the plan (the hinge points' mean);
- ``registered_root_refined`` (with ``--refine-root MODEL``): the plan registered on AA1, AA2 and the STJ
  read again on a full-resolution crop of the root (``inference/refinement.py``, target ``root``).

    nice .venv/bin/python bench/plan_registration.py               # -> bench/results/plan_registration.json
    nice .venv/bin/python bench/plan_registration.py --renderer ct \
        --out bench/results/plan_registration_ct.json
    nice .venv/bin/python bench/plan_registration.py --renderer ct --offsets -15 15 \
        --refine-root models/tavi_root_refine.onnx --out bench/results/plan_registration_ct_root_refine.json
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

from tavi_perception.core.pipeline import shipped_model_path
from tavi_perception.evaluation.trials import sample_trial
from tavi_perception.geometry.frames import annulus_frame_from_keypoints, wrap_deg
from tavi_perception.inference.engines import create_engine, file_sha256
from tavi_perception.inference.refinement import ROOT, refine
from tavi_perception.keypoints import Kp
from tavi_perception.plan.obliquity import ViewCorrection
from tavi_perception.plan.simulated import case_plan
from tavi_perception.sim.contrast import ContrastSchedule, Injection
from tavi_perception.sim.ct.simulator import create_simulator, simulation_case
from tavi_perception.sim.delivery import DeliveryState

# (tip depth below the annulus [mm], capsule retraction [mm]): closed capsule from the aorta down, then a
# valve frame partly out over the cusps
POSITIONS = ((-10.0, 0.0), (-4.0, 0.0), (0.0, 0.0), (4.0, 0.0), (8.0, 0.0), (6.0, 5.0), (6.0, 10.0))
ANATOMY = (Kp.AA1, Kp.AA2, Kp.STJ1, Kp.STJ2)
METHODS = ("detected", "registered", "registered_without_stj", "registered_root_refined")


def case_errors(
    renderer: str, case_seed: int, offset_deg: float, engine, root_engine=None
) -> dict[str, list[float]]:
    case = simulation_case(renderer, case_seed, view_offset_deg=offset_deg)
    sim = create_simulator(renderer, case, contrast=ContrastSchedule((Injection(0.0, plateau_s=600.0),)))
    view = case.imaging.view
    planned = ViewCorrection(case_plan(case, renderer)).planned_annulus(view.lao_deg, view.cran_deg)
    without_stj = dataclasses.replace(planned, stj_mm=None)
    errors: dict[str, list[float]] = {m: [] for m in METHODS} | {f"{m}_angle": [] for m in METHODS}
    frame = sim.step()
    while frame.contrast < 0.95:
        frame = sim.step()
    for tip_mm, retraction_mm in POSITIONS:
        sim.place(DeliveryState(tip_mm, retraction_mm))
        frame = sim.step()
        detections = engine.infer(frame.image)
        if not all(detections.visibility[k] > 0.5 for k in ANATOMY):
            continue
        xy, s = detections.xy_px, frame.mm_per_px
        truth = 0.5 * (frame.keypoints_px[Kp.AA1] + frame.keypoints_px[Kp.AA2])
        truth_frame = annulus_frame_from_keypoints(frame.keypoints_px)
        lines = [
            ("detected", annulus_frame_from_keypoints(xy)),
            ("registered", planned.register(xy, s)),
            ("registered_without_stj", without_stj.register(xy, s)),
        ]
        if root_engine is not None:
            refined = refine(root_engine, frame.image, detections, s, target=ROOT)
            if all(refined.visibility[k] > 0.5 for k in ANATOMY):
                lines.append(("registered_root_refined", planned.register(refined.xy_px, s)))
        for method, line in lines:
            # + : the true midpoint lies on the line's ventricular side; the angle between the lines 0..90
            errors[method].append(line.to_annulus_mm(truth, s)[1])
            errors[f"{method}_angle"].append(abs(wrap_deg(line.angle_deg - truth_frame.angle_deg, 90.0)))
    return errors


def summary(per_case: list[dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    result = {}
    for method in METHODS:
        if not any(c[method] for c in per_case):
            continue
        frames = np.abs(np.concatenate([c[method] for c in per_case if c[method]]))
        cases = np.abs([np.mean(c[method]) for c in per_case if c[method]])
        angles = np.concatenate([c[f"{method}_angle"] for c in per_case if c[method]])
        result[method] = {
            "angle_error_deg_mean": float(angles.mean()),
            "angle_error_deg_p95": float(np.percentile(angles, 95)),
            "frames": int(frames.size),
            "abs_error_mm_mean": float(frames.mean()),
            "abs_error_mm_p95": float(np.percentile(frames, 95)),
            "case_mean_abs_mm_mean": float(cases.mean()),
            "case_mean_abs_mm_max": float(cases.max()),
        }
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--offsets", type=float, nargs="+", default=[15.0, -15.0], help="[deg] off the S-curve")
    p.add_argument("--renderer", choices=("stylised", "ct"), default="stylised")
    p.add_argument("--out", type=Path, default=Path("bench/results/plan_registration.json"))
    p.add_argument("--refine-root", type=Path, help="root-refinement model: adds registered_root_refined")
    p.add_argument("--model", type=Path, help="first-stage model (default: the shipped one)")
    args = p.parse_args()
    model = args.model or shipped_model_path()
    engine = create_engine(model, threads=2)
    root_engine = None if args.refine_root is None else create_engine(args.refine_root, threads=2)
    started = time.time()
    record = {
        "command": "nice .venv/bin/python bench/plan_registration.py " + shlex.join(sys.argv[1:]),
        "model_sha256": file_sha256(model),
        "root_refine_model_sha256": None if args.refine_root is None else file_sha256(args.refine_root),
        "positions_tip_retraction_mm": POSITIONS,
        "offsets": {},
    }
    for offset in args.offsets:
        per_case = []
        for i in range(args.trials):
            spec = sample_trial(args.seed, i)
            per_case.append(case_errors(args.renderer, spec.case_seed, offset, engine, root_engine))
            means = {m: f"{np.mean(per_case[-1][m]):+.2f}" if per_case[-1][m] else "-" for m in METHODS}
            print(f"{offset:+g} deg, trial {i:2d} case {spec.case_seed}: mean error [mm] {means}", flush=True)
        record["offsets"][f"{offset:+g}"] = {"summary": summary(per_case), "cases": per_case}
        print(json.dumps({f"{offset:+g}": record["offsets"][f"{offset:+g}"]["summary"]}), flush=True)
    record["wall_s"] = time.time() - started
    args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
