"""Metrics, plots and the markdown report of a closed-loop run (no ROS: rows in, files out).

Rows are what the loop recorder kept of each message, matched across topics by header stamp:
the perception guidance, the simulator's ground-truth guidance (same fields, from the truth) and
the keypoints (perceived and true).

Definitions of the summary:

- ``frames``: frames the simulator published (ground-truth messages received);
- ``processed``: of those, frames the perception node processed (guidance received, not dropped as
  stale); guidance for frames whose truth the recorder missed (before it was subscribed) is not counted;
- ``startup_frames``: frames published before the first one perception answered (the simulator starts
  publishing while DDS discovery still matches it with the perception node);
- ``dropped``: frames published after that which were never processed (no guidance, or dropped as stale);
- ``tracking_ok_fraction``: processed frames with ``tracking_state == TRACKING_OK``;
- ``valid_fraction``: processed frames whose guidance is valid (the controller may act);
- ``depth_error_mm_mean`` / ``_p95``: |perceived − true| catheter-tip depth over frames whose catheter
  block is valid; ``guidance_depth_error_mm_mean``: the same for the controlled depth (tip before
  deployment, stent after) over valid guidance;
- ``latency_ms_p50`` / ``_p99``: image header stamp to guidance publication, as the node measured it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tavi_perception.guidance import DepthSource, GuidanceEstimate, TrackingState
from tavi_perception.keypoints import KEYPOINT_NAMES, Kp

if TYPE_CHECKING:
    from matplotlib.axes import Axes

DEPTH_SOURCE_STENT = (
    DepthSource.STENT
)  # the truth reports the stent depth once the capsule retraction started
STALE_PREFIX = "stale frame"


@dataclass(kw_only=True)
class GuidanceRow(GuidanceEstimate):
    """One tavi_msgs/Guidance as the recorder kept it: the contract, its header stamp and latency."""

    stamp_ns: int  # header stamp [ns]
    latency_ms: float = math.nan  # [ms] image stamp to publication, as the node measured it


@dataclass(frozen=True)
class KeypointRow:
    """One frame of keypoints: positions (11, 2) [px] and whether each is usable (tracked / visible)."""

    stamp_ns: int
    xy_px: np.ndarray
    present: np.ndarray


@dataclass(frozen=True)
class CommandRow:
    """One manipulator command."""

    stamp_ns: int  # of the guidance it answers (0 when none)
    advance_speed_mm_s: float
    retraction_speed_mm_s: float
    steer_rate_deg_s: float
    hold: bool
    reason: str


def _errors(
    perceived: Sequence[GuidanceRow], truth: dict[int, GuidanceRow], field: str, gate: str
) -> np.ndarray:
    """|perceived - true| of ``field`` over perceived rows where ``gate`` is true and truth exists."""
    out = [
        abs(getattr(p, field) - getattr(truth[p.stamp_ns], field))
        for p in perceived
        if getattr(p, gate) and p.stamp_ns in truth and math.isfinite(getattr(p, field))
    ]
    return np.asarray(out, dtype=float)


def _stat(values: np.ndarray, q: float | None = None) -> float | None:
    if values.size == 0:
        return None
    return float(np.mean(values) if q is None else np.percentile(values, q))


def summarize(perceived: Sequence[GuidanceRow], truth: Sequence[GuidanceRow]) -> dict:
    """The run summary (see the module docstring for each key). Values are None when undefined."""
    truth_by_stamp = {t.stamp_ns: t for t in truth}
    processed = [
        p for p in perceived if p.stamp_ns in truth_by_stamp and not p.invalid_reason.startswith(STALE_PREFIX)
    ]
    processed_stamps = {p.stamp_ns for p in processed}
    frames = len(truth_by_stamp)
    first_answered = min((p.stamp_ns for p in perceived if p.stamp_ns in truth_by_stamp), default=None)
    startup = [s for s in truth_by_stamp if first_answered is None or s < first_answered]
    tip_errors = _errors(processed, truth_by_stamp, "tip_depth_mm", "catheter_valid")
    depth_errors = _errors(processed, truth_by_stamp, "depth_mm", "valid")
    latencies = np.asarray([p.latency_ms for p in processed], dtype=float)
    n = len(processed)
    return {
        "frames": frames,
        "processed": n,
        "startup_frames": len(startup),
        "dropped": len(set(truth_by_stamp) - processed_stamps - set(startup)),
        "tracking_ok_fraction": sum(p.tracking_state == TrackingState.OK for p in processed) / n
        if n
        else None,
        "valid_fraction": sum(p.valid for p in processed) / n if n else None,
        "depth_error_mm_mean": _stat(tip_errors),
        "depth_error_mm_p95": _stat(tip_errors, 95),
        "depth_error_frames": int(tip_errors.size),
        "guidance_depth_error_mm_mean": _stat(depth_errors),
        "latency_ms_p50": _stat(latencies, 50),
        "latency_ms_p99": _stat(latencies, 99),
    }


# --------------------------------------------------------------------------- plots


def _if(condition: bool, value: float) -> float:
    return value if condition else math.nan


def _time_axis(stamps_ns: Sequence[int], t0_ns: int) -> np.ndarray:
    return (np.asarray(stamps_ns, dtype=np.int64) - t0_ns) * 1e-9


def finish_depth_axes(
    ax: Axes, t_s: np.ndarray, invalid: np.ndarray, invalid_label: str, t_label: str
) -> None:
    """Finish a plot of depth over time: the frames whose guidance was ``invalid`` shaded over the plotted
    range (``invalid_label``), depth growing downwards (into the ventricle), axis labels, grid, legend."""
    if invalid.any():
        ymin, ymax = ax.get_ylim()
        ax.fill_between(
            t_s, ymin, ymax, where=invalid, color="tab:orange", alpha=0.15, step="mid", label=invalid_label
        )
        ax.set_ylim(ymin, ymax)
    ax.set_xlabel(t_label)
    ax.set_ylabel("depth below the annulus [mm]")
    ax.invert_yaxis()
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)


def plot_depth(perceived: Sequence[GuidanceRow], truth: Sequence[GuidanceRow], path: Path) -> None:
    """Tip and stent depth over time, perceived vs true, with the target band and the holds shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = min(r.stamp_ns for r in [*truth, *perceived])
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    ref = perceived[0] if perceived else truth[0]
    target, tol = ref.target_depth_mm, ref.depth_tolerance_mm
    if math.isfinite(target):
        ax.axhspan(target - tol, target + tol, color="tab:green", alpha=0.15, label="target band")
        ax.axhline(target, color="tab:green", lw=0.8)
    tt = _time_axis([r.stamp_ns for r in truth], t0)
    tp = _time_axis([r.stamp_ns for r in perceived], t0)
    truth_stent = [_if(r.depth_source == DEPTH_SOURCE_STENT, r.stent_mean_depth_mm) for r in truth]
    seen_tip = [_if(r.catheter_valid, r.tip_depth_mm) for r in perceived]
    seen_stent = [_if(r.stent_valid, r.stent_mean_depth_mm) for r in perceived]
    series = [
        (tt, [r.tip_depth_mm for r in truth], {"ls": "--", "color": "k", "lw": 1.0}, "tip depth (truth)"),
        (tt, truth_stent, {"ls": "--", "color": "tab:purple", "lw": 1.0}, "stent depth (truth)"),
        (tp, seen_tip, {"color": "tab:blue", "lw": 1.4}, "tip depth (perceived)"),
        (tp, seen_stent, {"color": "tab:red", "lw": 1.4}, "stent depth (perceived)"),
    ]
    for t, values, style, label in series:
        ax.plot(t, values, label=label, **style)
    invalid = np.asarray([not r.valid for r in perceived])
    finish_depth_axes(ax, tp, invalid, "hold (invalid)", "time [s]")
    ax.set_title("Implantation depth: perceived vs truth")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_keypoints(perceived: Sequence[KeypointRow], truth: Sequence[KeypointRow], path: Path) -> None:
    """x and y of each keypoint over time: tracked (solid, unless lost) vs truth (dashed, where visible)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = min(r.stamp_ns for r in [*truth, *perceived])
    fig, axes = plt.subplots(2, 1, figsize=(10, 7), dpi=110, sharex=True)
    colours = plt.get_cmap("tab20").colors
    tp = _time_axis([r.stamp_ns for r in perceived], t0)
    tt = _time_axis([r.stamp_ns for r in truth], t0)
    for k in Kp:
        colour = colours[int(k) % len(colours)]
        for axis, ax in enumerate(axes):
            if truth:
                true = np.asarray([r.xy_px[k, axis] if r.present[k] else np.nan for r in truth])
                ax.plot(tt, true, "--", color=colour, lw=0.8)
            if perceived:
                seen = np.asarray([r.xy_px[k, axis] if r.present[k] else np.nan for r in perceived])
                ax.plot(tp, seen, color=colour, lw=1.2, label=KEYPOINT_NAMES[k] if axis == 0 else None)
    axes[0].set_ylabel("x [px]")
    axes[1].set_ylabel("y [px]")
    axes[1].set_xlabel("time [s]")
    axes[0].legend(ncol=6, fontsize=7, loc="upper right")
    axes[0].set_title("Keypoint trajectories: tracked (solid) vs truth (dashed)")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_latency(perceived: Sequence[GuidanceRow], path: Path) -> None:
    """Histogram of image-stamp-to-guidance latency with p50/p99 marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lat = np.asarray([p.latency_ms for p in perceived if not p.invalid_reason.startswith(STALE_PREFIX)])
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    if lat.size:
        ax.hist(lat, bins=min(60, max(10, lat.size // 10)), color="tab:blue", alpha=0.8)
        for q, style in ((50, "-"), (99, "--")):
            value = float(np.percentile(lat, q))
            ax.axvline(value, color="k", ls=style, lw=1, label=f"p{q} = {value:.1f} ms")
        ax.legend()
    ax.set_xlabel("image stamp -> guidance published [ms]")
    ax.set_ylabel("frames")
    ax.set_title("Perception latency")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_gif(
    frames_bgr: Sequence[np.ndarray],
    path: Path,
    span_s: float,
    max_frames: int = 120,
    max_side_px: int = 256,
    colours: int = 64,
) -> None:
    """An animated GIF of overlay frames (BGR uint8) playing ``span_s`` seconds in real time.

    At most ``max_frames`` evenly spaced frames, downscaled to ``max_side_px`` with ``colours`` palette
    entries, keep the file a few MB (noisy fluoroscopy compresses poorly).
    """
    import cv2
    from PIL import Image as PILImage

    if not frames_bgr:
        return
    picks = np.unique(
        np.linspace(0, len(frames_bgr) - 1, min(max_frames, len(frames_bgr))).round().astype(int)
    )
    images = []
    for index in picks:
        frame = frames_bgr[index]
        h, w = frame.shape[:2]
        scale = min(1.0, max_side_px / max(h, w))
        small = cv2.resize(frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        images.append(PILImage.fromarray(cv2.cvtColor(small, cv2.COLOR_BGR2RGB)).quantize(colors=colours))
    duration_ms = max(20, round(1000 * span_s / len(images)))
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration_ms, loop=0, optimize=True)


# --------------------------------------------------------------------------- report


def _fmt(value: object, unit: str = "", digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def write_report(out_dir: Path, summary: dict, context: dict, files: dict[str, str]) -> Path:
    """Write ``report.md`` (table, plots, GIF) and ``summary.json`` into ``out_dir``; returns the report."""
    (out_dir / "summary.json").write_text(json.dumps({**summary, **context}, indent=2) + "\n")
    rows = [
        ("frames published by the simulator", _fmt(summary["frames"])),
        ("frames processed by perception", _fmt(summary["processed"])),
        ("frames before perception's first answer (discovery)", _fmt(summary["startup_frames"])),
        ("dropped after that (never processed)", _fmt(summary["dropped"])),
        ("tracking OK fraction", _fmt(summary["tracking_ok_fraction"], digits=3)),
        ("valid guidance fraction", _fmt(summary["valid_fraction"], digits=3)),
        ("tip-depth error vs truth, mean", _fmt(summary["depth_error_mm_mean"], " mm")),
        ("tip-depth error vs truth, p95", _fmt(summary["depth_error_mm_p95"], " mm")),
        (
            "controlled-depth error vs truth, mean (valid guidance)",
            _fmt(summary["guidance_depth_error_mm_mean"], " mm"),
        ),
        ("latency p50 (stamp -> guidance)", _fmt(summary["latency_ms_p50"], " ms")),
        ("latency p99 (stamp -> guidance)", _fmt(summary["latency_ms_p99"], " ms")),
    ]
    rows += [(k.replace("_", " "), _fmt(v)) for k, v in context.get("outcome", {}).items()]
    rows += [
        (f"perception node: {k.replace('_', ' ')}", v) for k, v in context.get("perception_node", {}).items()
    ]
    lines = [
        f"# Closed-loop demo: {context.get('name', out_dir.name)}",
        "",
        "Simulator -> perception -> reference controller as separate ROS 2 node processes over DDS.",
        "",
        f"- command: `{context.get('command', '')}`",
        f"- date: {context.get('date', '')}",
        f"- model: `{context.get('model_path', '')}` (SHA-256 `{context.get('model_sha256', '')}`)",
        f"- backend: {context.get('backend', '')}",
        f"- scenario: {context.get('scenario', '')}",
        "",
        "## Summary",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in rows],
        "",
        "Definitions: tip-depth error is |perceived − true| catheter-tip depth over frames whose catheter "
        "block is valid; latency is from the image header stamp to the guidance publication (the "
        "simulator stamps a frame when its acquisition starts, so this includes rendering the frame, "
        "about 5 ms at 512², and the transport; `bench/bench_e2e.py` measures the perception path alone); "
        "dropped frames are frames published after perception's first answer that it never processed.",
        "",
    ]
    titles = {
        "depth": "Depth over time",
        "keypoints": "Keypoint trajectories",
        "latency": "Latency",
        "gif": "Overlay",
    }
    for key, title in titles.items():
        if key in files:
            lines += [f"## {title}", "", f"![{title}]({files[key]})", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
