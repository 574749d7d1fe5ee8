"""Ground truth per frame: visibility rules, the side-1 rule, geometry with the perception's definitions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tavi_perception.geometry.deviations import stent_deviation
from tavi_perception.geometry.frames import annulus_frame_from_keypoints
from tavi_perception.guidance import DepthSource
from tavi_perception.keypoints import FLIP_PERMUTATION, GROUP_MEMBERS, Group, Kp
from tavi_perception.sim import (
    CArmView,
    ContrastSchedule,
    DeliveryCommand,
    DeliveryState,
    ProcedureSimulator,
    sample_case,
    visibility,
)
from tavi_perception.sim.phantom import RootGeometry, make_pigtail

ANATOMY = list(GROUP_MEMBERS[Group.ANATOMICAL])


@pytest.fixture(scope="module")
def timeline() -> ProcedureSimulator:
    return ProcedureSimulator(17)


def test_visibility_rule_table() -> None:
    in_fov = np.ones(11, bool)
    in_fov[Kp.CM] = False
    v = visibility(in_fov, contrast=0.2, contrast_threshold=0.5, retraction_mm=0.0)
    assert not v[ANATOMY].any() and not v[[Kp.FE1, Kp.FE2]].any() and not v[Kp.CM]
    assert v[[Kp.CP, Kp.CD, Kp.CT, Kp.PT]].all()
    v = visibility(in_fov, contrast=0.5, contrast_threshold=0.5, retraction_mm=0.1)
    assert v[ANATOMY].all() and v[[Kp.FE1, Kp.FE2]].all() and not v[Kp.CM]


def test_anatomy_is_visible_only_while_contrast_fills_the_root(timeline: ProcedureSimulator) -> None:
    seen = {True: 0, False: 0}
    for t in np.linspace(0.0, timeline.scenario.duration_s, 60):
        frame = timeline.frame_at(float(t))
        filled = frame.contrast >= timeline.contrast_threshold
        in_fov = timeline.scene.in_fov(frame.keypoints_px)
        np.testing.assert_array_equal(frame.visible[ANATOMY], in_fov[ANATOMY] & filled)
        seen[filled] += 1
    assert seen[True] >= 10 and seen[False] >= 10


def test_frame_edges_appear_once_retraction_starts() -> None:
    sim = ProcedureSimulator(6, fps=10.0)
    sim.place(DeliveryState(4.0, 0.0))
    assert not sim.step().visible[[Kp.FE1, Kp.FE2]].any()
    sim.command(DeliveryCommand(retraction_speed_mm_s=1.0))
    sim.step()  # rendered before the first retraction step
    frame = sim.step()
    assert frame.state.retraction_mm > 0 and frame.visible[[Kp.FE1, Kp.FE2]].all()


def test_points_outside_the_field_are_invisible() -> None:
    case = sample_case(9)
    view = case.imaging.view
    narrow = CArmView(view.lao_deg, view.cran_deg, view.sid_mm, view.sod_mm, 60.0, view.isocentre_lps)
    shuttered = dataclasses.replace(case.imaging, view=narrow, shutters=(0.0, 0.3, 0.0, 0.0))
    sim = ProcedureSimulator(dataclasses.replace(case, imaging=shuttered), image_size=256)
    outside = 0
    for t in np.linspace(0.0, sim.scenario.duration_s, 25):
        frame = sim.frame_at(float(t))
        x, y = frame.keypoints_px[:, 0], frame.keypoints_px[:, 1]
        out = (x < 0) | (y < 0) | (y >= 256) | (x >= 256 * 0.7)  # right 30 % behind the shutter
        assert not frame.visible[out].any()
        rules = visibility(
            np.ones(11, bool), frame.contrast, sim.contrast_threshold, frame.state.retraction_mm
        )
        rest = ~out
        rest[Kp.CM] = False  # CM has its own rule (the bend around it in view too)
        np.testing.assert_array_equal(frame.visible[rest], rules[rest])
        outside += int(out.sum())
    assert outside > 0


def test_cm_needs_the_bend_around_it_in_the_field(timeline: ProcedureSimulator) -> None:
    scene, state = timeline.scene, timeline.scenario.start
    kp, extra = scene.keypoints(0.0, state)
    assert scene.in_fov(kp[Kp.CM]) and scene.in_fov(extra["cm_bend_px"]).all()
    assert scene.keypoints_in_view(kp, extra)[Kp.CM]
    cut = dict(extra, cm_bend_px=np.array([extra["cm_bend_px"][0], [-5.0, -5.0]]))  # one side off-image
    in_view = scene.keypoints_in_view(kp, cut)
    assert not in_view[Kp.CM]
    np.testing.assert_array_equal(np.delete(in_view, Kp.CM), np.delete(scene.in_fov(kp), Kp.CM))


def test_cm_is_the_most_curved_point_of_the_projected_rail(timeline: ProcedureSimulator) -> None:
    scene, state = timeline.scene, timeline.scenario.start
    kp, extra = scene.keypoints(0.0, state)
    rail, offset = scene.delivery.rail_for(state), extra["offset_lps"]
    # the projected rail, densely, and its curvature measured from turning angles between chords
    sigma = np.arange(-rail.straight_mm + 1.0, -rail.straight_mm - rail.bend_length_mm - 1.0, -0.1)
    px = scene.projector.project(rail.point(sigma) + offset)
    chords = np.diff(px, axis=0)
    heading = np.unwrap(np.arctan2(chords[:, 1], chords[:, 0]))
    curvature = np.abs(np.diff(heading)) / np.linalg.norm(0.5 * (chords[1:] + chords[:-1]), axis=1)
    most_curved_px = px[1:-1][np.argmax(curvature)]
    assert np.linalg.norm(kp[Kp.CM] - most_curved_px) < 1.0
    assert float(extra["cm_turn_deg"]) == pytest.approx(np.degrees(abs(heading[-1] - heading[0])), abs=1.0)


def test_cm_is_unlabelled_when_the_bend_is_seen_edge_on(timeline: ProcedureSimulator) -> None:
    scene, state = timeline.scene, timeline.scenario.start
    kp, extra = scene.keypoints(0.0, state)
    assert scene.keypoints_in_view(kp, extra)[Kp.CM]
    assert not scene.keypoints_in_view(kp, dict(extra, cm_turn_deg=np.array(5.0)))[Kp.CM]


def test_no_contrast_means_no_anatomy() -> None:
    sim = ProcedureSimulator(3, contrast=ContrastSchedule())
    for t in np.linspace(0.0, sim.scenario.duration_s, 15):
        frame = sim.frame_at(float(t))
        assert frame.contrast == 0.0 and not frame.visible[ANATOMY].any()


def test_injected_contrast_reveals_the_anatomy() -> None:
    sim = ProcedureSimulator(3, contrast=ContrastSchedule(), fps=10.0)
    sim.place(DeliveryState(0.0, 0.0))
    assert not sim.step().visible[ANATOMY].any()
    sim.inject_contrast(plateau_s=1.0)
    frames = [sim.step() for _ in range(8)]
    assert frames[-1].contrast == pytest.approx(1.0) and frames[-1].visible[ANATOMY].all()


def test_side_one_is_left_in_the_image() -> None:
    """Side 1 has the smaller image x, so a horizontal flip (x -> W - x) swaps the labels."""
    for seed in range(12):
        sim = ProcedureSimulator(seed, image_size=128)
        for t in np.linspace(0.0, sim.scenario.duration_s, 5):
            kp = sim.frame_at(float(t)).keypoints_px
            for a, b in ((Kp.AA1, Kp.AA2), (Kp.STJ1, Kp.STJ2), (Kp.FE1, Kp.FE2)):
                assert kp[a, 0] <= kp[b, 0]
            flipped = kp.copy()
            flipped[:, 0] = 128 - flipped[:, 0]
            relabelled = flipped[list(FLIP_PERMUTATION)]
            for a, b in ((Kp.AA1, Kp.AA2), (Kp.STJ1, Kp.STJ2), (Kp.FE1, Kp.FE2)):
                assert relabelled[a, 0] <= relabelled[b, 0]


def test_truth_uses_the_perception_geometry(timeline: ProcedureSimulator) -> None:
    frame = timeline.frame_at(0.8 * timeline.scenario.duration_s)
    kp, truth = frame.keypoints_px, frame.truth
    annulus = annulus_frame_from_keypoints(kp)
    np.testing.assert_allclose(truth.annulus.origin_px, 0.5 * (kp[Kp.AA1] + kp[Kp.AA2]))
    lateral, depth = annulus.to_annulus_mm(kp[Kp.CT], frame.mm_per_px)
    assert truth.tip_depth_mm == pytest.approx(depth) and truth.tip_lateral_mm == pytest.approx(lateral)
    stent = stent_deviation(annulus, kp[Kp.FE1], kp[Kp.FE2], frame.mm_per_px)
    assert truth.stent_mean_depth_mm == pytest.approx(stent.mean_depth_mm)
    assert truth.deployment_fraction == pytest.approx(frame.state.retraction_mm / truth.frame_height_mm)
    assert truth.mm_per_px == frame.mm_per_px == timeline.scene.projector.mm_per_px


def test_truth_is_the_guidance_contract_with_every_block_valid(timeline: ProcedureSimulator) -> None:
    for t in (0.1, 0.9 * timeline.scenario.duration_s):
        frame = timeline.frame_at(t)
        truth = frame.truth
        assert truth.valid and truth.annulus_valid and truth.catheter_valid and truth.stent_valid
        assert truth.extraction_valid and truth.calibrated and truth.depth_std_mm == 0.0
        exact = annulus_frame_from_keypoints(frame.keypoints_px)
        assert truth.annulus_y_sign == exact.y_sign
        np.testing.assert_allclose(truth.annulus.y_axis, exact.y_axis, atol=1e-12)
        deployed = frame.state.retraction_mm > 0
        assert truth.depth_source == (DepthSource.STENT if deployed else DepthSource.TIP)
        assert truth.depth_mm == (truth.stent_mean_depth_mm if deployed else truth.tip_depth_mm)


def test_annulus_frame_points_to_the_ventricle(timeline: ProcedureSimulator) -> None:
    """The ventricle side (+depth) is where the delivery system goes: the guidewire curl is deep."""
    for t in np.linspace(0.0, timeline.scenario.duration_s, 8):
        frame = timeline.frame_at(float(t))
        stj_mid = 0.5 * (frame.keypoints_px[Kp.STJ1] + frame.keypoints_px[Kp.STJ2])
        assert frame.truth.annulus.to_annulus_mm(stj_mid, frame.mm_per_px)[1] < -5.0
        assert frame.truth.annulus.to_annulus_mm(frame.keypoints_px[Kp.CP], frame.mm_per_px)[1] < 0.0


def test_stent_depth_equals_tip_depth_when_deployment_starts() -> None:
    sim = ProcedureSimulator(12)
    sim.place(DeliveryState(5.0, 0.01))
    truth = sim.step().truth
    assert truth.stent_mean_depth_mm == pytest.approx(truth.tip_depth_mm, abs=0.05)
    assert truth.tip_depth_3d_mm == pytest.approx(
        5.0 * np.cos(np.radians(sim.case.devices.delivery_tilt_deg))
    )


def test_pigtail_rests_in_the_non_coronary_cusp() -> None:
    for seed in range(20):
        case = sample_case(seed)
        root = RootGeometry(case.anatomy)
        dev = case.devices
        pt = make_pigtail(
            root, dev.pigtail_loop_radius_mm, dev.pigtail_loop_azimuth_deg, np.eye(3)[0]
        ).tip_point
        s, rho, phi = root.cylindrical(pt)
        ncc = root.cusp_angles["NCC"]
        assert abs((phi - ncc + np.pi) % (2 * np.pi) - np.pi) < np.radians(5)
        assert 0.0 < s < 0.35 * root.sinus_height and 0.6 * root.radius < rho < root.radius
        assert root.lumen_contains(pt[None])[0]
        assert np.linalg.norm(pt - root.nadir("NCC")) < 0.5 * root.radius
