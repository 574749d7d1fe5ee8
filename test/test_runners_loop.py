"""`tavi-perception loop` over the real ROS 2 graph: the loop advances to the target; injected faults never
make the manipulator move."""

from __future__ import annotations

import dataclasses
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from geometry_msgs.msg import PoseWithCovarianceStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_graph import Probe, run_cli

from tavi_perception.evaluation.trials import (
    DROPPED_REASON,
    FROZEN_REASON,
    TrialResult,
    TrialSpec,
    sample_trial,
)
from tavi_perception.guidance import AnnulusSource
from tavi_perception.physics import sample_physics
from tavi_perception.ros.messages import METRIC_FRAME_ID, stamp_ns
from tavi_perception.ros.recorder import LoopRecorder
from tavi_perception.runners.loop import _parser, node_specs, run_trial

pytestmark = [pytest.mark.ros, pytest.mark.slow]
NS = 1_000_000_000
RELIABLE = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)


@dataclass
class FaultTrial:
    result: TrialResult
    recorder: LoopRecorder
    logs: Path
    annulus_poses: list[PoseWithCovarianceStamped]
    tip_poses: list[PoseWithCovarianceStamped]


@pytest.fixture(scope="module")
def fault_trial(tmp_path_factory: pytest.TempPathFactory) -> FaultTrial:
    """One trial carrying all injections: no contrast for 3 s, 10 % drops, a 1 s freeze at 5 s and a
    perception restart at 8 s (1 s down); a probe node keeps the perception node's poses meanwhile."""
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
    logs = tmp_path_factory.mktemp("fault_trial") / "logs"
    with Probe("pose_probe") as probe:
        annulus_poses = probe.collect(PoseWithCovarianceStamped, "annulus_pose", RELIABLE)
        tip_poses = probe.collect(PoseWithCovarianceStamped, "catheter_tip_pose", RELIABLE)
        spinner = threading.Thread(target=probe.executor.spin, daemon=True)
        spinner.start()
        result, recorder = run_trial(spec, args, logs)
    spinner.join(timeout=10)
    assert not spinner.is_alive(), "the probe's executor kept spinning after shutdown"
    return FaultTrial(result, recorder, logs, annulus_poses, tip_poses)


def _unrecorded(recorder: LoopRecorder, first_ns: int) -> str:
    """Where the guidance answered by moving commands but never recorded lies in the trial (image time)."""
    recorded = {p.stamp_ns for p in recorder.perceived}
    lost = sorted({c.stamp_ns for c in recorder.commands if not c.hold and c.stamp_ns not in recorded})
    perceived_s = sorted((p.stamp_ns - first_ns) * 1e-9 for p in recorder.perceived)
    return (
        f"lost guidance at {[round((s - first_ns) * 1e-9, 2) for s in lost]} s; "
        f"recorded guidance spans {perceived_s[0]:.2f}..{perceived_s[-1]:.2f} s ({len(perceived_s)} messages)"
    )


def test_a_trial_with_every_fault_holds_on_invalid_guidance_and_recovers(fault_trial: FaultTrial) -> None:
    result, recorder, logs = fault_trial.result, fault_trial.recorder, fault_trial.logs
    moves = result.moves_while_invalid_by_kind
    assert moves["invalid"] == moves["corrupted"] == 0, f"the controller moved on bad guidance: {moves}"
    first_ns = min(t.stamp_ns for t in recorder.truth)
    assert moves["unrecorded"] == 0, (
        f"the recorder lost guidance the controller acted on: {moves}; {_unrecorded(recorder, first_ns)}"
    )
    first_valid_ns = min(p.stamp_ns for p in recorder.perceived if p.valid)
    # nothing valid before the first aortogram (at 3 s; stamps of the truth, so a recorder that joined
    # late on a loaded machine does not move the reference)
    contrast_ns = min(t.stamp_ns for t in recorder.truth if t.annulus_source == AnnulusSource.CONTRAST)
    assert first_valid_ns > contrast_ns - 0.5 * NS
    moving = [c for c in recorder.commands if not c.hold]
    assert moving, "the controller never moved: the trial shows nothing"
    assert all(c.stamp_ns >= first_valid_ns for c in moving)
    truth = sorted(recorder.truth, key=lambda t: t.stamp_ns)
    assert truth[-1].depth_mm - truth[0].depth_mm > 3.0, "the true depth did not advance 3 mm (measured: 10)"

    frozen = {t.stamp_ns for t in recorder.truth if t.invalid_reason == FROZEN_REASON}
    answered_frozen = [p for p in recorder.perceived if p.stamp_ns in frozen]
    assert len(frozen) >= 10 and answered_frozen
    assert all(not p.valid and p.invalid_reason.startswith("frozen image") for p in answered_frozen)
    assert (
        result.frames_dropped_injected == sum(t.invalid_reason == DROPPED_REASON for t in recorder.truth) > 0
    )

    assert (logs / "perception_node.restarted.log").exists()
    after_restart = [p for p in recorder.perceived if p.stamp_ns - first_ns > 9.0 * NS]
    assert after_restart, "no guidance after the perception node restarted"


def test_poses_are_metric_with_tracker_covariance_and_only_while_their_block_is_valid(
    fault_trial: FaultTrial,
) -> None:
    perceived = {p.stamp_ns: p for p in fault_trial.recorder.perceived}
    for all_poses, block in ((fault_trial.annulus_poses, "annulus"), (fault_trial.tip_poses, "catheter")):
        # poses of frames whose guidance the recorder kept: not those before it discovered the restarted
        # perception node's publisher (the probe may discover it first; how many depends on the load)
        poses = [p for p in all_poses if stamp_ns(p.header.stamp) in perceived]
        assert len(poses) >= 20, f"{block}: only {len(poses)} of {len(all_poses)} poses to check"
        for pose in poses:
            guidance = perceived[stamp_ns(pose.header.stamp)]
            assert pose.header.frame_id == METRIC_FRAME_ID
            assert getattr(guidance, f"{block}_valid"), f"{block} pose published for an invalid {block} block"
            covariance = np.array(pose.pose.covariance).reshape(6, 6)
            assert covariance[0, 0] == covariance[1, 1] > 0.0 and covariance[5, 5] > 0.0
    for pose in fault_trial.annulus_poses:
        g = perceived.get(stamp_ns(pose.header.stamp))
        if g is None:
            continue
        position = pose.pose.pose.position
        expected_m = (g.annulus_origin_x_px * g.mm_per_px * 1e-3, g.annulus_origin_y_px * g.mm_per_px * 1e-3)
        assert (position.x, position.y) == pytest.approx(expected_m, rel=1e-6)


def test_loop_command_advances_towards_the_target_and_writes_summary_plot_and_json_line(
    tmp_path: Path,
) -> None:
    out = tmp_path / "loop"
    args = ["--trials", "1", "--fault", "none", "--max-duration", "8", "--out", str(out)]
    result = run_cli("loop", *args, "--json", "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("trials", "success_rate", "depth_error_mm_mean", "depth_error_mm_p95", "moves_while_invalid"):
        assert key in summary
    assert summary["trials"] == 1 and summary["moves_while_invalid"] == 0
    saved = json.loads((out / "summary.json").read_text())
    assert saved["summary"] == summary
    trial = saved["trials"][0]
    spec = sample_trial(0, 0, "none")
    assert trial["spec"]["start_tip_mm"] == spec.start_tip_mm and trial["frames"] > 0
    # a live loop: the controller moved on valid guidance and the true depth closed in on the target
    assert trial["holds"] < trial["commands"], "every command was a hold: the loop never moved"
    start_error_mm = abs(spec.start_tip_mm - 4.0)
    # first valid guidance once the contrast washed out (~4.3 s: the CT-CP distance is learnt from
    # contrast-free frames), then up to 2 mm/s; a dead loop stays within the ~0.2 mm heartbeat wobble
    assert abs(trial["final_depth_error_mm"]) < start_error_mm - 2.0, "the tip did not advance 2 mm"
    assert (out / "depth.png").read_bytes()[:4] == b"\x89PNG"


def test_loop_on_the_mujoco_delivery_system_records_each_trials_physics_and_never_moves_on_invalid_guidance(
    tmp_path: Path,
) -> None:
    """That the loop closes on the physics (the tip reaching the target) is what `loop --physics mujoco
    --trials 20` measures (bench/results/loop_mujoco.json); here: the setting reaches the simulator and
    the summary keeps each trial's drawn parameters."""
    out = tmp_path / "loop_mujoco"
    args = ["--trials", "1", "--physics", "mujoco", "--max-duration", "8", "--out", str(out)]
    result = run_cli("loop", *args, "--json", "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    saved = json.loads((out / "summary.json").read_text())
    trial = saved["trials"][0]
    assert saved["settings"]["physics"] == "mujoco" and trial["moves_while_invalid"] == 0
    assert trial["physics"] == dataclasses.asdict(sample_physics(trial["case_seed"]))
    log = (out / "logs" / "trial_00" / "simulator_node.log").read_text()
    assert "physics mujoco" in log and "delivery-system physics: PhysicsParams(" in log


def test_node_parameters_reach_rcl_with_their_types_also_empty_and_yaml_like_strings() -> None:
    import rclpy
    from rclpy.context import Context
    from rclpy.node import Node

    from tavi_perception.runners.processes import param_arg

    values = {"empty": "", "word_true": "true", "number_text": "1.5", "quote": "it's", "flag": True, "x": 2.0}
    args = ["--ros-args"]
    for name, value in values.items():
        args += ["-p", param_arg(name, value)]
    context = Context()
    rclpy.init(args=args, context=context)
    try:
        node = Node("param_check", context=context, automatically_declare_parameters_from_overrides=True)
        assert {name: node.get_parameter(name).value for name in values} == values
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_refine_asks_the_perception_node_for_the_valve_refinement_and_nothing_else_changes(tmp_path) -> None:
    spec = sample_trial(0, 0)
    plain = node_specs(spec, _parser().parse_args(["--out", str(tmp_path)]))
    refined = node_specs(spec, _parser().parse_args(["--out", str(tmp_path), "--refine"]))
    assert "refine_valve" not in plain[0].params
    assert refined[0].params == {**plain[0].params, "refine_valve": True}
    assert [n.params for n in refined[1:]] == [n.params for n in plain[1:]]


def test_refine_root_asks_the_perception_node_for_the_root_refinement_and_nothing_else_changes(
    tmp_path,
) -> None:
    spec = sample_trial(0, 0)
    plain = node_specs(spec, _parser().parse_args(["--out", str(tmp_path)]))
    refined = node_specs(spec, _parser().parse_args(["--out", str(tmp_path), "--refine-root"]))
    assert "refine_root" not in plain[0].params
    assert refined[0].params == {**plain[0].params, "refine_root": True}
    assert [n.params for n in refined[1:]] == [n.params for n in plain[1:]]
