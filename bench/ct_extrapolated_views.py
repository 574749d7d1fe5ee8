"""The keypoint model on CT-rendered frames seen from C-arm angles outside every training view.

Training cases draw the primary angle from LAO_RANGE_DEG (-30 to 35 deg, RAO negative); these cases pin
it outside that range (RAO 40/35, LAO 40/45 deg), with the secondary angle on the CT root's S-curve as
for any case. Case seeds 9501+ (not a training seed), frames spread over each procedure as in
``dataset``. Writes ``bench/results/ct_extrapolated_views.json``.

    .venv/bin/python bench/ct_extrapolated_views.py --model models/tavi_keypoints.onnx
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from benchlib import RESULTS_DIR, bench_parser, write_results

from tavi_perception.evaluation.metrics import compute_metrics, json_safe
from tavi_perception.inference.engines import create_engine, file_sha256
from tavi_perception.sim.case import LAO_RANGE_DEG
from tavi_perception.sim.ct.simulator import create_simulator, simulation_case
from tavi_perception.sim.scenario import sampling_times

PRIMARY_DEG = (-40.0, -35.0, 40.0, 45.0)
CASES_PER_ANGLE = 2
FRAMES_PER_CASE = 12
FIRST_SEED = 9501


def main() -> None:
    parser = bench_parser(__doc__, RESULTS_DIR / "ct_extrapolated_views.json")
    parser.add_argument("--model", type=Path, default=Path("models/tavi_keypoints.onnx"))
    args = parser.parse_args()
    assert all(not LAO_RANGE_DEG[0] <= a <= LAO_RANGE_DEG[1] for a in PRIMARY_DEG)
    engine = create_engine(args.model, backend="onnxruntime", threads=2)
    gt_xy, gt_vis, xy, vis, views = [], [], [], [], []
    seed = FIRST_SEED
    for primary_deg in PRIMARY_DEG:
        for _ in range(CASES_PER_ANGLE):
            case = simulation_case("ct", seed, lao_deg=primary_deg)
            sim = create_simulator("ct", case)
            rng = np.random.default_rng(seed)
            for t_s in sampling_times(sim.scenario, FRAMES_PER_CASE, rng):
                frame = sim.frame_at(float(t_s))
                det = engine.infer(frame.image)
                gt_xy.append(frame.keypoints_px)
                gt_vis.append(frame.visible)
                xy.append(det.xy_px)
                vis.append(det.visibility)
            views.append(
                {"seed": seed, "primary_deg": primary_deg, "secondary_deg": case.imaging.view.cran_deg}
            )
            seed += 1
    metrics = compute_metrics(np.array(gt_xy), np.array(gt_vis), np.array(xy), np.array(vis), (512, 512))
    write_results(
        args.out,
        json_safe(
            {
                "what": __doc__.splitlines()[0],
                "model": str(args.model),
                "sha256": file_sha256(args.model),
                "training_primary_range_deg": list(LAO_RANGE_DEG),
                "views": views,
                "frames": len(gt_xy),
                "overall": metrics["overall"],
                "groups": metrics["groups"],
                "keypoints": metrics["keypoints"],
            }
        ),
    )
    o = metrics["overall"]
    print(f"{len(gt_xy)} frames: F1 {o['f1']:.4f}, mean error {o['mean_error_px']:.2f} px")


if __name__ == "__main__":
    main()
