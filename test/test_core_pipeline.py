"""PerceptionPipeline (no ROS graph): admission -> shipped ONNX model -> tracker -> geometry, one path."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tavi_perception.core.admission import AdmissionParams, Continuity, Verdict
from tavi_perception.core.calibration import Calibration
from tavi_perception.core.carm import CArmPose
from tavi_perception.core.pipeline import (
    FrameResult,
    PerceptionPipeline,
    UnprocessedFrame,
    shipped_model_path,
)
from tavi_perception.core.roi import Box, RegionOfInterest
from tavi_perception.geometry.estimator import GeometryParams
from tavi_perception.inference import create_engine
from tavi_perception.inference.engines import Detections
from tavi_perception.inference.refinement import VALVE, Refinement, refine
from tavi_perception.keypoints import Kp
from tavi_perception.sim import DeliveryState, ProcedureSimulator

CALIBRATION = Calibration(0.5, 0, True, "test")


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    sim = ProcedureSimulator(3, image_size=256)
    return [sim.step().image for _ in range(4)]


@pytest.fixture(scope="module")
def engine():
    return create_engine(shipped_model_path(), backend="onnxruntime", threads=1)


def test_admitted_frames_run_through_tracker_and_geometry_with_their_continuity(engine, frames) -> None:
    pipeline = PerceptionPipeline(engine, CALIBRATION)
    first = pipeline.step(0.0, None, frames[0])
    second = pipeline.step(0.04, 0.05, frames[1])
    assert isinstance(first, FrameResult) and isinstance(second, FrameResult)
    assert first.admission.continuity is Continuity.NEW_SEQUENCE and first.tracked.reset
    assert second.admission.continuity is Continuity.CONTINUE and not second.tracked.reset
    assert second.tracked.t_s == pytest.approx(0.04) and second.estimate.mm_per_px == 0.5
    assert second.infer_ms > 0.0 and second.admission_ms > 0.0


def test_a_repeat_is_answered_with_nothing_and_a_long_freeze_with_invalid_guidance(engine, frames) -> None:
    pipeline = PerceptionPipeline(engine, CALIBRATION, admission_params=AdmissionParams(frozen_after_s=0.5))
    pipeline.step(0.0, None, frames[0])
    repeat = pipeline.step(0.1, None, frames[0].copy())  # same pixels, new stamp: a grabber repeat
    assert isinstance(repeat, UnprocessedFrame) and repeat.admission.verdict is Verdict.REPEAT
    assert repeat.estimate is None
    frozen = pipeline.step(0.7, None, frames[0].copy())
    assert isinstance(frozen, UnprocessedFrame) and frozen.estimate is not None
    assert not frozen.estimate.valid and frozen.estimate.invalid_reason.startswith("frozen image")
    resumed = pipeline.step(0.8, None, frames[1])  # the source moves again, 0.8 s after new pixels
    assert isinstance(resumed, FrameResult) and resumed.admission.continuity is Continuity.GAP
    assert resumed.tracked.reset  # the tracks restart after the gap instead of coasting through it


def test_a_rejected_frame_gets_invalid_guidance_and_does_not_touch_the_tracks(engine, frames) -> None:
    geometry = GeometryParams(target_depth_mm=5.0, depth_tolerance_mm=0.5)
    with_blank, without = (
        PerceptionPipeline(engine, CALIBRATION, geometry_params=geometry),
        PerceptionPipeline(engine, CALIBRATION),
    )
    for pipeline in (with_blank, without):
        pipeline.step(0.0, None, frames[0])
    blank = with_blank.step(0.033, None, np.zeros_like(frames[0]))  # X-ray off in a valid stream
    assert isinstance(blank, UnprocessedFrame) and blank.admission.rule == "non_scene"
    est = blank.estimate
    assert est is not None and not est.valid and "black" in est.invalid_reason
    assert est.annulus_reason == est.invalid_reason and math.isnan(est.depth_error_mm)
    assert (est.target_depth_mm, est.depth_tolerance_mm) == (5.0, 0.5)
    assert est.calibrated and est.calibration_source == "test"
    after, reference = with_blank.step(0.067, None, frames[1]), without.step(0.067, None, frames[1])
    assert isinstance(after, FrameResult) and isinstance(reference, FrameResult)
    np.testing.assert_array_equal(after.tracked.xy_px, reference.tracked.xy_px)
    np.testing.assert_array_equal(after.tracked.std_px, reference.tracked.std_px)


def test_stamps_jumping_back_start_a_new_sequence_in_tracker_and_geometry(engine, frames) -> None:
    pipeline = PerceptionPipeline(engine, CALIBRATION)
    pipeline.step(100.0, None, frames[0])
    pipeline.step(100.033, None, frames[1])
    looped = pipeline.step(10.0, None, frames[2])  # a looping bag: no ValueError from time going back
    assert isinstance(looped, FrameResult) and looped.admission.continuity is Continuity.NEW_SEQUENCE
    assert looped.tracked.reset and pipeline.admission.counts["new_sequence"] == 2


def test_a_c_arm_change_starts_a_new_sequence_at_the_next_frame_with_the_reason(engine, frames) -> None:
    pipeline = PerceptionPipeline(engine, CALIBRATION)
    assert pipeline.set_carm(CArmPose(primary_angle_deg=30.0)) is None
    pipeline.step(0.0, None, frames[0])
    assert pipeline.set_carm(CArmPose(primary_angle_deg=30.2)) is None  # within the read-out tolerance
    assert not pipeline.step(0.067, None, frames[1]).tracked.reset
    assert pipeline.set_carm(CArmPose(primary_angle_deg=45.0)) == "C-arm moved: primary_angle_deg 30 -> 45"
    moved = pipeline.step(0.133, None, frames[2])
    assert isinstance(moved, FrameResult) and moved.tracked.reset
    assert not moved.estimate.annulus_valid and "C-arm moved" in moved.estimate.annulus_reason
    assert not pipeline.step(0.2, None, frames[3]).tracked.reset  # applied once


def test_detections_made_elsewhere_take_the_same_stamp_rules(frames) -> None:
    pipeline = PerceptionPipeline(None, CALIBRATION)
    xy, vis = np.full((11, 2), 100.0), np.ones(11)
    detections = Detections(xy, vis, np.ones(3), "truth-noise")
    assert isinstance(pipeline.step_detections(0.0, detections, 256), FrameResult)
    late = pipeline.step_detections(0.0, detections, 256)
    assert isinstance(late, UnprocessedFrame) and late.admission.rule == "out_of_order"
    with pytest.raises(RuntimeError, match="no engine"):
        pipeline.step(1.0, None, frames[0])


def test_every_estimate_carries_the_calibration_and_its_scale_for_the_frame_width(engine, frames) -> None:
    calibration = Calibration(0.4, 512, False, "default imager_pixel_spacing_mm 0.6 (not given)")
    result = PerceptionPipeline(engine, calibration).step(0.0, None, frames[0])  # a 256 px wide frame
    assert isinstance(result, FrameResult) and result.estimate.mm_per_px == pytest.approx(0.8)
    assert not result.estimate.calibrated and result.estimate.calibration_source.startswith("default")


def test_a_cropped_screen_capture_gives_keypoints_in_the_input_images_pixels(engine, frames) -> None:
    screen = np.zeros((300, 400), np.uint8)  # the fluoroscopy image at (100, 30) on a black screen
    screen[30:286, 100:356] = frames[0]
    fixed = PerceptionPipeline(engine, CALIBRATION, roi=RegionOfInterest(Box(100, 30, 256, 256)))
    found = PerceptionPipeline(engine, CALIBRATION, roi=RegionOfInterest(auto=True))
    alone = PerceptionPipeline(engine, CALIBRATION).step(0.0, None, frames[0])
    for pipeline in (fixed, found):
        result = pipeline.step(0.0, None, screen)
        assert isinstance(result, FrameResult) and isinstance(alone, FrameResult)
        np.testing.assert_allclose(
            result.detections.xy_px, alone.detections.xy_px + np.array([100, 30]), atol=1e-6
        )
        assert result.estimate.mm_per_px == 0.5  # the scale of the cropped image


def test_a_refinement_engine_reads_the_frame_edges_again_in_the_input_images_pixels(engine) -> None:
    sim = ProcedureSimulator(3, image_size=256)
    sim.place(DeliveryState(4.0, 15.0))  # the valve half out: both frame edges seen
    frame = sim.step().image
    screen = np.zeros((300, 400), np.uint8)
    screen[30:286, 100:356] = frame
    roi = RegionOfInterest(Box(100, 30, 256, 256))
    plain = PerceptionPipeline(engine, CALIBRATION, roi=roi).step(0.0, None, screen)
    refined = PerceptionPipeline(engine, CALIBRATION, roi=roi, refinements=[Refinement(VALVE, engine)]).step(
        0.0, None, screen
    )
    assert isinstance(plain, FrameResult) and isinstance(refined, FrameResult)
    first = engine.infer(frame)
    assert (first.visibility[[Kp.FE1, Kp.FE2]] > 0.5).all()
    expected = refine(engine, frame, first, CALIBRATION.for_width(256)).xy_px + np.array([100, 30])
    np.testing.assert_allclose(refined.detections.xy_px, expected, atol=1e-6)
    assert not np.allclose(
        refined.detections.xy_px[[Kp.FE1, Kp.FE2]], plain.detections.xy_px[[Kp.FE1, Kp.FE2]]
    )
    others = [k for k in range(len(Kp)) if k not in (Kp.FE1, Kp.FE2)]
    np.testing.assert_allclose(refined.detections.xy_px[others], plain.detections.xy_px[others], atol=1e-6)
