"""Guidance after a fluoroscopy pedal gap: share of valid frames in the frames that follow the gap.

Each simulated case of the test split (as ``tavi-perception eval-tracking``) is turned into a stream of
detections once (15 fps, no dropped frames): the simulator's true keypoints through the simulated
detector of :class:`~tavi_perception.evaluation.tracking.DetectorNoise`, or with ``--model`` the rendered
frames through that model. Gap starts are
frames whose guidance is valid with a pigtail-bound annulus and where the root stays free of contrast
until the end of the measured window (so only the pigtail binding can give an annulus afterwards); up to
``--per-case`` of them, spread over the case. For each gap start and length, the stream is replayed
through a fresh tracker and estimator with the frames inside the gap left out (the heart keeps beating
meanwhile), the caller announcing the gap with ``resume_after_gap`` as frame admission does, and the
share of valid guidance in the ``--window`` frames after the gap is counted; the same frames without the
gap are the reference.

Writes bench/results/pedal_gap.json (``--model``: pedal_gap_model.json).
Run: .venv/bin/python bench/bench_pedal_gap.py [--cases N] [--model models/tavi_keypoints.onnx]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tavi_perception.evaluation.tracking import DetectorNoise
from tavi_perception.geometry.estimator import AnnulusSource, GeometryParams, GuidanceEstimator
from tavi_perception.sim import ProcedureSimulator, sample_case
from tavi_perception.sim.dataset import TEST_SPLIT, case_seed
from tavi_perception.sim.simulator import visibility
from tavi_perception.tracking import KeypointTracker

if TYPE_CHECKING:
    from tavi_perception.inference.engines import InferenceEngine

RESULTS = Path(__file__).resolve().parent / "results" / "pedal_gap.json"


def _stream(seed: int, fps: float, engine: InferenceEngine | None) -> dict:
    """Detections, contrast flags and the scale of one case, frame by frame."""
    case = sample_case(seed)
    sim = ProcedureSimulator(case, fps=fps)
    rng = np.random.default_rng([seed, 0x6A9])
    noise = DetectorNoise()
    t_s, xy, vis, contrast = [], [], [], []
    for i in range(int(sim.scenario.duration_s * fps)):
        t = i / fps
        state = sim.scenario.state_at(t, sim.limits, case.devices.max_retraction_mm)
        kp, extra = sim.scene.keypoints(t, state)
        fill = sim.contrast.fill(t)
        visible = visibility(
            sim.scene.keypoints_in_view(kp, extra), fill, sim.contrast_threshold, state.retraction_mm
        )
        if engine is None:
            d_xy, d_vis, _ = noise.detect(rng, kp, visible, sim.image_size)
        else:
            detections = engine.infer(sim.frame_at(t, i).image)
            d_xy, d_vis = detections.xy_px, detections.visibility
        t_s.append(t)
        xy.append(d_xy)
        vis.append(d_vis)
        contrast.append(fill >= sim.contrast_threshold)
    geometry = GeometryParams(valve_frame_height_mm=case.devices.frame_height_mm)
    return {
        "t_s": t_s,
        "xy": xy,
        "vis": vis,
        "contrast": contrast,
        "mm_per_px": sim.mm_per_px,
        "geo": geometry,
    }


def _replay(stream: dict, gap_from: int, gap_s: float) -> list[tuple[bool, int]]:
    """(valid, annulus source) per frame; frames in ``[t[gap_from], t[gap_from] + gap_s)`` left out."""
    tracker, estimator = KeypointTracker(), GuidanceEstimator(stream["geo"])
    t_gap = stream["t_s"][gap_from] if gap_s > 0 else np.inf
    out: list[tuple[bool, int]] = []
    resumed = False
    for t, xy, vis in zip(stream["t_s"], stream["xy"], stream["vis"], strict=True):
        if t_gap <= t < t_gap + gap_s:
            out.append((False, AnnulusSource.NONE))  # no frame
            continue
        if t >= t_gap and not resumed:
            resumed = True
            tracker.resume_after_gap(gap_s)
            estimator.resume_after_gap(gap_s)
        est = estimator.update(t, tracker.update(t, xy, vis), stream["mm_per_px"])
        out.append((est.valid, int(est.annulus_source)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=6, help="test-split cases (default 6)")
    parser.add_argument("--gaps-s", type=float, nargs="+", default=[0.6, 5.0], help="gap lengths [s]")
    parser.add_argument("--per-case", type=int, default=3, help="gap starts per case (default 3)")
    parser.add_argument("--window", type=int, default=90, help="frames counted after a gap (default 90)")
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument(
        "--model", type=Path, default=None, help="detections from this model, not truth-noise"
    )
    parser.add_argument("--out", type=Path, default=None, help=f"default {RESULTS.name} in {RESULTS.parent}")
    args = parser.parse_args()
    engine = None
    if args.model is not None:
        from tavi_perception.inference import create_engine

        engine = create_engine(args.model)
    out = args.out or RESULTS.with_stem(RESULTS.stem + ("_model" if engine else ""))

    results: dict[str, dict] = {}
    for gap_s in args.gaps_s:
        results[f"{gap_s:g}"] = {"gaps": 0, "valid_after_gap": 0, "valid_without_gap": 0, "frames": 0}
    for index in range(args.cases):
        stream = _stream(case_seed(TEST_SPLIT["seed"], index), args.fps, engine)
        reference = _replay(stream, 0, 0.0)
        n = len(reference)
        for gap_s in args.gaps_s:
            skip = int(np.ceil(gap_s * args.fps))
            span = skip + args.window
            starts = [
                i
                for i in range(1, n - span)
                if reference[i - 1] == (True, AnnulusSource.PIGTAIL_BOUND)
                and not any(stream["contrast"][i : i + span])
            ]
            picks = (
                [starts[k] for k in np.linspace(0, len(starts) - 1, args.per_case).astype(int)]
                if starts
                else []
            )
            r = results[f"{gap_s:g}"]
            for start in sorted(set(picks)):
                after = _replay(stream, start, gap_s)
                first = start + next(
                    k for k in range(span) if stream["t_s"][start + k] >= stream["t_s"][start] + gap_s
                )
                window = slice(first, first + args.window)
                r["gaps"] += 1
                r["frames"] += args.window
                r["valid_after_gap"] += sum(v for v, _ in after[window])
                r["valid_without_gap"] += sum(v for v, _ in reference[window])
    for r in results.values():
        frames = max(r["frames"], 1)
        r["valid_fraction_after_gap"] = r["valid_after_gap"] / frames
        r["valid_fraction_without_gap"] = r["valid_without_gap"] / frames
    source = f"model {args.model}" if engine else DetectorNoise().describe()
    summary = {
        "source": source,
        "cases": args.cases,
        "fps": args.fps,
        "window_frames": args.window,
        "gaps": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
