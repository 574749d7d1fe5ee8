"""The reference controller: bounded speeds, holds on absent/stale/invalid guidance, phases in order."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest

from tavi_perception.controller import ControllerParams, GuidanceSample, Phase, ReferenceController

PARAMS = ControllerParams(
    max_advance_speed_mm_s=2.0,
    max_retraction_speed_mm_s=1.0,
    max_accel_mm_s2=4.0,
    depth_gain_per_s=0.8,
    guidance_timeout_s=0.5,
    settle_time_s=1.0,
)


def _sample(
    t_s: float, error_mm: float, *, valid: bool = True, fraction: float = 0.0, tilt_deg: float = math.nan
) -> GuidanceSample:
    return GuidanceSample(
        received_s=t_s,
        stamp_s=t_s,
        valid=valid,
        invalid_reason="" if valid else "annulus LOST",
        depth_error_mm=error_mm,
        depth_tolerance_mm=0.5,
        extraction_valid=True,
        deployment_fraction=fraction,
        delivery_tilt_deg=tilt_deg,
    )


def _drive(ctrl: ReferenceController, errors_mm: list[float], dt_s: float = 1 / 30) -> list:
    commands = []
    for i, err in enumerate(errors_mm):
        ctrl.on_guidance(_sample(i * dt_s, err))
        commands.append(ctrl.step(i * dt_s))
    return commands


def test_holds_before_any_guidance() -> None:
    cmd = ReferenceController(PARAMS).step(0.0)
    assert cmd.hold and cmd.advance_speed_mm_s == 0.0 and cmd.retraction_speed_mm_s == 0.0
    assert "no guidance" in cmd.reason


def test_holds_on_invalid_guidance_and_reports_its_reason() -> None:
    ctrl = ReferenceController(PARAMS)
    _drive(ctrl, [-5.0] * 10)
    ctrl.on_guidance(_sample(1.0, -5.0, valid=False))
    cmd = ctrl.step(1.0)
    assert cmd.hold and cmd.advance_speed_mm_s == 0.0
    assert "annulus LOST" in cmd.reason


def test_holds_when_guidance_stops_arriving() -> None:
    ctrl = ReferenceController(PARAMS)
    _drive(ctrl, [-5.0] * 10)
    moving = ctrl.step(9 / 30 + 0.4)
    stale = ctrl.step(9 / 30 + 0.6)
    assert not moving.hold
    assert stale.hold and stale.advance_speed_mm_s == 0.0 and "stale" in stale.reason


def test_advances_when_shallower_than_target_and_withdraws_when_deeper() -> None:
    shallow = _drive(ReferenceController(PARAMS), [-3.0] * 20)[-1]
    deep = _drive(ReferenceController(PARAMS), [3.0] * 20)[-1]
    assert shallow.advance_speed_mm_s > 0.0
    assert deep.advance_speed_mm_s < 0.0


def test_speed_is_bounded_for_large_errors() -> None:
    commands = _drive(ReferenceController(PARAMS), [-20.0] * 120)
    assert max(abs(c.advance_speed_mm_s) for c in commands) == pytest.approx(PARAMS.max_advance_speed_mm_s)


def test_speed_changes_are_acceleration_limited() -> None:
    dt_s = 1 / 30
    commands = _drive(ReferenceController(PARAMS), [-20.0] * 30 + [20.0] * 30, dt_s)
    steps = [abs(b.advance_speed_mm_s - a.advance_speed_mm_s) for a, b in itertools.pairwise(commands)]
    assert max(steps) <= PARAMS.max_accel_mm_s2 * dt_s + 1e-9


def test_implausible_depth_error_holds() -> None:
    cmd = _drive(ReferenceController(PARAMS), [-(PARAMS.max_abs_depth_error_mm + 1.0)] * 5)[-1]
    assert cmd.hold and "implausible" in cmd.reason


def test_deploys_only_after_depth_stays_in_band_for_the_settle_time() -> None:
    ctrl = ReferenceController(PARAMS)
    commands = _drive(ctrl, [0.1] * 60)  # 2 s in band
    first_deploy = next(i for i, c in enumerate(commands) if c.phase is Phase.DEPLOY)
    assert first_deploy / 30 >= PARAMS.settle_time_s
    assert all(c.retraction_speed_mm_s == 0.0 for c in commands[:first_deploy])
    assert commands[-1].retraction_speed_mm_s > 0.0


def test_leaving_the_band_while_settling_restarts_the_advance() -> None:
    ctrl = ReferenceController(PARAMS)
    _drive(ctrl, [0.1] * 10)
    assert ctrl.phase is Phase.SETTLE
    ctrl.on_guidance(_sample(0.5, 2.0))
    assert ctrl.phase is Phase.ADVANCE


def test_retraction_pauses_while_depth_is_out_of_band() -> None:
    ctrl = ReferenceController(PARAMS)
    _drive(ctrl, [0.1] * 60)
    assert ctrl.phase is Phase.DEPLOY
    for i in range(30):
        ctrl.on_guidance(_sample(2.0 + i / 30, 1.5, fraction=0.3))
        cmd = ctrl.step(2.0 + i / 30)
    assert cmd.retraction_speed_mm_s == 0.0 and "paused" in cmd.reason
    assert cmd.advance_speed_mm_s < 0.0  # correcting the depth meanwhile


def test_retraction_pauses_inside_the_band_beyond_the_deploy_band_until_the_depth_is_back() -> None:
    """A frame that jumps as it engages the annulus: still in the depth band, but beyond the deploy band."""
    ctrl = ReferenceController(dataclasses.replace(PARAMS, deploy_band_mm=0.3))
    _drive(ctrl, [0.1] * 60)
    assert ctrl.phase is Phase.DEPLOY
    for i in range(30):
        ctrl.on_guidance(_sample(2.0 + i / 30, 0.45, fraction=0.3))  # tolerance 0.5 mm
        jumped = ctrl.step(2.0 + i / 30)
    assert jumped.retraction_speed_mm_s == 0.0 and "paused" in jumped.reason
    assert jumped.advance_speed_mm_s < 0.0 and not jumped.hold
    for i in range(30):
        ctrl.on_guidance(_sample(3.0 + i / 30, 0.2, fraction=0.3))
        back = ctrl.step(3.0 + i / 30)
    assert back.retraction_speed_mm_s > 0.0


def test_holds_once_deployment_is_complete() -> None:
    ctrl = ReferenceController(PARAMS)
    _drive(ctrl, [0.1] * 60)
    ctrl.on_guidance(_sample(2.1, 0.1, fraction=PARAMS.done_fraction))
    cmd = ctrl.step(2.1)
    assert ctrl.phase is Phase.DONE
    assert cmd.hold and "complete" in cmd.reason


def test_closed_loop_on_a_kinematic_plant_reaches_the_band_levels_the_axis_and_deploys() -> None:
    """Depth integrates the advance speed, the capsule the retraction speed, the tilt the steer rate;
    target 4 mm from 15 mm above, axis tilted 6 deg."""
    ctrl = ReferenceController(PARAMS)
    dt_s, depth_mm, retraction_mm, tilt_deg, frame_height_mm = 1 / 30, -11.0, 0.0, 6.0, 20.0
    for i in range(int(60 / dt_s)):
        t_s = i * dt_s
        fraction = min(1.0, retraction_mm / frame_height_mm)
        ctrl.on_guidance(_sample(t_s, depth_mm - 4.0, fraction=fraction, tilt_deg=tilt_deg))
        cmd = ctrl.step(t_s)
        assert abs(cmd.advance_speed_mm_s) <= PARAMS.max_advance_speed_mm_s + 1e-12
        assert 0.0 <= cmd.retraction_speed_mm_s <= PARAMS.max_retraction_speed_mm_s + 1e-12
        assert abs(cmd.steer_rate_deg_s) <= PARAMS.max_steer_rate_deg_s + 1e-12
        if retraction_mm > 0:
            assert abs(tilt_deg) <= PARAMS.max_deploy_tilt_deg + 0.1  # never deploys while tilted
        depth_mm += cmd.advance_speed_mm_s * dt_s
        retraction_mm += cmd.retraction_speed_mm_s * dt_s
        tilt_deg += cmd.steer_rate_deg_s * dt_s
    assert ctrl.phase is Phase.DONE
    assert abs(depth_mm - 4.0) <= 0.5
    assert abs(tilt_deg) <= PARAMS.tilt_deadband_deg + 0.1


def test_steers_against_the_tilt_outside_the_deadband_only() -> None:
    for tilt, sign in ((3.0, -1.0), (-3.0, 1.0), (0.8 * PARAMS.tilt_deadband_deg, 0.0), (math.nan, 0.0)):
        ctrl = ReferenceController(PARAMS)
        for i in range(30):
            ctrl.on_guidance(_sample(i / 30, 2.0, tilt_deg=tilt))
            cmd = ctrl.step(i / 30)
        assert math.copysign(1.0, cmd.steer_rate_deg_s) == sign if sign else cmd.steer_rate_deg_s == 0.0
        assert ("tilt unknown" in cmd.reason) == math.isnan(tilt)


def test_deployment_waits_until_the_axis_is_level_and_steering_stops_on_hold() -> None:
    ctrl = ReferenceController(PARAMS)
    tilted = PARAMS.max_deploy_tilt_deg + 1.0
    for i in range(90):  # 3 s at depth, tilted: keeps levelling, never deploys
        ctrl.on_guidance(_sample(i / 30, 0.1, tilt_deg=tilted))
        cmd = ctrl.step(i / 30)
    assert ctrl.phase is Phase.SETTLE and cmd.retraction_speed_mm_s == 0.0 and cmd.steer_rate_deg_s < 0.0
    for i in range(90, 150):  # level now: deploys after the settle time
        ctrl.on_guidance(_sample(i / 30, 0.1, tilt_deg=0.2))
        ctrl.step(i / 30)
    assert ctrl.phase is Phase.DEPLOY
    ctrl.on_guidance(_sample(5.1, 0.1, valid=False, tilt_deg=5.0))
    held = ctrl.step(5.1)
    assert held.hold and held.steer_rate_deg_s == 0.0


def test_rejects_non_positive_limits() -> None:
    with pytest.raises(ValueError, match="max_advance_speed_mm_s"):
        ControllerParams(max_advance_speed_mm_s=0.0)
