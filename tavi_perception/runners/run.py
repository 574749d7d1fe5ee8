"""``tavi-perception run INPUT``: perception over a recording (DICOM cine or series, video, image folder),
no ROS graph.

Each frame goes through :class:`~tavi_perception.core.pipeline.PerceptionPipeline` exactly as
perception_node runs it (``step`` with the recording's frame time and no receiver clock, so the stale and
future-stamp rules are off; a frame the engine cannot take is answered as undecodable), at the
recording's calibration (or ``--mm-per-px``). With ``--plan`` (``tavi-perception plan``) and the C-arm
angles (the recording's DICOM 0018,1510/1511, per frame where a series has them, or ``--carm-angles``)
every depth is corrected for the view's obliquity to the annulus plane (docs/plan.md).
Written to ``--out`` (default ``runs/run/<input name>/``):

- ``overlay.mp4``: every frame with the overlay (mp4v), at the recording's rate;
- ``frames.csv``: one row per frame: index, time, admission verdict, processing time, every Guidance field,
  and per keypoint x, y, track state and visibility;
- ``bag/``: MCAP rosbag2 of the messages perception_node would have published (``ros/bag.py`` ``OutputBag``);
- ``depth.png``, ``keypoints.png``: depth and keypoint tracks over time; ``report.md``; ``run.json``.

Summary (``--json`` prints it as one JSON object on the last line): ``frames`` read; ``processed``
(admitted: through the network); ``rejected`` (answered with invalid guidance); ``repeats`` (identical
pixels, answered with nothing); ``valid_fraction`` (valid guidance over all frames); ``mm_per_px``,
``calibrated``, ``calibration_source``; ``fps`` (the recording's); ``processing_fps``: frames per second of
reading and perception together, before any output is written (``read_ms`` and ``pipeline_ms`` are the
means per frame; ``admission_ms``, ``infer_ms``, ``track_ms``, ``geometry_ms`` the pipeline's stages, mean
per processed frame); ``total_fps`` with every output.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tavi_perception.core.carm import CArmPose
from tavi_perception.core.pipeline import (
    SHIPPED_REFINE_MODEL,
    SHIPPED_ROOT_REFINE_MODEL,
    FrameResult,
    PerceptionPipeline,
    UnprocessedFrame,
    shipped_model_path,
)
from tavi_perception.core.roi import Box, RegionOfInterest
from tavi_perception.devices import device_geometry
from tavi_perception.evaluation.report import KeypointRow, plot_keypoints
from tavi_perception.guidance import GuidanceEstimate, TrackingState
from tavi_perception.plan.annulus import read_plan
from tavi_perception.plan.obliquity import ViewCorrection
from tavi_perception.recordings import Overrides, Recording, RecordingError, open_recording
from tavi_perception.recordings.outputs import RunWriter, plot_depth
from tavi_perception.tracking import KeypointState

DEFAULT_OUT = Path("runs/run")
STAGES = (
    "admission_ms",
    "infer_ms",
    "track_ms",
    "geometry_ms",
)  # FrameResult timings, mean per processed frame


@dataclasses.dataclass
class RunOptions:
    """What ``run`` does besides perception."""

    video: bool = True  # overlay.mp4
    bag: bool = True  # bag/ (MCAP)
    bag_images: bool = False  # the input frames in the bag too
    progress: bool = True  # tqdm bar on stderr
    max_frames: int | None = None  # stop after this many frames


def run_recording(
    recording: Recording,
    pipeline: PerceptionPipeline,
    out_dir: Path,
    options: RunOptions,
    context: dict[str, object],
) -> dict[str, object]:
    """Run every frame of ``recording`` through ``pipeline`` and write the outputs; returns the summary.

    On any failure the outputs written so far are removed and the exception propagates.
    """
    info = recording.info
    limit = math.inf if options.max_frames is None else options.max_frames
    total = min(info.frame_count, limit)  # for the progress bar: a video's frame count is an estimate
    bag = None
    if options.bag:  # the only part of a run that needs ROS (message serialization)
        from tavi_perception.ros.bag import OutputBag

        bag = functools.partial(OutputBag, images=options.bag_images)
    writer = RunWriter(out_dir, info.fps, (info.width_px, info.height_px), video=options.video, bag=bag)
    counts = {"frames": 0, "processed": 0, "rejected": 0, "repeats": 0, "valid": 0, "tracking_ok": 0}
    read_s = pipeline_s = 0.0
    stage_ms = dict.fromkeys(STAGES, 0.0)
    guidance_rows: list[tuple[float, GuidanceEstimate]] = []
    keypoint_rows: list[KeypointRow] = []
    started_s = time.perf_counter()
    try:
        with tqdm(total=total, desc=Path(info.path).name, unit="frame", disable=not options.progress) as bar:
            frames = iter(recording)
            while counts["frames"] < limit:
                t0 = time.perf_counter()
                frame = next(frames, None)
                t1 = time.perf_counter()
                if frame is None:
                    break
                if "primary_angle_deg" in frame.metadata and "secondary_angle_deg" in frame.metadata:
                    angles = (frame.metadata["primary_angle_deg"], frame.metadata["secondary_angle_deg"])
                    pipeline.set_carm(CArmPose(float(angles[0]), float(angles[1])))
                try:
                    outcome: FrameResult | UnprocessedFrame = pipeline.step(frame.t_s, None, frame.image)
                except ValueError as err:  # an image the engine or the region of interest cannot take
                    outcome = pipeline.undecodable(frame.t_s, str(err))
                t2 = time.perf_counter()
                read_s += t1 - t0
                pipeline_s += t2 - t1
                processing_ms = 1e3 * (t2 - t1)
                counts["frames"] += 1
                if isinstance(outcome, FrameResult):
                    counts["processed"] += 1
                    for stage in STAGES:
                        stage_ms[stage] += getattr(outcome, stage)
                    tracked = outcome.tracked
                    present = np.asarray(tracked.state) != KeypointState.LOST
                    keypoint_rows.append(KeypointRow(round(frame.t_s * 1e9), tracked.xy_px.copy(), present))
                elif outcome.estimate is None:
                    counts["repeats"] += 1
                else:
                    counts["rejected"] += 1
                if outcome.estimate is not None:
                    counts["valid"] += int(outcome.estimate.valid)
                    counts["tracking_ok"] += int(outcome.estimate.tracking_state == TrackingState.OK)
                    guidance_rows.append((frame.t_s, outcome.estimate))
                writer.add(frame, outcome, processing_ms)
                bar.update(1)
        frames_read = counts["frames"]
        if frames_read == 0:
            raise RecordingError(f"{info.path}: no frame could be read")
        elapsed_s = time.perf_counter() - started_s
        calibration = pipeline.calibration
        summary: dict[str, object] = {
            **counts,
            "valid_fraction": counts["valid"] / frames_read,
            "tracking_ok_fraction": counts["tracking_ok"] / frames_read,
            "mm_per_px": calibration.for_width(info.width_px),
            "calibrated": calibration.calibrated,
            "calibration_source": calibration.source,
            "fps": info.fps,
            "fps_source": info.fps_source,
            "processing_fps": frames_read / max(read_s + pipeline_s, 1e-9),
            "read_ms": 1e3 * read_s / frames_read,
            "pipeline_ms": 1e3 * pipeline_s / frames_read,
            "total_fps": frames_read / max(elapsed_s, 1e-9),
            **{stage: ms / max(counts["processed"], 1) for stage, ms in stage_ms.items()},
            "admission_counts": dict(pipeline.admission.counts),
        }
        files: dict[str, str] = {}
        if guidance_rows:
            plot_depth(guidance_rows, writer.reserve("depth.png"))
            files["depth"] = "depth.png"
            if keypoint_rows:
                plot_keypoints(keypoint_rows, [], writer.reserve("keypoints.png"))
                files["keypoints"] = "keypoints.png"
        if options.video:
            files["overlay"] = "overlay.mp4"
        if writer.bag is not None:
            summary["bag_messages"] = dict(writer.bag.counts)
        record = {"summary": summary, "recording": info.as_dict(), **context}
        writer.reserve("run.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
        _write_report(writer.reserve("report.md"), record, files)
        outputs = writer.commit()
    except BaseException:
        writer.abort()
        raise
    summary["out"] = str(out_dir)
    summary["outputs"] = sorted(outputs)
    return summary


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    return "n/a" if value is None else str(value)


def _write_report(path: Path, record: dict, files: dict[str, str]) -> None:
    summary, info = record["summary"], record["recording"]
    rows = [
        ("input", f"`{info['path']}` ({info['kind']}, {info['encoding']})"),
        (
            "frames read / processed / rejected / repeats",
            f"{summary['frames']} / {summary['processed']} / {summary['rejected']} / {summary['repeats']}",
        ),
        ("valid guidance fraction (of all frames)", _fmt(summary["valid_fraction"])),
        ("tracking OK fraction (of all frames)", _fmt(summary["tracking_ok_fraction"])),
        ("size", f"{info['width_px']} x {info['height_px']} px, {info['bits_stored']} bit"),
        ("frame rate", f"{_fmt(summary['fps'])} fps ({summary['fps_source']})"),
        (
            "scale at the isocentre",
            f"{_fmt(summary['mm_per_px'])} mm/px, "
            f"{'calibrated' if summary['calibrated'] else 'UNCALIBRATED'}: {summary['calibration_source']}",
        ),
        (
            "C-arm angles (primary / secondary)",
            f"{_fmt(info['primary_angle_deg'])} / {_fmt(info['secondary_angle_deg'])} deg",
        ),
        ("device preset", _fmt(record.get("device_preset"))),
        ("model", f"`{record['model']}` ({record['backend']})"),
        ("valve refinement", f"`{record['refine_model']}`" if record.get("refine_model") else "off"),
        ("root refinement", f"`{record['root_refine_model']}`" if record.get("root_refine_model") else "off"),
        (
            "speed: reading + perception",
            f"{_fmt(summary['processing_fps'])} frames/s "
            f"(read {_fmt(summary['read_ms'])} ms, pipeline {_fmt(summary['pipeline_ms'])} ms per frame)",
        ),
        ("speed: with every output", f"{_fmt(summary['total_fps'])} frames/s"),
    ]
    lines = [
        f"# Perception run: {Path(info['path']).name}",
        "",
        "**Research software, not a medical device.** The keypoint model was trained on synthetic images "
        "only; these results say nothing about clinical accuracy.",
        "",
        f"- command: `{record['command']}`",
        f"- date: {record['date']}",
        "",
        "| what | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in rows],
        "",
    ]
    warnings = [*info["warnings"], *record.get("warnings", [])]
    if warnings:
        lines += ["## Warnings", "", *[f"- {w}" for w in warnings], ""]
    lines += [
        "Frames: `frames.csv` (one row per frame, every Guidance field and the keypoints); messages: `bag/` "
        "(MCAP, open with `ros2 bag` or Foxglove); summary: `run.json`. A recording has no truth: the "
        "plots show what perception measured, not whether it is right.",
        "",
    ]
    titles = {"depth": "Depth over time", "keypoints": "Keypoint tracks", "overlay": "Overlay video"}
    for key, title in titles.items():
        if key in files:
            image = files[key].endswith(".png")
            lines += [
                f"## {title}",
                "",
                f"![{title}]({files[key]})" if image else f"[{files[key]}]({files[key]})",
                "",
            ]
    path.write_text("\n".join(lines))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tavi-perception run", description=__doc__.split("\n\n")[0])
    parser.add_argument("input", type=Path, help="DICOM file or series folder, video file, or image folder")
    parser.add_argument("--out", type=Path, help="output folder (default runs/run/<input name>)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object last")
    parser.add_argument("--mm-per-px", type=float, help="[mm/px] scale at the isocentre (overrides the file)")
    parser.add_argument("--fps", type=float, help="[1/s] frame rate (overrides the file)")
    parser.add_argument("--model", type=Path, help="ONNX or torch model (default: the shipped model)")
    parser.add_argument(
        "--refine",
        action="store_true",
        help="read the frame edges again on a full-resolution crop of the valve (the shipped "
        "models/tavi_valve_refine.onnx)",
    )
    parser.add_argument(
        "--refine-root",
        action="store_true",
        help="read the annulus landmarks again on a full-resolution crop of the root (the shipped "
        "models/tavi_root_refine.onnx)",
    )
    parser.add_argument(
        "--device-preset", help="valve/delivery system of config/devices.yaml, e.g. evolut-r-26"
    )
    parser.add_argument(
        "--roi",
        type=int,
        nargs=4,
        metavar=("X", "Y", "W", "H"),
        help="[px] the fluoroscopy area of a screen capture (perception_node's roi_*)",
    )
    parser.add_argument(
        "--roi-auto", action="store_true", help="find the bright fluoroscopy area of a screen capture"
    )
    parser.add_argument(
        "--plan", type=Path, help="plan file of `tavi-perception plan`: correct depths for the C-arm view"
    )
    parser.add_argument(
        "--carm-angles",
        type=float,
        nargs=2,
        metavar=("PRIMARY", "SECONDARY"),
        help="[deg] C-arm angles (+ LAO, + cranial) when the recording has none (DICOM 0018,1510/1511)",
    )
    parser.add_argument(
        "--view-limit-deg",
        type=float,
        default=20.0,
        help="[deg] with --plan, guidance is invalid beyond this obliquity to the annulus plane (default 20)",
    )
    parser.add_argument("--threads", type=int, default=2, help="inference threads (default 2)")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    parser.add_argument("--no-video", action="store_true", help="no overlay.mp4")
    parser.add_argument("--no-bag", action="store_true", help="no MCAP bag")
    parser.add_argument("--bag-images", action="store_true", help="the input frames in the bag too (large)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from tavi_perception.geometry.params import GeometryParams
    from tavi_perception.inference.engines import create_engine
    from tavi_perception.inference.refinement import create_refinements

    try:
        recording = open_recording(args.input, Overrides(mm_per_px=args.mm_per_px, fps=args.fps))
        geometry, device_source, warnings = device_geometry(args.device_preset or "", GeometryParams())
        model = args.model or shipped_model_path()
        engine = create_engine(model, threads=args.threads)
        refine_model = shipped_model_path(SHIPPED_REFINE_MODEL) if args.refine else None
        root_refine_model = shipped_model_path(SHIPPED_ROOT_REFINE_MODEL) if args.refine_root else None
        refinements = create_refinements(refine_model, root_refine_model, threads=args.threads)
        roi = RegionOfInterest(Box(*args.roi) if args.roi else None, auto=args.roi_auto)
        view = ViewCorrection(read_plan(args.plan) if args.plan else None, args.view_limit_deg)
        pipeline = PerceptionPipeline(
            engine,
            recording.info.calibration(),
            geometry_params=geometry,
            roi=roi,
            view=view,
            refinements=refinements,
        )
        info = recording.info
        angles = args.carm_angles or (info.primary_angle_deg, info.secondary_angle_deg)
        if angles[0] is not None and angles[1] is not None:
            pipeline.set_carm(CArmPose(float(angles[0]), float(angles[1])))
        out_dir = args.out or DEFAULT_OUT / args.input.name.split(".")[0]
        for warning in [*recording.info.warnings, *warnings]:
            print(f"run: warning: {warning}", file=sys.stderr)
        context = {
            "command": "tavi-perception run " + shlex.join(argv),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "model": str(model),
            "refine_model": None if refine_model is None else str(refine_model),
            "root_refine_model": None if root_refine_model is None else str(root_refine_model),
            "backend": engine.backend,
            "device_preset": args.device_preset or None,
            "device_values": device_source,
            "geometry": dataclasses.asdict(geometry),
            "roi": list(args.roi) if args.roi else ("auto" if args.roi_auto else None),
            "warnings": warnings,
        }
        options = RunOptions(
            video=not args.no_video,
            bag=not args.no_bag,
            bag_images=args.bag_images,
            progress=not args.no_progress,
            max_frames=args.max_frames,
        )
        summary = run_recording(recording, pipeline, out_dir, options, context)
    except (RecordingError, FileNotFoundError, ValueError, OSError) as err:
        print(f"run: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("run: interrupted; nothing written", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"{summary['frames']} frames, {summary['processed']} processed, "
            f"valid {summary['valid_fraction']:.3f}, {summary['processing_fps']:.0f} frames/s; "
            f"written to {out_dir}"
        )
    return 0
