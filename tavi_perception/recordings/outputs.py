"""The files of an offline run (``tavi-perception run``): overlay MP4, per-frame CSV, MCAP rosbag2 of the
output messages, plots and report.md.

Nothing is left half-written as if complete: every file is written into the staging folder
``OUT/.partial/`` and moved into ``OUT`` only by :meth:`RunWriter.commit`; :meth:`RunWriter.abort` removes
the staging folder (a failed run leaves the previous run's files, if any, untouched).

The bag holds what perception_node would have published for the same frames, built by the node's own
conversions (``ros/messages.py``): ``/guidance`` for every frame answered (a rejected frame's invalid
guidance included, a repeated frame answered with nothing), ``/keypoints``, ``/annulus_pose`` and
``/catheter_tip_pose`` while their blocks are valid, ``/tf`` (``fluoro_mm`` -> ``annulus``), and on request
the input frames (``/fluoro/image``, mono8/mono16) for viewing the outputs over them. Header stamps
(and bag times) are the recording's frame times, seconds from its first frame; ``latency_ms`` is the
pipeline's processing time of the frame. Type definitions and hashes come from the typestore of
``ros/bagtypes.py``, so ``ros2 bag`` and Foxglove read the file.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from tavi_perception.core.overlay import OverlayRenderer, to_bgr8
from tavi_perception.core.pipeline import FrameResult, UnprocessedFrame
from tavi_perception.evaluation.report import finish_depth_axes
from tavi_perception.guidance import GuidanceEstimate
from tavi_perception.keypoints import KEYPOINT_NAMES
from tavi_perception.recordings.base import Frame

GUIDANCE_FIELDS = tuple(f.name for f in dataclasses.fields(GuidanceEstimate))
KEYPOINT_COLUMNS = tuple(
    f"{name}_{what}" for name in KEYPOINT_NAMES for what in ("x_px", "y_px", "state", "visibility")
)
CSV_COLUMNS = ("frame", "t_s", "verdict", "processing_ms", *GUIDANCE_FIELDS, *KEYPOINT_COLUMNS)
_RED = (60, 60, 255)
STAGING = ".partial"  # staging folder inside the output folder


def _cell(value: object) -> object:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.9g}"
    if isinstance(value, bool):
        return int(value)
    return value


def hold_overlay(image: np.ndarray, reason: str) -> np.ndarray:
    """The overlay of a frame that was not measured: the frame and the reason in the status line."""
    canvas = to_bgr8(image)
    w = canvas.shape[1]
    scale = w / 512
    cv2.rectangle(canvas, (0, 0), (w, round(30 * scale)), (0, 0, 0), -1)
    origin = (6, round(21 * scale))
    cv2.putText(
        canvas, f"HOLD: {reason}", origin, cv2.FONT_HERSHEY_SIMPLEX, 0.55 * scale, _RED, 1, cv2.LINE_AA
    )
    return canvas


class FrameSink(Protocol):
    """Another output of a run, fed every frame's outcome (``runners/run.py`` passes the MCAP bag of
    :class:`tavi_perception.ros.bag.OutputBag`: the ROS side stays in ``ros/``)."""

    def add(self, frame: Frame, outcome: FrameResult | UnprocessedFrame, processing_ms: float) -> None: ...

    def close(self) -> None: ...


class RunWriter:
    """Writes the files of one run into ``out_dir`` (module docstring)."""

    def __init__(
        self,
        out_dir: Path,
        fps: float,
        size: tuple[int, int],
        *,
        video: bool = True,
        bag: Callable[[Path], FrameSink] | None = None,
    ) -> None:
        """``bag`` opens the bag output at the staging path it is given (None: no bag)."""
        self.out_dir = out_dir
        self._created = not out_dir.exists()
        self._staging = out_dir / STAGING
        _remove(self._staging)  # left by a run that was killed
        self._staging.mkdir(parents=True)
        self._names: list[str] = []
        self._csv_path = self.reserve("frames.csv")
        self._csv_file = self._csv_path.open("w", newline="")
        self._csv = csv.writer(self._csv_file)
        self._csv.writerow(CSV_COLUMNS)
        self._video = None
        self._renderer = OverlayRenderer()
        if video:
            path = self.reserve("overlay.mp4")
            self._video = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
            if not self._video.isOpened():
                raise OSError(f"OpenCV cannot write an mp4v video at {path}")
        self.bag = bag(self.reserve("bag")) if bag is not None else None

    def add(self, frame: Frame, outcome: FrameResult | UnprocessedFrame, processing_ms: float) -> None:
        """Record one frame's outcome in every output."""
        verdict = outcome.admission.verdict.value
        estimate = outcome.estimate
        guidance = (
            [_cell(getattr(estimate, n)) for n in GUIDANCE_FIELDS]
            if estimate
            else [""] * len(GUIDANCE_FIELDS)
        )
        keypoints: list[object] = [""] * len(KEYPOINT_COLUMNS)
        if isinstance(outcome, FrameResult):
            tracked, visibility = outcome.tracked, outcome.detections.visibility
            keypoints = [
                _cell(value)
                for i in range(len(KEYPOINT_NAMES))
                for value in (
                    float(tracked.xy_px[i, 0]),
                    float(tracked.xy_px[i, 1]),
                    int(tracked.state[i]),
                    float(visibility[i]),
                )
            ]
        self._csv.writerow(
            [frame.index, f"{frame.t_s:.6f}", verdict, f"{processing_ms:.3f}", *guidance, *keypoints]
        )
        if self._video is not None:
            if isinstance(outcome, FrameResult):
                canvas = self._renderer.render(frame.image, outcome.tracked, outcome.estimate)
            else:
                reason = estimate.invalid_reason if estimate else "repeated frame (same pixels as the last)"
                canvas = hold_overlay(frame.image, reason)
            self._video.write(canvas)
        if self.bag is not None:
            self.bag.add(frame, outcome, processing_ms)

    def reserve(self, name: str) -> Path:
        """The staging path of output ``name`` (a file or a folder), moved into place by :meth:`commit`."""
        self._names.append(name)
        return self._staging / name

    def _close(self) -> None:
        self._csv_file.close()
        if self._video is not None:
            self._video.release()
        if self.bag is not None:
            self.bag.close()

    def commit(self) -> dict[str, Path]:
        """Close every output and move it into place; returns the final paths by file name."""
        self._close()
        out = {}
        for name in self._names:
            staged, final = self._staging / name, self.out_dir / name
            if staged.exists():
                _remove(final)
                os.replace(staged, final)
                out[name] = final
        _remove(self._staging)
        return out

    def abort(self) -> None:
        """Close and remove every temporary output (the run failed)."""
        try:
            self._close()
        finally:
            _remove(self._staging)
            if self._created and not any(self.out_dir.iterdir()):
                self.out_dir.rmdir()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def plot_depth(rows: list[tuple[float, GuidanceEstimate]], path: Path) -> None:
    """Depth over time as perceived (no truth for a recording): the tip and stent depths of the frames
    whose block is valid, the target band, and the frames whose guidance was invalid shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.asarray([t_s for t_s, _ in rows])
    tip = np.asarray([e.tip_depth_mm if e.catheter_valid else np.nan for _, e in rows])
    stent = np.asarray([e.stent_mean_depth_mm if e.stent_valid else np.nan for _, e in rows])
    invalid = np.asarray([not e.valid for _, e in rows])
    first = rows[0][1]
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    if math.isfinite(first.target_depth_mm):
        low, high = (
            first.target_depth_mm - first.depth_tolerance_mm,
            first.target_depth_mm + first.depth_tolerance_mm,
        )
        ax.axhspan(low, high, color="tab:green", alpha=0.15, label="target band")
    ax.plot(t, tip, color="tab:blue", lw=1.4, label="tip depth (catheter block valid)")
    ax.plot(t, stent, color="tab:red", lw=1.4, label="stent mean depth (stent block valid)")
    finish_depth_axes(ax, t, invalid, "invalid", "recording time [s]")
    ax.set_title(
        f"Implantation depth as perceived ({int((~invalid).sum())} of {len(rows)} answered frames valid)"
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
