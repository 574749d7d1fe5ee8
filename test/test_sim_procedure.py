"""Procedure mechanics: contrast bolus timing, manipulator kinematics and limits, scenario timelines."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tavi_perception.sim import (
    ContrastSchedule,
    DeliveryCommand,
    DeliveryLimits,
    DeliveryState,
    Injection,
    ProcedureSimulator,
    default_scenario,
    sample_case,
)
from tavi_perception.sim.delivery import AppliedSpeeds, DeliveryRail, DeliverySystem, integrate
from tavi_perception.sim.phantom import RootGeometry
from tavi_perception.sim.scenario import MAX_START_STEER_DEG, PHASES, sampling_times


def test_injection_rises_plateaus_and_washes_out() -> None:
    inj = Injection(start_s=2.0, plateau_s=1.5, rise_s=0.3, washout_s=1.0)
    assert inj.fill(1.99) == 0.0
    assert 0.0 < inj.fill(2.15) < 1.0
    assert inj.fill(2.3) == pytest.approx(1.0)
    assert inj.fill(3.79) == pytest.approx(1.0)
    assert 0.0 < inj.fill(4.3) < 1.0
    assert inj.fill(4.81) == 0.0
    rising = [inj.fill(t) for t in np.linspace(2.0, 2.3, 10)]
    falling = [inj.fill(t) for t in np.linspace(3.8, 4.8, 10)]
    assert rising == sorted(rising) and falling == sorted(falling, reverse=True)


def test_repeating_schedule_repeats_and_one_offs_add() -> None:
    schedule = ContrastSchedule(repeating=Injection(1.0, plateau_s=1.0), period_s=10.0)
    for k in range(4):
        assert schedule.fill(1.0 + 0.3 + 0.5 + 10.0 * k) == pytest.approx(1.0)
        assert schedule.fill(6.0 + 10.0 * k) == 0.0
    extra = schedule.with_injection(Injection(6.0, plateau_s=1.0))
    assert extra.fill(6.8) == pytest.approx(1.0) and extra.fill(16.8) == 0.0
    with pytest.raises(ValueError, match="period"):
        ContrastSchedule(repeating=Injection(0.0, plateau_s=3.0), period_s=2.0)


def test_no_injection_means_no_contrast() -> None:
    assert all(ContrastSchedule().fill(t) == 0.0 for t in np.linspace(0, 100, 50))


@pytest.fixture(scope="module")
def sim() -> ProcedureSimulator:
    return ProcedureSimulator(5, fps=10.0)


def test_commanded_speeds_are_clipped_to_the_limits(sim: ProcedureSimulator) -> None:
    sim.place(DeliveryState(-10.0, 0.0))
    sim.command(DeliveryCommand(advance_speed_mm_s=100.0, retraction_speed_mm_s=50.0, steer_rate_deg_s=-9.0))
    assert sim.applied_speeds() == AppliedSpeeds(5.0, 2.0, -3.0)
    for _ in range(10):  # one second at 10 fps
        sim.step()
    assert sim.state.tip_sigma_mm == pytest.approx(-5.0)
    assert sim.state.retraction_mm == pytest.approx(2.0)
    assert sim.state.steer_deg == pytest.approx(-3.0)


def test_retraction_never_reverses_and_hold_stops(sim: ProcedureSimulator) -> None:
    sim.place(DeliveryState(0.0, 5.0))
    sim.command(DeliveryCommand(advance_speed_mm_s=-1.0, retraction_speed_mm_s=-3.0))
    for _ in range(5):
        sim.step()
    assert sim.state.retraction_mm == pytest.approx(5.0)
    assert sim.state.tip_sigma_mm == pytest.approx(-0.5)
    sim.command(
        DeliveryCommand(advance_speed_mm_s=3.0, retraction_speed_mm_s=1.0, steer_rate_deg_s=2.0, hold=True)
    )
    before = sim.state
    for _ in range(5):
        sim.step()
    assert sim.state == before


def test_tip_retraction_and_steer_stay_within_travel() -> None:
    limits = DeliveryLimits()
    state = integrate(DeliveryState(19.0, 44.0, 14.0), AppliedSpeeds(5.0, 2.0, 3.0), 10.0, limits, 45.0)
    assert state == DeliveryState(limits.tip_max_mm, 45.0, limits.max_steer_deg)
    state = integrate(DeliveryState(-29.0, 0.0), AppliedSpeeds(-5.0, 0.0, -3.0), 10.0, limits, 45.0)
    assert state.tip_sigma_mm == limits.tip_min_mm and state.steer_deg == -limits.max_steer_deg


def test_place_rejects_states_outside_travel(sim: ProcedureSimulator) -> None:
    with pytest.raises(ValueError, match="tip"):
        sim.place(DeliveryState(40.0, 0.0))
    with pytest.raises(ValueError, match="retraction"):
        sim.place(DeliveryState(0.0, -1.0))


def test_advancing_moves_the_tip_deeper(sim: ProcedureSimulator) -> None:
    sim.place(DeliveryState(-5.0, 0.0))
    first = sim.step().truth
    sim.command(DeliveryCommand(advance_speed_mm_s=2.0))
    for _ in range(20):
        sim.step()
    last = sim.step().truth  # after 2 s of advance: 4 mm along the rail
    tilt = np.radians(sim.case.devices.delivery_tilt_deg)
    assert last.tip_depth_3d_mm - first.tip_depth_3d_mm == pytest.approx(4.0 * np.cos(tilt), abs=1e-6)
    assert last.tip_depth_mm > first.tip_depth_mm + 1.0  # seen deeper in the image too


def test_retraction_shortens_cp_cd_by_the_retraction() -> None:
    case = sample_case(8)
    straight = dataclasses.replace(case.devices, rail_straight_mm=90.0)  # CP and CD on the straight part
    system = DeliverySystem(RootGeometry(case.anatomy), straight, np.eye(3)[0], np.eye(3)[1])
    closed = system.points(DeliveryState(3.0, 0.0))
    assert np.linalg.norm(closed.cp - closed.cd) == pytest.approx(case.devices.cp_cd_closed_mm)
    for r in (2.0, 10.0, 20.0):
        p = system.points(DeliveryState(3.0, r))
        assert np.linalg.norm(p.cp - p.cd) == pytest.approx(case.devices.cp_cd_closed_mm - r)
        np.testing.assert_allclose(p.cp, closed.cp)  # CP is fixed to the valve
        np.testing.assert_allclose(p.ct, closed.ct)


def test_rail_is_continuous_and_smooth() -> None:
    case = sample_case(4)
    rail = DeliveryRail(RootGeometry(case.anatomy), case.devices)
    sigma = np.linspace(rail.sigma_min, 40.0, 4000)
    pts = rail.point(sigma)
    steps = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    # unit speed: sigma is arc length (a chord is shorter than its arc by kappa^2 h^2 / 24 ~ 2e-6 here)
    np.testing.assert_allclose(steps, sigma[1] - sigma[0], rtol=1e-5)
    tangent, normal, _ = rail.frame(sigma)
    np.testing.assert_allclose(np.einsum("ij,ij->i", tangent, normal), 0.0, atol=1e-9)
    finite = np.diff(pts, axis=0) / steps[:, None]
    np.testing.assert_allclose(finite, rail.frame(0.5 * (sigma[1:] + sigma[:-1]))[0], atol=1e-4)


def test_rail_bends_most_at_cm_and_its_curvature_has_no_jumps() -> None:
    case = sample_case(4)
    rail = DeliveryRail(RootGeometry(case.anatomy), case.devices)
    sigma = np.linspace(rail.sigma_min + 100.0, 0.0, 6001)
    tangent = rail.frame(sigma)[0]
    step = sigma[1] - sigma[0]
    measured = np.linalg.norm(np.diff(tangent, axis=0), axis=1) / step  # |dT/ds|
    mid = 0.5 * (sigma[1:] + sigma[:-1])
    np.testing.assert_allclose(measured, rail.curvature_per_mm(mid), atol=2e-4)
    assert abs(mid[np.argmax(measured)] - rail.bend_mid_sigma) < 2 * step
    assert measured.max() == pytest.approx(2.0 * rail.bend_rad / rail.bend_length_mm, rel=1e-3)
    assert np.abs(np.diff(measured)).max() < 1e-3  # no step in curvature where the bend starts or ends
    turned = np.degrees(np.arccos(np.clip(tangent[0] @ tangent[-1], -1.0, 1.0)))
    assert turned == pytest.approx(case.devices.rail_bend_deg, abs=0.01)


def test_default_scenario_runs_every_phase_to_full_release() -> None:
    case = sample_case(21)
    scenario = default_scenario(case)
    limits = DeliveryLimits()
    height = case.devices.frame_height_mm
    times = np.linspace(0.0, scenario.duration_s, 600)
    phases = [scenario.phase_at(t) for t in times]
    assert [p for i, p in enumerate(phases) if i == 0 or p != phases[i - 1]] == list(PHASES)
    states = [scenario.state_at(t, limits, height) for t in times]
    retraction = np.array([s.retraction_mm for s in states])
    assert retraction[0] == 0.0 and retraction[-1] == pytest.approx(height)
    assert np.all(np.diff(retraction) >= 0.0)
    assert all(p in ("approach", "positioning") for p, r in zip(phases, retraction, strict=True) if r == 0.0)
    fills = np.array([scenario.contrast.fill(t) for t in times])
    assert 0.25 < np.mean(fills >= 0.5) < 0.6  # contrast puffs with contrast-free stretches
    tips = np.array([s.tip_sigma_mm for s in states])
    assert tips[0] < -10.0 and 0.0 < tips[-1] < 10.0  # from the aorta down to the annulus


def test_default_scenarios_cover_steered_configurations() -> None:
    starts = [default_scenario(sample_case(seed)).start.steer_deg for seed in range(40)]
    assert max(np.abs(starts)) <= MAX_START_STEER_DEG and np.std(starts) > 5.0
    scenario = default_scenario(sample_case(21))
    steers = {round(scenario.state_at(t, DeliveryLimits(), 50.0).steer_deg, 6) for t in (0.0, 1e3)}
    assert len(steers) == 2  # one positioning adjustment steers


def test_scenario_without_first_puff_starts_without_contrast() -> None:
    case = sample_case(2)
    late = default_scenario(case, contrast_at_start=False)
    first = min(inj.start_s for inj in late.contrast.injections)
    assert first > 3.0
    assert all(late.contrast.fill(t) == 0.0 for t in np.linspace(0.0, first, 30))
    assert default_scenario(case).contrast.fill(1.5) > 0.0


def test_sampling_spreads_frames_over_the_timeline_and_phases() -> None:
    scenario = default_scenario(sample_case(13))
    times = sampling_times(scenario, 100, np.random.default_rng(0))
    assert np.all(np.diff(times) > 0) and times[0] >= 0.0 and times[-1] <= scenario.duration_s
    counts = {p: sum(scenario.phase_at(t) == p for t in times) for p in PHASES}
    assert counts == {"approach": 20, "positioning": 30, "deployment": 30, "release": 20}


def test_steering_turns_the_delivery_axis_in_the_image_about_the_annulus_crossing() -> None:
    sim = ProcedureSimulator(5)
    deployed = sim.case.devices.frame_height_mm
    before = sim.truth_at(0.0, DeliveryState(4.0, deployed))[1]
    after = sim.truth_at(0.0, DeliveryState(4.0, deployed, steer_deg=3.0))[1]
    # + steer turns the axis from image +x towards +y by about the steer (perspective: not exactly)
    assert after.delivery_tilt_deg - before.delivery_tilt_deg == pytest.approx(3.0, abs=0.3)
    assert after.stent_mean_depth_mm == pytest.approx(
        before.stent_mean_depth_mm, abs=0.5
    )  # pivot at the annulus
    assert after.stent_asymmetry_mm != pytest.approx(before.stent_asymmetry_mm, abs=0.5)


def test_steering_against_the_tilt_levels_the_frame_edges() -> None:
    sim = ProcedureSimulator(5)
    state = DeliveryState(4.0, sim.case.devices.frame_height_mm)
    tilt = sim.truth_at(0.0, state)[1].delivery_tilt_deg
    levelled = sim.truth_at(0.0, dataclasses.replace(state, steer_deg=-tilt))[1]
    assert abs(levelled.delivery_tilt_deg) < 0.3
    assert levelled.stent_asymmetry_mm < 0.3


def test_pinning_the_view_or_magnification_keeps_the_patient_and_the_rest_of_the_draw() -> None:
    drawn = sample_case(17)
    pinned = sample_case(17, lao_deg=-20.0, cran_deg=10.0, magnification=1.6)
    assert (pinned.anatomy, pinned.devices, pinned.motion) == (drawn.anatomy, drawn.devices, drawn.motion)
    view, before = pinned.imaging.view, drawn.imaging.view
    assert (view.lao_deg, view.cran_deg) == (-20.0, 10.0) and view.sid_mm / view.sod_mm == pytest.approx(1.6)
    assert view.sid_mm == before.sid_mm and view.detector_fov_mm == before.detector_fov_mm  # later draws
    assert dataclasses.replace(pinned.imaging, view=before) == drawn.imaging
