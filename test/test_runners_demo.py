"""`tavi-perception demo`, shortened: three node processes over DDS, a report folder and a JSON last line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ros_graph import run_cli

pytestmark = [pytest.mark.ros, pytest.mark.slow]

REQUIRED = (
    "frames",
    "tracking_ok_fraction",
    "depth_error_mm_mean",
    "latency_ms_p50",
    "latency_ms_p99",
    "dropped",
)


def test_demo_runs_the_loop_and_writes_the_report(tmp_path: Path) -> None:
    args = ["--name", "short", "--runs-dir", str(tmp_path), "--max-duration", "6", "--image-size", "256"]
    result = run_cli("demo", *args, "--json", "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(REQUIRED) <= summary.keys()
    assert summary["frames"] > 0 and summary["processed"] > 0
    run = tmp_path / "short"
    report = (run / "report.md").read_text()
    assert "| frames published by the simulator |" in report
    for name in ("depth.png", "keypoints.png", "latency.png", "overlay.gif", "summary.json"):
        assert (run / name).stat().st_size > 0, name
        assert name == "summary.json" or f"({name})" in report
    assert {p.name for p in (run / "logs").iterdir()} == {
        "perception_node.log",
        "controller_node.log",
        "simulator_node.log",
    }
