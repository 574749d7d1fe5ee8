"""The delivery system in MuJoCo: the tip lags the handle, a dead band eats small reversals, the capsule
drags the valve back, the frame jumps as it engages, and the simulator renders the physics' state."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tavi_perception.physics import RANGES, DeliveryPhysics, PhysicsParams, sample_physics
from tavi_perception.physics.model import layout
from tavi_perception.physics.path import RoutePath, friction_path
from tavi_perception.sim import ProcedureSimulator
from tavi_perception.sim.delivery import AppliedSpeeds, DeliveryCommand, DeliveryLimits, DeliveryState

FPS = 15.0
QUIET = dict(ejection_force_n=0.0, respiratory_share=0.0)  # no heart or breathing: deterministic levels


@pytest.fixture(scope="module")
def scene():
    return ProcedureSimulator(0, image_size=128).scene


def _physics(scene, **overrides: float) -> DeliveryPhysics:
    params = dataclasses.replace(PhysicsParams(), **overrides)
    return DeliveryPhysics(
        params, scene.delivery.rail, scene.motion, DeliveryState(-15.0), 45.0, DeliveryLimits()
    )


def _run(physics: DeliveryPhysics, speeds: AppliedSpeeds, seconds: float) -> list[DeliveryState]:
    return [physics.step(speeds, 1.0 / FPS) for _ in range(round(seconds * FPS))]


def test_tip_lags_the_handle_while_advancing_and_catches_up_partly_when_it_stops(scene) -> None:
    physics = _physics(scene, **QUIET)
    moving = _run(physics, AppliedSpeeds(advance_mm_s=2.0), 4.0)[-1]
    lag_moving_mm = physics.handle.advance_mm - moving.tip_sigma_mm
    stopped = _run(physics, AppliedSpeeds(), 2.0)[-1]
    lag_stopped_mm = physics.handle.advance_mm - stopped.tip_sigma_mm
    assert physics.handle.advance_mm == pytest.approx(-15.0 + 8.0)
    assert 0.5 < lag_moving_mm < 5.0
    assert 0.0 < lag_stopped_mm < lag_moving_mm  # friction holds part of the compression


def test_a_reversal_smaller_than_the_dead_band_does_not_move_the_tip(scene) -> None:
    physics = _physics(scene, backlash_mm=2.0, **QUIET)
    _run(physics, AppliedSpeeds(advance_mm_s=1.0), 3.0)
    before = _run(physics, AppliedSpeeds(), 1.0)[-1].tip_sigma_mm
    _run(physics, AppliedSpeeds(advance_mm_s=-0.5), 1.0)  # 0.5 mm back: inside the 2 mm play
    after = _run(physics, AppliedSpeeds(), 1.0)[-1].tip_sigma_mm
    assert abs(after - before) < 0.1
    _run(physics, AppliedSpeeds(advance_mm_s=-1.0), 8.0)  # 8 mm more: through the play and the compression
    assert _run(physics, AppliedSpeeds(), 1.0)[-1].tip_sigma_mm < before - 1.0


def test_without_backlash_the_same_reversal_moves_the_tip_back(scene) -> None:
    physics = _physics(scene, backlash_mm=0.0, shaft_friction_n=0.5, **QUIET)
    _run(physics, AppliedSpeeds(advance_mm_s=1.0), 3.0)
    before = _run(physics, AppliedSpeeds(), 1.0)[-1].tip_sigma_mm
    _run(physics, AppliedSpeeds(advance_mm_s=-1.0), 1.0)
    assert _run(physics, AppliedSpeeds(), 1.0)[-1].tip_sigma_mm < before - 0.3


def test_capsule_retraction_drags_the_valve_back_before_the_frame_engages(scene) -> None:
    physics = _physics(scene, capsule_friction_n=1.5, engage_fraction=0.5, **QUIET)
    start = _run(physics, AppliedSpeeds(), 1.0)[-1]
    retracting = _run(physics, AppliedSpeeds(retraction_mm_s=2.0), 4.0)[-1]  # 8 mm of 45: not engaged
    assert retracting.retraction_mm == pytest.approx(8.0, abs=0.6)  # the sheath stretches a little
    assert retracting.tip_sigma_mm < start.tip_sigma_mm - 0.2


@pytest.mark.parametrize("jump_mm", [1.5, -1.5])
def test_the_frame_jumps_by_the_release_jump_as_it_engages_the_annulus_and_stays(scene, jump_mm) -> None:
    physics = _physics(scene, capsule_friction_n=0.0, engage_fraction=0.2, release_jump_mm=jump_mm, **QUIET)
    before = _run(physics, AppliedSpeeds(retraction_mm_s=2.0), 4.0)[-1]  # 8 mm: just before 9 mm
    assert before.retraction_mm < 0.2 * 45.0
    states = _run(physics, AppliedSpeeds(retraction_mm_s=2.0), 6.0)  # engaged and opening
    moved_mm = states[-1].tip_sigma_mm - before.tip_sigma_mm
    assert np.sign(moved_mm) == np.sign(jump_mm)
    assert 0.5 * abs(jump_mm) < abs(moved_mm) < 1.2 * abs(jump_mm)


def test_the_engaged_frame_resists_the_handle(scene) -> None:
    moved_mm = {}
    for engage_fraction in (0.9, 0.1):  # 10 mm retracted: not engaged yet, and engaged
        physics = _physics(scene, engage_fraction=engage_fraction, **QUIET)
        _run(physics, AppliedSpeeds(retraction_mm_s=2.0), 5.0)
        start_mm = _run(physics, AppliedSpeeds(), 1.0)[-1].tip_sigma_mm
        end_mm = _run(physics, AppliedSpeeds(advance_mm_s=1.0), 4.0)[-1].tip_sigma_mm
        moved_mm[engage_fraction] = end_mm - start_mm
    assert moved_mm[0.1] < 0.5 * moved_mm[0.9]


def test_the_tip_turns_with_the_steer_servo_behind_its_bending_compliance(scene) -> None:
    physics = _physics(scene, **QUIET)
    turning = _run(physics, AppliedSpeeds(steer_deg_s=2.0), 3.0)[-1]
    assert physics.handle.steer_deg == pytest.approx(6.0)
    assert 3.0 < turning.steer_deg < 6.0
    assert _run(physics, AppliedSpeeds(), 2.0)[-1].steer_deg == pytest.approx(6.0, abs=1.5)


def test_the_beating_heart_moves_the_resting_tip_a_little(scene) -> None:
    physics = _physics(scene, ejection_force_n=1.0, shaft_friction_n=2.0, respiratory_share=0.2)
    tips = np.array([s.tip_sigma_mm for s in _run(physics, AppliedSpeeds(), 6.0)])
    assert 0.01 < float(np.ptp(tips)) < 1.5


def test_parameters_are_drawn_within_their_ranges_and_deterministic_for_a_seed() -> None:
    draws = [sample_physics(seed) for seed in range(40)]
    assert sample_physics(7) == sample_physics(7)
    for name, (lo, hi) in RANGES.items():
        values = np.array([getattr(d, name) for d in draws])
        if name == "release_jump_mm":
            assert (values > 0).any() and (values < 0).any()
            values = np.abs(values)
        assert ((values >= lo) & (values <= hi)).all(), name
    assert max(d.backlash_mm for d in draws) > 1.5  # up to 2 mm of play


def test_invalid_parameters_are_rejected() -> None:
    with pytest.raises(ValueError, match="static_friction_ratio"):
        PhysicsParams(static_friction_ratio=0.5)
    with pytest.raises(ValueError, match="backlash_mm"):
        PhysicsParams(backlash_mm=-1.0)


def test_simulator_renders_where_the_physics_puts_the_tip_not_where_the_handle_is() -> None:
    sims = {p: ProcedureSimulator(0, image_size=128, physics=p) for p in ("kinematic", "mujoco")}
    last = {}
    for name, sim in sims.items():
        sim.place(DeliveryState(-15.0))
        sim.command(DeliveryCommand(advance_speed_mm_s=2.0))
        last[name] = [sim.step() for _ in range(45)][-1]
    kin, phys = sims["kinematic"], sims["mujoco"]
    assert kin.state.tip_sigma_mm == pytest.approx(kin.handle.advance_mm)
    assert phys.handle.advance_mm == pytest.approx(kin.handle.advance_mm)
    assert phys.state.tip_sigma_mm < phys.handle.advance_mm - 0.3
    assert last["mujoco"].truth.tip_depth_3d_mm < last["kinematic"].truth.tip_depth_3d_mm - 0.3
    assert phys.physics_params == sample_physics(phys.case.seed)


def test_simulator_rejects_an_unknown_physics() -> None:
    with pytest.raises(ValueError, match="physics"):
        ProcedureSimulator(0, image_size=128, physics="gazebo")


def test_a_delivery_system_placed_with_the_frame_already_engaged_does_not_jump(scene) -> None:
    physics = DeliveryPhysics(
        dataclasses.replace(PhysicsParams(), release_jump_mm=1.5, **QUIET),
        scene.delivery.rail,
        scene.motion,
        DeliveryState(-2.0, retraction_mm=20.0),
        45.0,
        DeliveryLimits(),
    )
    assert _run(physics, AppliedSpeeds(), 2.0)[-1].tip_sigma_mm == pytest.approx(-2.0, abs=0.1)


def _arch_route(rail, radius_mm: float = 30.0) -> np.ndarray:
    """A route ending 20 mm up the rail: 60 mm straight down, a half turn of ``radius_mm``, 100 mm up."""
    up, side = -rail.axis, rail.bend_dir
    end = rail.origin + 20.0 * up
    top = end + 60.0 * up
    phi = np.linspace(0.0, np.pi, 90)[:, None]
    arch = top + radius_mm * (np.sin(phi) * up + (1.0 - np.cos(phi)) * side)
    descending = arch[-1] - np.linspace(0.0, 100.0, 51)[:, None] * up
    limb = top - np.linspace(0.0, 60.0, 31)[:, None] * up
    return np.vstack([descending[::-1], arch[::-1], limb[1:]])


def test_a_route_path_finds_its_arch_and_the_friction_concentrates_there(scene) -> None:
    rail = scene.delivery.rail
    path = RoutePath(_arch_route(rail), rail)
    assert path.bend_radius_mm == pytest.approx(30.0, rel=0.15)
    arch_sigma = -(20.0 + 60.0 + 0.5 * np.pi * 30.0)  # halfway round, along the route from its end
    assert path.curvature_per_mm(arch_sigma) == pytest.approx(1 / 30.0, rel=0.2)
    assert path.curvature_per_mm(-40.0) == 0.0 and path.curvature_per_mm(-400.0) == 0.0
    shares = layout(path, -15.0, PhysicsParams()).friction_share
    straight = layout(path, -15.0, PhysicsParams(bend_friction_gain=0.0)).friction_share
    arch_segment = int(np.argmax(shares))
    assert shares[arch_segment] > 1.5 * straight[arch_segment]
    assert np.allclose(straight, straight[0])


def test_the_stylised_scene_rubs_along_its_rail() -> None:
    sim = ProcedureSimulator(0, image_size=128)
    path = friction_path(sim.scene)
    sigma = np.linspace(-200.0, 0.0, 50)
    assert np.array_equal(path.curvature_per_mm(sigma), sim.scene.delivery.rail.curvature_per_mm(sigma))
