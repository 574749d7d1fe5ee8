"""`tavi-perception loop` over the real ROS 2 graph: injected faults never make the manipulator move."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ros_graph import run_cli

from tavi_perception.evaluation.trials import DROPPED_REASON, FROZEN_REASON, TrialSpec
from tavi_perception.runners.loop import _parser, run_trial

pytestmark = [pytest.mark.ros, pytest.mark.slow]
NS = 1_000_000_000


def test_a_trial_with_every_fault_holds_on_invalid_guidance_and_recovers(tmp_path: Path) -> None:
    # one trial carrying all injections: no contrast for 3 s, 10 % drops, a 1 s freeze at 5 s and a
    # perception restart at 8 s (1 s down)
    spec = TrialSpec(
        index=0,
        case_seed=0,
        fault="frozen",
        start_tip_mm=-15.0,
        contrast_first_s=3.0,
        contrast_interval_s=6.0,
        contrast_plateau_s=2.0,
        drop_probability=0.1,
        freeze_start_s=5.0,
        freeze_duration_s=1.0,
        restart_at_s=8.0,
        restart_down_s=1.0,
    )
    args = _parser().parse_args(["--max-duration", "14"])
    result, recorder = run_trial(spec, args, tmp_path / "logs")

    assert result.moves_while_invalid == 0
    first_ns = min(t.stamp_ns for t in recorder.truth)
    first_valid_ns = min(p.stamp_ns for p in recorder.perceived if p.valid)
    assert first_valid_ns - first_ns > 2.5 * NS  # nothing valid before the first aortogram at 3 s
    moving = [c for c in recorder.commands if not c.hold]
    assert moving, "the controller never moved: the trial shows nothing"
    assert all(c.stamp_ns >= first_valid_ns for c in moving)

    frozen = {t.stamp_ns for t in recorder.truth if t.invalid_reason == FROZEN_REASON}
    answered_frozen = [p for p in recorder.perceived if p.stamp_ns in frozen]
    assert len(frozen) >= 10 and answered_frozen
    assert all(not p.valid and p.invalid_reason.startswith("frozen image") for p in answered_frozen)
    assert (
        result.frames_dropped_injected == sum(t.invalid_reason == DROPPED_REASON for t in recorder.truth) > 0
    )

    assert (tmp_path / "logs" / "perception_node.restarted.log").exists()
    after_restart = [p for p in recorder.perceived if p.stamp_ns - first_ns > 9.0 * NS]
    assert after_restart, "no guidance after the perception node restarted"


def test_loop_command_writes_summary_plot_and_json_line(tmp_path: Path) -> None:
    out = tmp_path / "loop"
    args = ["--trials", "1", "--fault", "no-contrast", "--max-duration", "5", "--out", str(out)]
    result = run_cli("loop", *args, "--json", "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("trials", "success_rate", "depth_error_mm_mean", "depth_error_mm_p95", "moves_while_invalid"):
        assert key in summary
    assert summary["trials"] == 1 and summary["moves_while_invalid"] == 0
    assert summary["success_rate"] == 0.0  # 5 s without contrast: never reaches the target
    saved = json.loads((out / "summary.json").read_text())
    assert saved["summary"] == summary and saved["trials"][0]["spec"]["fault"] == "no-contrast"
    assert saved["trials"][0]["holds"] == saved["trials"][0]["commands"] > 0
    assert (out / "depth.png").read_bytes()[:4] == b"\x89PNG"
