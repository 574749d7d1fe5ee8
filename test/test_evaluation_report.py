"""Run summary definitions on constructed rows, and the report files written from them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tavi_perception.evaluation.report import (
    GuidanceRow,
    KeypointRow,
    plot_depth,
    plot_keypoints,
    plot_latency,
    summarize,
    write_gif,
    write_report,
)


def _row(
    i: int, tip_mm: float, *, valid: bool = True, state: int = 0, reason: str = "", latency: float = 5.0
):
    return GuidanceRow(
        stamp_ns=i * 66_666_667,
        valid=valid,
        tracking_state=state,
        invalid_reason=reason,
        catheter_valid=valid,
        tip_depth_mm=tip_mm,
        depth_mm=tip_mm,
        depth_source=1,
        stent_valid=False,
        stent_mean_depth_mm=math.nan,
        deployment_fraction=0.0,
        target_depth_mm=4.0,
        depth_tolerance_mm=1.0,
        latency_ms=latency,
    )


def _run() -> tuple[list[GuidanceRow], list[GuidanceRow]]:
    truth = [_row(i, float(i)) for i in range(10)]
    perceived = [_row(i, i + 0.5, latency=float(i)) for i in range(6)]  # frames 0-5, error 0.5 mm
    perceived.append(_row(6, math.nan, valid=False, state=2, reason="annulus LOST"))
    perceived.append(_row(7, math.nan, valid=False, state=2, reason="stale frame: 300 ms old"))
    return perceived, truth  # frames 8, 9: no guidance at all


def test_summary_counts_frames_drops_and_fractions() -> None:
    summary = summarize(*_run())
    assert summary["frames"] == 10
    assert summary["processed"] == 7  # the stale one is dropped, not processed
    assert summary["startup_frames"] == 0
    assert summary["dropped"] == 3  # 7 (stale), 8, 9
    assert summary["tracking_ok_fraction"] == pytest.approx(6 / 7)
    assert summary["valid_fraction"] == pytest.approx(6 / 7)


def test_summary_depth_error_uses_only_frames_with_a_valid_catheter_block() -> None:
    summary = summarize(*_run())
    assert summary["depth_error_mm_mean"] == pytest.approx(0.5)
    assert summary["depth_error_frames"] == 6
    assert summary["latency_ms_p50"] == pytest.approx(np.percentile([0, 1, 2, 3, 4, 5, 5], 50))


def test_frames_before_the_first_answer_count_as_startup_not_as_drops() -> None:
    perceived, truth = _run()
    summary = summarize(perceived[2:], truth)  # frames 0 and 1 published before perception listened
    assert summary["startup_frames"] == 2
    assert summary["dropped"] == 3


def test_summary_of_a_run_without_guidance_has_no_fractions() -> None:
    summary = summarize([], [_row(0, 1.0)])
    assert summary["startup_frames"] == 1 and summary["dropped"] == 0
    assert summary["tracking_ok_fraction"] is None and summary["depth_error_mm_mean"] is None


def test_report_writes_table_plots_gif_and_json(tmp_path: Path) -> None:
    perceived, truth = _run()
    keypoints = [
        KeypointRow(r.stamp_ns, np.full((11, 2), 10.0 + i), np.ones(11, bool)) for i, r in enumerate(truth)
    ]
    plot_depth(perceived, truth, tmp_path / "depth.png")
    plot_keypoints(keypoints[:6], keypoints, tmp_path / "keypoints.png")
    plot_latency(perceived, tmp_path / "latency.png")
    write_gif(
        [np.full((64, 64, 3), v, np.uint8) for v in (0, 128, 255)], tmp_path / "overlay.gif", span_s=0.2
    )
    files = {
        "depth": "depth.png",
        "keypoints": "keypoints.png",
        "latency": "latency.png",
        "gif": "overlay.gif",
    }
    report = write_report(tmp_path, summarize(perceived, truth), {"name": "unit"}, files)
    text = report.read_text()
    assert "| tip-depth error vs truth, mean | 0.50 mm |" in text
    for name in files.values():
        assert (tmp_path / name).stat().st_size > 0
        assert f"({name})" in text
    assert json.loads((tmp_path / "summary.json").read_text())["frames"] == 10
