"""``tavi-perception eval-tracking``: tracker + geometry on simulated procedures, against the truth.

Sources of per-frame detections:

- ``truth-noise`` (used when no trained model exists): the simulator's true keypoints and visibility,
  no image rendered, through a simulated detector: Gaussian position noise, misses, gross outliers on
  visible points and false positives on invisible ones, each with a visibility probability;
- ``model``: rendered frames through an inference engine (``--model`` path, ONNX or torch checkpoint).

Cases: by default those of the simulator's fixed test split (``tavi-perception dataset --test-split``,
case ``i`` of seed 9001), which no model is trained on; ``--seed`` picks another dataset seed.

Metrics (pooled over cases):

- jitter (the issue's definition): frame-to-frame RMS per axis of the positions on *still* phases. The
  simulated heart never stops, so each case is also run with its cardiac and respiratory motion switched
  off, and the phases where the delivery system is held are the still phases. Raw uses truly visible,
  non-outlier detections; tracked uses truly visible, non-LOST tracks. ``jitter_reduction`` =
  1 - tracked / raw. ``jitter_reduction_beating`` is the same on the beating run's held phases with the
  truth subtracted first (frame-to-frame change of estimate - truth), which also counts motion lag;
- lag: the least-squares time shift between estimate and truth, ``-sum(e . v) / sum(v . v)`` with ``e``
  the position error and ``v`` the true velocity (central differences), on frames moving faster than
  ``MOTION_MIN_PX_S``; in frames, positive = behind;
- keypoint error: mean distance to the truth (raw: truly visible detections, outliers included;
  tracked: truly visible, non-LOST tracks);
- tip depth: |estimated - true| tip depth over frames whose catheter block is valid (contrast and
  pigtail-bound annulus alike, and split by source); annulus: origin distance on pigtail-bound frames;
- safety: valid guidance frames whose depth is more than ``GROSS_ERROR_MM`` off the truth.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tavi_perception.core.calibration import Calibration
from tavi_perception.core.pipeline import FrameResult, PerceptionPipeline
from tavi_perception.geometry.estimator import (
    AnnulusSource,
    DepthSource,
    GeometryParams,
    GuidanceEstimate,
)
from tavi_perception.inference.engines import Detections
from tavi_perception.keypoints import NUM_KEYPOINTS, Kp
from tavi_perception.tracking.tracker import KeypointState, TrackerParams

if TYPE_CHECKING:
    from tavi_perception.inference.engines import InferenceEngine

MOTION_MIN_PX_S = 10.0  # [px/s] frames slower than this do not inform the lag
GROSS_ERROR_MM = 3.0  # [mm] a valid depth this far from the truth is a safety failure
GOALS = {
    "jitter_reduction": (">=", 0.5),
    "lag_frames": ("<=", 1.0),
    "tip_depth_error_mm_mean": ("<=", 1.0),
    "tip_depth_error_mm_p95": ("<=", 2.0),
    "valid_gross_error_frames": ("<=", 0),
}
MODELS_DIR = Path(__file__).resolve().parents[2] / "models"


@dataclass(frozen=True)
class DetectorNoise:
    """A simulated keypoint detector around the true keypoints (pixels of a 512² image by default)."""

    noise_px: float = 2.0  # [px] Gaussian 1-sigma per axis on every detection
    miss_rate: float = 0.05  # visible point reported with visibility < 0.5
    outlier_rate: float = 0.02  # visible point reported confidently 15-40 px away
    false_positive_rate: float = 0.01  # invisible point reported confidently somewhere in the image

    def describe(self) -> str:
        return (
            f"ground truth + simulated detector: Gaussian {self.noise_px:g} px, {self.miss_rate:.0%} misses, "
            f"{self.outlier_rate:.0%} outliers (15-40 px), {self.false_positive_rate:.0%} false positives"
        )

    def detect(
        self, rng: np.random.Generator, xy_true: np.ndarray, visible: np.ndarray, image_px: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(xy_px, visibility, wrong) for one frame; ``wrong`` marks outliers and false positives."""
        n = NUM_KEYPOINTS
        xy = xy_true + rng.normal(0.0, self.noise_px, size=(n, 2))
        vis = np.where(visible, rng.uniform(0.6, 1.0, n), rng.uniform(0.0, 0.3, n))
        miss = visible & (rng.random(n) < self.miss_rate)
        vis[miss] = rng.uniform(0.0, 0.45, int(miss.sum()))
        outlier = visible & ~miss & (rng.random(n) < self.outlier_rate)
        angle = rng.uniform(0, 2 * np.pi, n)
        radius = rng.uniform(15.0, 40.0, n)
        xy[outlier] += np.stack([np.cos(angle), np.sin(angle)], axis=1)[outlier] * radius[outlier, None]
        false_pos = ~visible & (rng.random(n) < self.false_positive_rate)
        xy[false_pos] = rng.uniform(0, image_px, size=(int(false_pos.sum()), 2))
        vis[false_pos] = rng.uniform(0.5, 0.8, int(false_pos.sum()))
        return xy, vis, outlier | false_pos


@dataclass
class CaseRecord:
    """Per-frame arrays of one simulated case."""

    fps: float
    mm_per_px: float
    t_s: list[float] = field(default_factory=list)
    still: list[bool] = field(default_factory=list)
    truth_xy: list[np.ndarray] = field(default_factory=list)
    truth_visible: list[np.ndarray] = field(default_factory=list)
    raw_xy: list[np.ndarray] = field(default_factory=list)
    raw_present: list[np.ndarray] = field(default_factory=list)
    raw_wrong: list[np.ndarray] = field(default_factory=list)
    tracked_xy: list[np.ndarray] = field(default_factory=list)
    tracked_state: list[np.ndarray] = field(default_factory=list)
    estimates: list[GuidanceEstimate] = field(default_factory=list)
    true_tip_depth_mm: list[float] = field(default_factory=list)
    true_stent_depth_mm: list[float] = field(default_factory=list)
    true_annulus_origin_px: list[np.ndarray] = field(default_factory=list)
    true_deployment_fraction: list[float] = field(default_factory=list)


def run_case(
    case_seed: int,
    *,
    fps: float,
    duration_s: float | None,
    noise: DetectorNoise,
    drop_rate: float,
    tracker_params: TrackerParams,
    engine: InferenceEngine | None = None,
    still: bool = False,
    renderer: str = "stylised",
) -> CaseRecord:
    """Simulate one case's timeline and run tracker + geometry on it.

    ``engine``: detections from this inference engine on rendered frames instead of the noisy truth;
    ``still``: the case with its cardiac and respiratory motion switched off; ``renderer``: ``stylised``
    or ``ct`` (the same case seed in the chest CT, docs/ct_renderer.md).
    """
    from tavi_perception.sim.ct.simulator import create_simulator, simulation_case
    from tavi_perception.sim.simulator import true_geometry, visibility

    case = simulation_case(renderer, case_seed)
    if still:
        case = replace(
            case, motion=replace(case.motion, cardiac_amplitude_mm=0.0, respiratory_amplitude_mm=0.0)
        )
    sim = create_simulator(renderer, case, fps=fps)
    scene, scenario = sim.scene, sim.scenario
    rng = np.random.default_rng([case_seed, 0x7AC])
    geometry = GeometryParams(valve_frame_height_mm=case.devices.frame_height_mm)
    calibration = Calibration(sim.mm_per_px, 0, True, "simulator")
    pipeline = PerceptionPipeline(engine, calibration, tracker_params, geometry)
    rec = CaseRecord(fps=fps, mm_per_px=sim.mm_per_px)
    end_s = scenario.duration_s if duration_s is None else min(duration_s, scenario.duration_s)
    for i in range(int(end_s * fps)):
        if i > 0 and rng.random() < drop_rate:
            continue  # a dropped frame: the next interval is longer
        t = i / fps
        state = scenario.state_at(t, sim.limits, case.devices.max_retraction_mm)
        kp_true, extra = scene.keypoints(t, state)
        visible = visibility(
            scene.keypoints_in_view(kp_true, extra),
            sim.contrast.fill(t),
            sim.contrast_threshold,
            state.retraction_mm,
        )
        if engine is None:
            xy, vis, wrong = noise.detect(rng, kp_true, visible, sim.image_size)
            result = pipeline.step_detections(
                t, Detections(xy, vis, np.ones(3), "truth-noise"), sim.image_size
            )
        else:
            result = pipeline.step(t, None, sim.frame_at(t, i).image)
            wrong = np.zeros(NUM_KEYPOINTS, dtype=bool)
        if not isinstance(result, FrameResult):
            continue  # not admitted (none of the simulator's frames is): nothing measured
        xy, vis = result.detections.xy_px, result.detections.visibility
        tracked, estimate = result.tracked, result.estimate
        truth = true_geometry(kp_true, sim.mm_per_px, state, case, math.nan)
        segment = scenario.segments[scenario.segment_at(t)[0]]

        rec.t_s.append(t)
        rec.still.append(segment.advance_speed_mm_s == 0.0 and segment.retraction_speed_mm_s == 0.0)
        rec.truth_xy.append(kp_true)
        rec.truth_visible.append(visible)
        rec.raw_xy.append(xy)
        rec.raw_present.append(vis >= tracker_params.visibility_threshold)
        rec.raw_wrong.append(wrong)
        rec.tracked_xy.append(tracked.xy_px)
        rec.tracked_state.append(tracked.state)
        rec.estimates.append(estimate)
        rec.true_tip_depth_mm.append(truth.tip_depth_mm)
        rec.true_stent_depth_mm.append(truth.stent_mean_depth_mm)
        rec.true_annulus_origin_px.append(truth.annulus.origin_px)
        rec.true_deployment_fraction.append(truth.deployment_fraction)
    return rec


def _jitter_sq_sums(rec: CaseRecord) -> tuple[float, int, float, int]:
    """Sums of squared frame-to-frame error changes (raw, count, tracked, count) on still frame pairs."""
    t = np.array(rec.t_s)
    truth = np.array(rec.truth_xy)
    pair = np.array(rec.still[:-1]) & np.array(rec.still[1:]) & (np.diff(t) <= 1.5 / rec.fps)
    sums = []
    for est, ok in (
        (
            np.array(rec.raw_xy),
            np.array(rec.truth_visible) & np.array(rec.raw_present) & ~np.array(rec.raw_wrong),
        ),
        (
            np.array(rec.tracked_xy),
            np.array(rec.truth_visible) & (np.array(rec.tracked_state) != KeypointState.LOST),
        ),
    ):
        use = pair[:, None] & ok[:-1] & ok[1:]
        change = np.diff(est - truth, axis=0)[use]
        sums += [float(np.sum(change**2)), 2 * int(use.sum())]
    return sums[0], sums[1], sums[2], sums[3]


def _lag_sums(rec: CaseRecord, which: str) -> tuple[float, float]:
    """(sum e.v, sum v.v) for the lag regression of the raw or tracked positions."""
    t = np.array(rec.t_s)
    truth = np.array(rec.truth_xy)
    if len(t) < 3:
        return 0.0, 0.0
    velocity = np.gradient(truth, t, axis=0)
    visible = np.array(rec.truth_visible)
    if which == "raw":
        est = np.array(rec.raw_xy)
        ok = visible & np.array(rec.raw_present) & ~np.array(rec.raw_wrong)
    else:
        est = np.array(rec.tracked_xy)
        ok = visible & (np.array(rec.tracked_state) != KeypointState.LOST)
    ok &= np.hypot(velocity[..., 0], velocity[..., 1]) > MOTION_MIN_PX_S
    e, v = (est - truth)[ok], velocity[ok]
    return float(np.sum(e * v)), float(np.sum(v * v))


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _p95(values: list[float]) -> float | None:
    return float(np.percentile(values, 95)) if values else None


def _jitter_reduction(records: list[CaseRecord]) -> tuple[float | None, float | None, float | None]:
    """(reduction, raw jitter px, tracked jitter px) pooled over the still frame pairs of ``records``."""
    raw_sq = raw_n = trk_sq = trk_n = 0.0
    for rec in records:
        a, b, c, d = _jitter_sq_sums(rec)
        raw_sq, raw_n, trk_sq, trk_n = raw_sq + a, raw_n + b, trk_sq + c, trk_n + d
    if not raw_n or not trk_n:
        return None, None, None
    raw, tracked = math.sqrt(raw_sq / raw_n), math.sqrt(trk_sq / trk_n)
    return 1.0 - tracked / raw, raw, tracked


def summarise(records: list[CaseRecord], still_records: list[CaseRecord]) -> dict[str, object]:
    """Pooled metrics over the beating cases and their motion-free twins (see the module docstring)."""
    lag = {"raw": [0.0, 0.0], "tracked": [0.0, 0.0]}
    kp_err_raw, kp_err_trk = [], []
    tip_err = {AnnulusSource.CONTRAST: [], AnnulusSource.PIGTAIL_BOUND: []}
    stent_err, bound_err, fraction_err = [], [], []
    frames = tip_frames = tip_valid = valid = gross = 0
    fps = records[0].fps if records else math.nan
    for rec in records:
        for which in lag:
            ev, vv = _lag_sums(rec, which)
            lag[which][0] += ev
            lag[which][1] += vv
        truth = np.array(rec.truth_xy)
        visible = np.array(rec.truth_visible)
        raw_ok = visible & np.array(rec.raw_present)
        trk_ok = visible & (np.array(rec.tracked_state) != KeypointState.LOST)
        kp_err_raw += np.linalg.norm(np.array(rec.raw_xy) - truth, axis=-1)[raw_ok].tolist()
        kp_err_trk += np.linalg.norm(np.array(rec.tracked_xy) - truth, axis=-1)[trk_ok].tolist()
        for i, est in enumerate(rec.estimates):
            frames += 1
            before_deployment = rec.true_deployment_fraction[i] == 0.0
            if before_deployment and visible[i, Kp.CT]:
                tip_frames += 1
                tip_valid += est.catheter_valid
            if est.catheter_valid:
                tip_err[AnnulusSource(est.annulus_source)].append(
                    abs(est.tip_depth_mm - rec.true_tip_depth_mm[i])
                )
            if est.stent_valid:
                stent_err.append(abs(est.stent_mean_depth_mm - rec.true_stent_depth_mm[i]))
            if est.annulus_valid and est.annulus_source == AnnulusSource.PIGTAIL_BOUND:
                origin = np.array([est.annulus_origin_x_px, est.annulus_origin_y_px])
                bound_err.append(float(np.hypot(*(origin - rec.true_annulus_origin_px[i]))) * rec.mm_per_px)
            if est.extraction_valid:
                fraction_err.append(abs(est.deployment_fraction - rec.true_deployment_fraction[i]))
            if est.valid:
                valid += 1
                true_depth = (
                    rec.true_tip_depth_mm[i]
                    if est.depth_source == DepthSource.TIP
                    else rec.true_stent_depth_mm[i]
                )
                gross += abs(est.depth_mm - true_depth) > GROSS_ERROR_MM
    jitter, jitter_raw, jitter_trk = _jitter_reduction(still_records)
    jitter_beating, _, _ = _jitter_reduction(records)
    all_tip = tip_err[AnnulusSource.CONTRAST] + tip_err[AnnulusSource.PIGTAIL_BOUND]

    def lag_frames(which: str) -> float | None:
        ev, vv = lag[which]
        return -ev / vv * fps if vv > 0 else None

    return {
        "jitter_reduction": jitter,
        "jitter_px_raw": jitter_raw,
        "jitter_px_tracked": jitter_trk,
        "jitter_reduction_beating": jitter_beating,
        "lag_frames": lag_frames("tracked"),
        "lag_frames_raw": lag_frames("raw"),
        "keypoint_error_px_raw_mean": _mean(kp_err_raw),
        "keypoint_error_px_tracked_mean": _mean(kp_err_trk),
        "tip_depth_error_mm_mean": _mean(all_tip),
        "tip_depth_error_mm_p95": _p95(all_tip),
        "tip_depth_error_mm_mean_contrast": _mean(tip_err[AnnulusSource.CONTRAST]),
        "tip_depth_error_mm_mean_pigtail_bound": _mean(tip_err[AnnulusSource.PIGTAIL_BOUND]),
        "tip_depth_error_mm_p95_pigtail_bound": _p95(tip_err[AnnulusSource.PIGTAIL_BOUND]),
        "tip_depth_frames_contrast": len(tip_err[AnnulusSource.CONTRAST]),
        "tip_depth_frames_pigtail_bound": len(tip_err[AnnulusSource.PIGTAIL_BOUND]),
        "tip_depth_valid_fraction": tip_valid / tip_frames if tip_frames else None,
        "annulus_bound_error_mm_mean": _mean(bound_err),
        "stent_depth_error_mm_mean": _mean(stent_err),
        "deployment_fraction_error_mean": _mean(fraction_err),
        "guidance_valid_fraction": valid / frames if frames else None,
        "valid_gross_error_frames": gross,
        "frames": frames,
    }


def goals_met(summary: dict[str, object]) -> dict[str, bool]:
    """Whether each goal of :data:`GOALS` is met by ``summary``."""
    met = {}
    for key, (op, bound) in GOALS.items():
        value = summary.get(key)
        met[key] = value is not None and (value >= bound if op == ">=" else value <= bound)
    return met


def _fmt(value: object) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _pick_model(path: Path | None) -> Path | None:
    if path is not None:
        if not path.exists():
            raise FileNotFoundError(f"model {path} does not exist")
        return path
    found = sorted(MODELS_DIR.glob("*.onnx"))
    return found[0] if found else None


def main(argv: list[str] | None = None) -> int:
    from tavi_perception.sim.ct.simulator import add_renderer_argument
    from tavi_perception.sim.dataset import TEST_SPLIT, case_seed

    parser = argparse.ArgumentParser(
        prog="tavi-perception eval-tracking",
        description="Tracker + geometry on simulated procedures against the simulator's true geometry.",
    )
    parser.add_argument("--cases", type=int, default=6, help="simulated cases (default 6)")
    parser.add_argument(
        "--seed",
        type=int,
        default=TEST_SPLIT["seed"],
        help="dataset seed of the cases (default: the test split)",
    )
    parser.add_argument("--fps", type=float, default=15.0, help="frame rate (default 15)")
    parser.add_argument("--duration-s", type=float, default=None, help="cut each case after this [s]")
    parser.add_argument(
        "--drop-rate", type=float, default=0.03, help="share of dropped frames (default 0.03)"
    )
    parser.add_argument(
        "--source",
        choices=("auto", "truth-noise", "model"),
        default="auto",
        help="detections: model when a model is given or models/*.onnx exists (auto), else truth-noise",
    )
    parser.add_argument(
        "--model", type=Path, default=None, help="ONNX model or checkpoint for --source model"
    )
    parser.add_argument("--noise-px", type=float, default=2.0, help="truth-noise: Gaussian 1-sigma [px]")
    parser.add_argument("--miss-rate", type=float, default=0.05, help="truth-noise: share of misses")
    parser.add_argument("--outlier-rate", type=float, default=0.02, help="truth-noise: share of outliers")
    add_renderer_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON only")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON to this file")
    args = parser.parse_args(argv)
    if args.cases < 1 or args.fps <= 0 or not 0.0 <= args.drop_rate < 1.0:
        parser.error("--cases must be >= 1, --fps > 0 and --drop-rate within [0, 1)")
    if args.duration_s is not None and args.duration_s <= 0:
        parser.error("--duration-s must be > 0")

    noise = DetectorNoise(args.noise_px, args.miss_rate, args.outlier_rate)
    engine, source, description = None, "truth-noise", noise.describe()
    if args.source != "truth-noise":
        try:
            model = _pick_model(args.model)
        except FileNotFoundError as exc:
            parser.error(str(exc))
        if model is None and args.source == "model":
            parser.error(f"--source model needs --model or an .onnx file in {MODELS_DIR}")
        if model is not None:
            from tavi_perception.inference import create_engine

            engine = create_engine(model)
            digest = hashlib.sha256(model.read_bytes()).hexdigest()[:16]
            source, description = "model", f"model {model} sha256 {digest}... ({type(engine).__name__})"
    if engine is None and args.source == "auto" and not args.json:
        print("no trained model found: using ground truth + simulated detector noise", file=sys.stderr)

    from tqdm import tqdm

    tracker_params = TrackerParams()
    runs: dict[bool, list[CaseRecord]] = {False: [], True: []}
    seeds = [case_seed(args.seed, i) for i in range(args.cases)]
    for seed in tqdm(seeds, desc="cases", disable=args.json, file=sys.stderr):
        for still in (False, True):
            record = run_case(
                seed,
                fps=args.fps,
                duration_s=args.duration_s,
                noise=noise,
                drop_rate=args.drop_rate,
                tracker_params=tracker_params,
                engine=engine,
                still=still,
                renderer=args.renderer,
            )
            runs[still].append(record)
    summary: dict[str, object] = {
        "source": source,
        "source_description": description,
        **summarise(runs[False], runs[True]),
    }
    summary["settings"] = {
        "cases": args.cases,
        "dataset_seed": args.seed,
        "case_seeds": seeds,
        "renderer": args.renderer,
        "fps": args.fps,
        "duration_s": args.duration_s,
        "drop_rate": args.drop_rate,
        "tracker": {k: v for k, v in asdict(tracker_params).items() if k != "consistency_sets"},
    }
    summary["goals_met"] = goals_met(summary)
    text = json.dumps(summary, indent=2)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    if args.json:
        print(text)
    else:
        print(f"source: {source} — {description}")
        print(f"frames: {summary['frames']} from {args.cases} case(s) at {args.fps:g} fps")
        for key, value in summary.items():
            if key not in {"source", "source_description", "settings", "goals_met", "frames"}:
                print(f"  {key:<40} {_fmt(value)}")
        print("goals:")
        for key, ok in summary["goals_met"].items():
            op, bound = GOALS[key]
            print(f"  {key:<28} {_fmt(summary[key]):>10}   goal {op} {bound:<5} {'met' if ok else 'NOT met'}")
    return 0
