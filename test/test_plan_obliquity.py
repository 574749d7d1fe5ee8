"""The view's obliquity to the annulus plane, the bias of image depths, and its correction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tavi_perception.core.carm import view_axes
from tavi_perception.guidance import DepthSource
from tavi_perception.keypoints import Kp
from tavi_perception.plan.annulus import plan_from_labels
from tavi_perception.plan.obliquity import ViewCorrection, ViewState, view_effect
from tavi_perception.plan.simulated import case_plan
from tavi_perception.plan.views import s_curve
from tavi_perception.sim.carm import s_curve_cran_deg
from tavi_perception.sim.case import CRAN_RANGE_DEG, CaseParams
from tavi_perception.sim.ct.simulator import create_simulator, simulation_case
from tavi_perception.sim.delivery import DeliveryState
from tavi_perception.sim.simulator import TrueGeometry, true_geometry

SEEDS = range(8)


def _image_and_coplanar_truth(
    seed: int, offset_deg: float, state: DeliveryState
) -> tuple[TrueGeometry, TrueGeometry, np.ndarray, CaseParams]:
    """(image-view truth, coplanar truth, image keypoints, case) of a stylised case ``offset_deg`` off."""
    case = simulation_case("stylised", seed, view_offset_deg=offset_deg)
    sim = create_simulator("stylised", case)
    kp, coplanar = sim.truth_at(0.0, state)
    image = true_geometry(kp, sim.mm_per_px, state, case, coplanar.tip_depth_3d_mm)
    return image, coplanar, kp, case


def test_a_view_on_the_s_curve_has_no_obliquity_and_no_bias() -> None:
    plan = plan_from_labels()
    for primary in (-40.0, -10.0, 20.0, 50.0):
        effect = view_effect(plan, primary, float(s_curve(plan.normal_lps, primary)[0]))
        assert effect.obliquity_deg == pytest.approx(0.0, abs=1e-6)
        assert effect.depth_gain == pytest.approx(1.0, abs=1e-9)
        assert effect.depth_offset_mm == pytest.approx(0.0, abs=1e-9)
        assert effect.tilt_bias_deg == pytest.approx(0.0, abs=1e-6)
        assert effect.asymmetry_bias_mm(25.0) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("renderer", ["stylised", "ct"])
def test_obliquity_from_the_plan_and_the_carm_angles_is_within_1_deg_of_the_simulators(renderer: str) -> None:
    for seed in SEEDS:
        case = simulation_case(renderer, seed, view_offset_deg=15.0)
        view = case.imaging.view
        beam, _, _ = view.axes()
        axis = np.asarray(case.anatomy.root_axis_lps)
        true_deg = math.degrees(math.asin(abs(float(beam @ axis))))
        plan = plan_from_labels(None) if renderer == "ct" else case_plan(case, renderer)
        assert abs(view_effect(plan, view.lao_deg, view.cran_deg).obliquity_deg - true_deg) < 1.0
        assert true_deg > 5.0  # 15 deg off the S-curve in the secondary angle is a real obliquity


@pytest.mark.parametrize("offset_deg", [-15.0, 15.0])
def test_off_curve_views_stay_inside_the_simulators_view_range_and_exactly_offset(offset_deg: float) -> None:
    moved = 0
    for seed in range(40):
        drawn = simulation_case("stylised", seed)
        case = simulation_case("stylised", seed, view_offset_deg=offset_deg)
        view, axis = case.imaging.view, np.asarray(case.anatomy.root_axis_lps)
        assert CRAN_RANGE_DEG[0] <= view.cran_deg <= CRAN_RANGE_DEG[1]
        assert view.cran_deg - s_curve_cran_deg(axis, view.lao_deg) == pytest.approx(offset_deg, abs=1e-9)
        assert case.truth_view.cran_deg == pytest.approx(s_curve_cran_deg(axis, view.lao_deg), abs=1e-9)
        moved += view.lao_deg != pytest.approx(drawn.imaging.view.lao_deg)
    assert 0 < moved < 40  # the drawn primary angle is kept wherever its offset view is reachable


def test_views_off_the_s_curve_bias_image_depth_and_the_correction_removes_it() -> None:
    state = DeliveryState(4.0, 0.0)
    raw, corrected = [], []
    for seed in SEEDS:
        for offset in (-15.0, 15.0):
            image, coplanar, _, case = _image_and_coplanar_truth(seed, offset, state)
            view = case.imaging.view
            effect = view_effect(case_plan(case, "stylised"), view.lao_deg, view.cran_deg)
            raw.append(image.tip_depth_mm - coplanar.tip_depth_mm)
            corrected.append(effect.corrected_depth_mm(image.tip_depth_mm) - coplanar.tip_depth_mm)
    raw_mm, corrected_mm = np.abs(raw), np.abs(corrected)
    assert raw_mm.mean() > 0.8  # the bias is real: about R/2 sin(obliquity)
    assert corrected_mm.mean() <= 0.5
    assert corrected_mm.mean() < 0.5 * raw_mm.mean()


def test_coplanar_truth_of_an_off_curve_case_equals_the_truth_of_the_same_case_seen_coplanar() -> None:
    state = DeliveryState(3.0, 10.0)
    _, coplanar, _, _ = _image_and_coplanar_truth(2, 15.0, state)
    on_curve = create_simulator("stylised", simulation_case("stylised", 2, view_offset_deg=0.0))
    _, direct = on_curve.truth_at(0.0, state)
    assert coplanar.tip_depth_mm == pytest.approx(direct.tip_depth_mm, abs=0.05)
    assert coplanar.stent_mean_depth_mm == pytest.approx(direct.stent_mean_depth_mm, abs=0.05)


def _estimate_from(image: TrueGeometry, target_mm: float) -> TrueGeometry:
    est = image
    est.depth_source = DepthSource.STENT
    est.depth_mm = est.stent_mean_depth_mm
    est.target_depth_mm = target_mm
    est.depth_error_mm = est.depth_mm - target_mm
    return est


def test_corrected_guidance_approaches_the_coplanar_truth_in_depth_asymmetry_and_tilt() -> None:
    state = DeliveryState(4.0, 20.0)  # partly deployed: the frame edge expanded
    depth_err, asym_err, asym_raw = [], [], []
    for seed in SEEDS:
        image, coplanar, kp, case = _image_and_coplanar_truth(seed, 15.0, state)
        raw_asym = image.fe1_depth_mm - image.fe2_depth_mm
        est = _estimate_from(image, 4.0)
        view = case.imaging.view
        span_mm = float(np.hypot(*(kp[Kp.FE2] - kp[Kp.FE1]))) * est.mm_per_px
        ViewCorrection(case_plan(case, "stylised"), 20.0).apply(est, view.lao_deg, view.cran_deg, span_mm)
        assert est.view_state == ViewState.CORRECTED and est.valid
        assert est.depth_error_mm == pytest.approx(est.depth_mm - 4.0)
        true_asym = coplanar.fe1_depth_mm - coplanar.fe2_depth_mm
        depth_err.append(abs(est.depth_mm - coplanar.stent_mean_depth_mm))
        asym_err.append(abs((est.fe1_depth_mm - est.fe2_depth_mm) - true_asym))
        asym_raw.append(abs(raw_asym - true_asym))
    assert np.mean(depth_err) <= 0.5
    assert np.mean(asym_err) < 0.5 * np.mean(asym_raw)


def test_beyond_the_limit_the_guidance_is_invalid_and_without_a_plan_nothing_changes() -> None:
    state = DeliveryState(4.0, 0.0)
    image, _, _, case = _image_and_coplanar_truth(1, 15.0, state)
    view = case.imaging.view
    est = _estimate_from(image, 4.0)
    est.valid = True
    ViewCorrection(case_plan(case, "stylised"), 5.0).apply(est, view.lao_deg, view.cran_deg)
    assert est.view_state == ViewState.TOO_OBLIQUE and not est.valid
    assert "off the annulus plane" in est.invalid_reason and est.view_obliquity_deg > 5.0

    untouched = _estimate_from(_image_and_coplanar_truth(1, 15.0, state)[0], 4.0)
    depth = untouched.depth_mm
    ViewCorrection(None).apply(untouched, view.lao_deg, view.cran_deg)
    assert untouched.view_state == ViewState.UNKNOWN and untouched.depth_mm == depth
    assert math.isnan(untouched.view_obliquity_deg)
    ViewCorrection(case_plan(case, "stylised")).apply(untouched, math.nan, math.nan)
    assert untouched.view_state == ViewState.UNKNOWN and untouched.depth_mm == depth


def test_a_view_along_the_root_axis_is_not_correctable() -> None:
    plan = plan_from_labels()
    beam = plan.normal_lps if plan.normal_lps[1] < 0 else -plan.normal_lps
    primary = math.degrees(math.atan2(beam[0], -beam[1]))
    secondary = math.degrees(math.asin(beam[2]))
    assert np.allclose(view_axes(primary, secondary)[0], beam)
    with pytest.raises(ValueError, match="foreshortens depth"):
        view_effect(plan, primary, secondary)


def _run_pipeline(limit_deg: float, with_angles: bool) -> list:
    """Estimates of a stylised case 15° off the S-curve, its exact keypoints as detections."""
    from tavi_perception.core.calibration import Calibration
    from tavi_perception.core.carm import CArmPose
    from tavi_perception.core.pipeline import FrameResult, PerceptionPipeline
    from tavi_perception.inference.engines import Detections

    case = simulation_case("stylised", 1, view_offset_deg=15.0)  # the wiring; accuracy over cases above
    sim = create_simulator("stylised", case, image_size=256)
    view = case.imaging.view
    calibration = Calibration(sim.mm_per_px, 256, True, "test")
    pipeline = PerceptionPipeline(
        None, calibration, view=ViewCorrection(case_plan(case, "stylised"), limit_deg)
    )
    if with_angles:
        pipeline.set_carm(CArmPose(view.lao_deg, view.cran_deg))
    estimates = []
    for _ in range(150):
        frame = sim.step()
        detections = Detections(frame.keypoints_px, frame.visible.astype(float), np.ones(3), "truth")
        result = pipeline.step_detections(frame.t_s, detections, 256)
        if isinstance(result, FrameResult):
            estimates.append((result.estimate, frame.truth))
    return estimates


def test_the_pipeline_corrects_guidance_with_the_plan_and_the_carm_angles() -> None:
    estimates = _run_pipeline(20.0, with_angles=True)
    corrected = [(e, t) for e, t in estimates if e.view_state == ViewState.CORRECTED and e.catheter_valid]
    assert corrected, "no corrected estimate"
    assert all(
        e.view_obliquity_deg == pytest.approx(corrected[0][0].view_obliquity_deg) for e, _ in corrected
    )
    errors = [abs(e.tip_depth_mm - t.tip_depth_mm) for e, t in corrected]
    raw_errors = [abs(e.tip_depth_mm + e.view_depth_bias_mm - t.tip_depth_mm) for e, t in corrected]
    assert np.mean(errors) < 0.5 < 1.0 < np.mean(raw_errors)


def test_the_pipeline_answers_too_oblique_views_invalid_and_leaves_views_without_angles_alone() -> None:
    too_oblique = _run_pipeline(5.0, with_angles=True)
    assert too_oblique and all(not e.valid and e.view_state == ViewState.TOO_OBLIQUE for e, _ in too_oblique)
    unknown = _run_pipeline(20.0, with_angles=False)
    assert all(e.view_state == ViewState.UNKNOWN for e, _ in unknown)
    assert any(e.valid for e, _ in unknown)


def test_the_plan_predicts_the_annulus_line_of_the_image_and_a_line_far_from_it_is_refused() -> None:
    state = DeliveryState(4.0, 0.0)
    for seed in SEEDS:
        image, _, _, case = _image_and_coplanar_truth(seed, 15.0, state)
        view = case.imaging.view
        predicted = view_effect(case_plan(case, "stylised"), view.lao_deg, view.cran_deg).annulus_angle_deg
        assert abs(image.annulus_angle_deg - predicted) < 1.5  # perspective only
    correction = ViewCorrection(case_plan(case, "stylised"), 20.0, 8.0)
    image.annulus_angle_deg += 12.0  # a detector that misplaces AA1/AA2
    est = _estimate_from(image, 4.0)
    correction.apply(est, view.lao_deg, view.cran_deg)
    assert est.view_state == ViewState.INCONSISTENT and not est.valid
    assert "from the plan's" in est.invalid_reason


@pytest.mark.parametrize("renderer", ["stylised", "ct"])
def test_the_plan_registered_on_the_simulators_landmarks_lands_on_its_hinge_points(renderer: str) -> None:
    """The plan's projected shape (parallel projection, the isocentre's scale) against the simulator's
    perspective keypoints: registered on the exact AA1, AA2 and STJ, and with AA2 misplaced 10 px."""
    for seed in SEEDS[:4]:
        case = simulation_case(renderer, seed, view_offset_deg=15.0)
        sim = create_simulator(renderer, case, image_size=512)
        frame = sim.step()
        view = case.imaging.view
        correction = ViewCorrection(case_plan(case, renderer))
        planned = correction.planned_annulus(view.lao_deg, view.cran_deg)
        assert planned.stj_mm is not None
        xy = frame.keypoints_px.copy()
        true_origin = 0.5 * (xy[Kp.AA1] + xy[Kp.AA2])
        angle = math.radians(planned.angle_deg)
        across = np.array([-math.sin(angle), math.cos(angle)])
        exact = planned.register(xy, frame.mm_per_px)
        assert abs(float((exact.origin_px - true_origin) @ across)) * frame.mm_per_px < 0.2
        xy[Kp.AA2] += 10.0 * across
        misplaced = planned.register(xy, frame.mm_per_px)
        assert abs(float((misplaced.origin_px - true_origin) @ across)) * frame.mm_per_px < 0.2


def test_the_pipeline_gives_the_annulus_block_the_plans_line_for_the_current_view() -> None:
    from tavi_perception.core.calibration import Calibration
    from tavi_perception.core.carm import CArmPose
    from tavi_perception.core.pipeline import PerceptionPipeline
    from tavi_perception.inference.engines import Detections

    case = simulation_case("stylised", 1, view_offset_deg=15.0)
    sim = create_simulator("stylised", case, image_size=256)
    plan, view = case_plan(case, "stylised"), case.imaging.view
    pipeline = PerceptionPipeline(
        None, Calibration(sim.mm_per_px, 256, True, "test"), view=ViewCorrection(plan)
    )
    frame = sim.step()
    detections = Detections(frame.keypoints_px, frame.visible.astype(float), np.ones(3), "truth")
    pipeline.step_detections(frame.t_s, detections, 256)
    assert pipeline.estimator.planned_annulus is None  # no C-arm angles yet
    pipeline.set_carm(CArmPose(view.lao_deg, view.cran_deg))
    pipeline.step_detections(frame.t_s + 0.1, detections, 256)
    line = pipeline.estimator.planned_annulus
    assert line is not None and line.tolerance_deg == 8.0
    assert line.angle_deg == pytest.approx(view_effect(plan, view.lao_deg, view.cran_deg).annulus_angle_deg)


@pytest.mark.parametrize("renderer", ["stylised", "ct"])
def test_an_off_curve_view_turns_only_the_carm_so_the_operators_calibration_holds(renderer: str) -> None:
    from tavi_perception.runners import case_parameters
    from tavi_perception.sim.carm import Projector

    for seed in SEEDS:
        drawn = simulation_case(renderer, seed)
        case = simulation_case(renderer, seed, view_offset_deg=15.0)
        view, before = case.imaging.view, drawn.imaging.view
        assert (view.sid_mm, view.sod_mm, view.detector_fov_mm) == (
            before.sid_mm,
            before.sod_mm,
            before.detector_fov_mm,
        )
        assert view.isocentre_lps == before.isocentre_lps
        assert case.devices == drawn.devices and case.anatomy == drawn.anatomy
        # the perception node is given the drawn case's mm_per_px (runners.case_parameters)
        assert case_parameters(seed, 256, renderer)["mm_per_px"] == pytest.approx(
            Projector(view, 256).mm_per_px
        )
