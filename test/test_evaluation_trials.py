"""Closed-loop trial definitions (no ROS): randomisation, moves while invalid, per-trial outcome, summary."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from tavi_perception.evaluation.report import CommandRow, GuidanceRow
from tavi_perception.evaluation.trials import (
    DONE_REASON,
    DROPPED_REASON,
    FAULTS,
    FROZEN_REASON,
    GRABBER_REPEAT_REASON,
    TrialSpec,
    corrupted_stamps,
    moves_while_invalid,
    moves_while_invalid_by_kind,
    pedal_pressed,
    pedal_runs,
    plot_trials,
    sample_trial,
    summarize_trials,
    trial_result,
    unsteered_asymmetry_mm,
)

TARGET, TOL = 4.0, 1.0
NS = 1_000_000_000


def _row(t_s: float, depth: float, *, valid: bool = True, reason: str = "", stent: bool = False, asym=0.5):
    return GuidanceRow(
        stamp_ns=round(t_s * NS),
        valid=valid,
        tracking_state=0,
        invalid_reason=reason,
        catheter_valid=valid,
        tip_depth_mm=depth,
        depth_mm=depth,
        depth_source=2 if stent else 1,
        stent_valid=stent,
        stent_mean_depth_mm=depth if stent else math.nan,
        deployment_fraction=1.0 if stent else 0.0,
        target_depth_mm=TARGET,
        depth_tolerance_mm=TOL,
        latency_ms=5.0,
        stent_asymmetry_mm=asym,
    )


def _cmd(
    t_s: float, advance: float = 0.0, retraction: float = 0.0, reason: str = "advance", steer: float = 0.0
) -> CommandRow:
    hold = advance == 0.0 and retraction == 0.0 and steer == 0.0
    return CommandRow(round(t_s * NS), advance, retraction, steer, hold, reason)


def _spec(fault: str = "none") -> TrialSpec:
    return TrialSpec(0, 7, fault, -15.0, 1.0, 8.0, 2.0)


def test_trials_are_deterministic_and_randomised_within_clinical_ranges() -> None:
    trials = [sample_trial(3, i) for i in range(20)]
    assert trials == [sample_trial(3, i) for i in range(20)]
    assert len({t.case_seed for t in trials}) == 20 and len({t.start_tip_mm for t in trials}) == 20
    assert all(-20.0 <= t.start_tip_mm <= -8.0 and 0.5 <= t.contrast_first_s <= 2.5 for t in trials)
    assert all(6.0 <= t.contrast_interval_s <= 10.0 and t.fault == "none" for t in trials)
    assert all(t.drop_probability == 0 and t.freeze_start_s < 0 and t.restart_at_s < 0 for t in trials)
    assert sample_trial(4, 0) != sample_trial(3, 0)


@pytest.mark.parametrize("fault", FAULTS[1:])
def test_each_fault_sets_its_own_injection(fault: str) -> None:
    t = sample_trial(0, 0, fault)
    assert t.fault == fault
    assert (t.drop_probability > 0) == (fault == "drops")
    assert (t.freeze_start_s >= 0 and t.freeze_duration_s > 0) == (fault == "frozen")
    assert (t.restart_at_s >= 0 and t.restart_down_s > 0) == (fault == "restart")
    assert (t.contrast_first_s >= 6.0) == (fault == "no-contrast")


def test_unknown_fault_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        sample_trial(0, 0, "meteor")


def test_moves_on_invalid_unknown_or_corrupted_guidance_are_counted_and_holds_are_not() -> None:
    perceived = [_row(0.0, -10.0, valid=False, reason="annulus: none"), _row(0.1, -9.0), _row(0.2, -8.0)]
    truth = [_row(0.0, -10.0), _row(0.1, -9.0, valid=False, reason=FROZEN_REASON)]
    truth.append(_row(0.2, -8.0, valid=False, reason=FROZEN_REASON))
    assert moves_while_invalid([_cmd(0.0), _cmd(0.1, 1.0)], perceived, truth) == 0  # hold, valid move
    assert moves_while_invalid([_cmd(0.0, 0.5)], perceived, truth) == 1  # moved on invalid guidance
    assert moves_while_invalid([_cmd(0.2, 0.5)], perceived, truth) == 1  # valid, but a frozen frame
    assert moves_while_invalid([_cmd(0.5, 0.0, 1.0)], perceived, truth) == 1  # guidance never published
    assert moves_while_invalid([_cmd(0.0, 0.0, 0.0)], perceived, truth) == 0
    assert moves_while_invalid([_cmd(0.0, steer=-0.5)], perceived, truth) == 1  # a steer is a move too


def test_moves_while_invalid_are_split_into_invalid_corrupted_and_unrecorded_guidance() -> None:
    perceived = [_row(0.0, -10.0, valid=False, reason="annulus: none"), _row(0.1, -9.0), _row(0.2, -8.0)]
    truth = [_row(0.0, -10.0), _row(0.1, -9.0, valid=False, reason=FROZEN_REASON)]
    truth.append(_row(0.2, -8.0, valid=False, reason=FROZEN_REASON))  # the frozen stretch's 2nd frame
    commands = [_cmd(0.0, 0.5), _cmd(0.0, 0.5), _cmd(0.1, 1.0), _cmd(0.2, 0.5), _cmd(0.3, 0.5), _cmd(0.3)]
    by_kind = moves_while_invalid_by_kind(commands, perceived, truth)
    assert by_kind == {"invalid": 2, "corrupted": 1, "unrecorded": 1}
    assert moves_while_invalid(commands, perceived, truth) == 4


def test_the_first_frozen_frame_and_grabber_repeats_are_not_corrupted_but_later_frozen_frames_are() -> None:
    truth = [
        _row(0.0, -10.0),
        _row(0.1, -9.0, valid=False, reason=FROZEN_REASON),  # the last good pixels, one period late
        _row(0.2, -8.0, valid=False, reason=FROZEN_REASON),
        _row(0.3, -7.0, valid=False, reason=GRABBER_REPEAT_REASON),
        _row(0.4, -6.0, valid=False, reason=DROPPED_REASON),
    ]
    assert corrupted_stamps(truth) == {round(0.2 * NS), round(0.4 * NS)}


def test_repeated_pixels_are_not_counted_as_dropped_frames() -> None:
    truth = [_row(0.0, -10.0), _row(0.1, -9.0, valid=False, reason=GRABBER_REPEAT_REASON), _row(0.2, -8.0)]
    perceived = [_row(0.0, -10.0), _row(0.2, -8.0)]
    assert trial_result(_spec(), DONE_REASON, perceived, truth, []).frames_dropped == 0
    assert trial_result(_spec(), DONE_REASON, perceived[:1], truth, []).frames_dropped == 1


def _procedure(final_depth: float, asym: float = 0.5) -> tuple[list[GuidanceRow], list[CommandRow]]:
    """Truth: advance from -10 mm past the target to 5.5 mm, back into the band, then deploy."""
    depths = [-10.0, -5.0, 0.0, 3.5, 5.5, 4.5, 4.2]
    truth = [_row(0.5 * i, d) for i, d in enumerate(depths)]
    truth += [_row(3.5, final_depth, stent=True, asym=asym), _row(4.0, final_depth, stent=True, asym=asym)]
    commands = [_cmd(0.5 * i, 1.0) for i in range(7)] + [_cmd(4.0, reason=DONE_REASON)]
    return truth, commands


def test_trial_outcome_from_the_truth_of_the_last_frame_and_the_controller() -> None:
    truth, commands = _procedure(final_depth=4.6)
    r = trial_result(_spec(), DONE_REASON, truth, truth, commands)
    assert r.completed and r.success and r.depth_success
    assert r.final_depth_error_mm == pytest.approx(0.6) and r.final_asymmetry_mm == pytest.approx(0.5)
    assert r.time_to_target_s == pytest.approx(1.5)  # 3.5 mm at t = 1.5 s is the first in 4 ± 1
    assert r.overshoot_mm == pytest.approx(1.5)  # 5.5 mm before deployment
    assert r.moves_while_invalid == 0 and r.frames == 9 and r.frames_dropped == 0
    assert r.wrong_valid_frames == 0


@pytest.mark.parametrize(
    ("final_depth", "asym", "done"), [(5.2, 0.5, True), (2.9, 0.5, True), (4.0, 2.0, True), (4.0, 0.5, False)]
)
def test_trial_fails_off_target_asymmetric_or_unfinished(final_depth: float, asym: float, done: bool) -> None:
    truth, commands = _procedure(final_depth, asym)
    if not done:
        commands = commands[:-1]
    r = trial_result(_spec(), DONE_REASON if done else "max duration", truth, truth, commands)
    assert r.completed == done and not r.success
    assert r.depth_success == (done and abs(final_depth - TARGET) <= 1.0)  # asymmetry is not the depth


def test_dropped_frames_exclude_injected_drops_and_wrong_valid_frames_are_counted() -> None:
    truth, commands = _procedure(final_depth=4.3)
    truth[2] = _row(1.0, 0.0, valid=False, reason=DROPPED_REASON)
    perceived = [p for i, p in enumerate(truth) if i not in (2, 5)]  # 2 withheld, 5 lost in perception
    perceived[0] = _row(0.0, -6.0)  # valid, 4 mm shallower than the truth
    r = trial_result(_spec("drops"), DONE_REASON, perceived, truth, commands)
    assert r.frames_dropped_injected == 1 and r.frames_dropped == 1
    assert r.wrong_valid_frames == 1


def test_summary_rates_percentiles_and_per_fault_blocks(tmp_path: Path) -> None:
    results, series = [], []
    for i, (final, fault) in enumerate([(4.2, "none"), (4.9, "none"), (6.0, "frozen"), (3.5, "frozen")]):
        truth, commands = _procedure(final)
        spec = TrialSpec(i, i, fault, -15.0, 1.0, 8.0, 2.0)
        results.append(trial_result(spec, DONE_REASON, truth, truth, commands))
        series.append((results[-1], np.linspace(0, 4, len(truth)), np.array([t.depth_mm for t in truth])))
    s = summarize_trials(results)
    assert s["trials"] == 4 and s["success_rate"] == pytest.approx(0.75) == s["depth_success_rate"]
    assert s["depth_error_mm_mean"] == pytest.approx(np.mean([0.2, 0.9, 2.0, 0.5]))
    assert s["depth_error_mm_p95"] == pytest.approx(np.percentile([0.2, 0.9, 2.0, 0.5], 95))
    assert s["moves_while_invalid"] == 0
    assert s["moves_while_invalid_by_kind"] == {"invalid": 0, "corrupted": 0, "unrecorded": 0}
    assert s["by_fault"]["none"]["success_rate"] == 1.0 and s["by_fault"]["frozen"]["success_rate"] == 0.5
    plot_trials(series, TARGET, TOL, str(tmp_path / "depth.png"))
    assert (tmp_path / "depth.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unsteered_asymmetry_is_the_truth_with_the_valve_deployed_at_the_target_depth() -> None:
    from tavi_perception.sim import DeliveryState, ProcedureSimulator, sample_case

    seed = sample_trial(0, 0).case_seed
    asym = unsteered_asymmetry_mm(seed, TARGET)
    sim = ProcedureSimulator(sample_case(seed), image_size=512)
    deployed = min(sim.case.devices.frame_height_mm, sim.case.devices.max_retraction_mm)
    depths = {}
    for tip_mm in np.linspace(sim.limits.tip_min_mm, sim.limits.tip_max_mm, 400):
        truth = sim.truth_at(0.0, DeliveryState(float(tip_mm), deployed))[1]
        depths[abs(truth.stent_mean_depth_mm - TARGET)] = truth.stent_asymmetry_mm
    assert asym == pytest.approx(depths[min(depths)], abs=0.05)  # a brute-force scan agrees
    assert unsteered_asymmetry_mm(seed, TARGET + 3.0) != asym  # and it depends on where the valve sits


def test_cases_needing_steering_get_their_own_success_rate() -> None:
    truth, commands = _procedure(final_depth=4.2, asym=3.0)  # on target but asymmetric
    steered = trial_result(_spec(), DONE_REASON, truth, truth, commands, unsteered_asymmetry=2.9)
    truth_ok, _ = _procedure(final_depth=4.2)
    coaxial = trial_result(_spec(), DONE_REASON, truth_ok, truth_ok, commands, unsteered_asymmetry=0.4)
    assert steered.needs_steering is True and coaxial.needs_steering is False
    s = summarize_trials([steered, coaxial])
    assert s["success_rate"] == 0.5 and s["trials_needing_steering"] == 1
    assert s["success_rate_needing_steering"] == 0.0
    assert trial_result(_spec(), DONE_REASON, truth, truth, commands).needs_steering is None


def test_pedal_runs_alternate_runs_and_gaps_within_their_ranges_deterministically() -> None:
    runs = pedal_runs(7, duration_s=300.0)
    assert runs == pedal_runs(7, duration_s=300.0) and runs != pedal_runs(8, duration_s=300.0)
    assert runs[0][0] == 0.0 and 6.0 <= runs[0][1] <= 8.0
    assert all(3.0 <= end - start <= 8.0 for start, end in runs[1:])
    assert all(2.0 <= b[0] - a[1] <= 20.0 for a, b in itertools.pairwise(runs))
    assert pedal_pressed(runs, 1.0) and not pedal_pressed(runs, runs[0][1] + 1.0)


def test_a_pedal_trial_has_one_aortogram_in_its_first_run_and_a_grabber_trial_its_pulse_rate() -> None:
    pedal = sample_trial(0, 3, "pedal")
    assert pedal.contrast_interval_s == 0.0 and pedal.pedal_seed >= 0
    assert pedal.contrast_first_s + pedal.contrast_plateau_s < pedal_runs(pedal.pedal_seed)[0][1]
    assert sample_trial(0, 3, "grabber").grabber_pulse_hz == 7.5
    assert sample_trial(0, 3, "none").pedal_seed < 0 and sample_trial(0, 3, "none").grabber_pulse_hz == 0.0
