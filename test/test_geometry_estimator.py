"""GuidanceEstimator: blocks, validity and reasons, pigtail binding, extraction, depth source."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from tavi_msgs.msg import Guidance

from tavi_perception.geometry.annulus import PlannedAnnulus
from tavi_perception.geometry.estimator import (
    AnnulusSource,
    DepthSource,
    GeometryParams,
    GuidanceEstimate,
    GuidanceEstimator,
    TrackingState,
)
from tavi_perception.keypoints import Kp
from tavi_perception.tracking import KeypointState, KeypointTracker, TrackedKeypoints

MM_PER_PX = 0.4
ANATOMY = (Kp.AA1, Kp.AA2, Kp.STJ1, Kp.STJ2)
STENT = (Kp.FE1, Kp.FE2)


def _scene() -> np.ndarray:
    """Annulus along +x at y = 300 (60 px = 24 mm), STJ above; tip 10 px deep (4 mm), 2.5 px lateral."""
    xy = np.zeros((11, 2))
    xy[Kp.AA1], xy[Kp.AA2] = (200, 300), (260, 300)
    xy[Kp.STJ1], xy[Kp.STJ2] = (205, 240), (255, 240)
    xy[Kp.CP], xy[Kp.CM], xy[Kp.CD], xy[Kp.CT] = (232.5, 160), (232.5, 200), (232.5, 250), (232.5, 310)
    xy[Kp.PT] = (215, 290)
    xy[Kp.FE1], xy[Kp.FE2] = (215, 312), (245, 312)
    return xy


def _tracked(
    t_s: float,
    xy: np.ndarray,
    lost: tuple[Kp, ...] = (),
    predicted: tuple[Kp, ...] = (),
    predicted_for_s: float = 0.1,
    uncertain: tuple[Kp, ...] = (),
    young: tuple[Kp, ...] = (),
) -> TrackedKeypoints:
    state = np.full(11, KeypointState.MEASURED, dtype=np.uint8)
    since = np.zeros(11)
    for kp in predicted:
        state[kp], since[kp] = KeypointState.PREDICTED, predicted_for_s
    for kp in lost:
        state[kp], since[kp] = KeypointState.LOST, math.inf
    return TrackedKeypoints(
        t_s=t_s,
        xy_px=xy.copy(),
        velocity_px_s=np.zeros((11, 2)),
        std_px=np.where(np.isin(np.arange(11), uncertain), 6.0, 0.5),
        state=state,
        visibility=np.ones(11),
        since_measured_s=since,
        rejected=np.zeros(11, dtype=bool),
        hits=np.where(state == KeypointState.LOST, 0, np.where(np.isin(np.arange(11), young), 1, 10)),
    )


def _estimator(learned_anchor: bool = True, **overrides) -> GuidanceEstimator:
    """An estimator; with ``learned_anchor`` it has seen contrast-free frames of the scene (times < 0)
    with CT and CP measured, so the CT-CP distance is learned (CD withheld: nothing else is learned)."""
    params = {"cp_cd_closed_mm": 36.0, "target_depth_mm": 4.0} | overrides
    est = GuidanceEstimator(GeometryParams(**params))
    if learned_anchor:
        for i in range(est.params.reference_learn_frames):
            t_s = -2.0 + 0.1 * i
            est.update(t_s, _tracked(t_s, _scene(), lost=(*ANATOMY, *STENT, Kp.CD)), MM_PER_PX)
    return est


def _bind(est: GuidanceEstimator, xy: np.ndarray, frames: int = 5) -> float:
    """Feed contrast frames before deployment (no frame edges); returns the next time."""
    for i in range(frames):
        est.update(i * 0.1, _tracked(i * 0.1, xy, lost=STENT), MM_PER_PX)
    return frames * 0.1


def test_estimate_fields_mirror_the_guidance_message_and_copy_into_it() -> None:
    names = [f.name for f in dataclasses.fields(GuidanceEstimate)]
    message_fields = set(Guidance.get_fields_and_field_types()) - {"header", "latency_ms"}
    assert set(names) == message_fields
    estimate = _estimator().update(0.0, _tracked(0.0, _scene(), lost=STENT), MM_PER_PX)
    msg = Guidance()
    for name in names:
        setattr(msg, name, getattr(estimate, name))
    assert msg.valid and msg.tip_depth_mm == pytest.approx(4.0)


def test_enum_values_equal_the_message_constants() -> None:
    assert [TrackingState.OK, TrackingState.DEGRADED, TrackingState.LOST] == [
        Guidance.TRACKING_OK,
        Guidance.TRACKING_DEGRADED,
        Guidance.TRACKING_LOST,
    ]
    assert [AnnulusSource.NONE, AnnulusSource.CONTRAST, AnnulusSource.PIGTAIL_BOUND] == [
        Guidance.ANNULUS_NONE,
        Guidance.ANNULUS_CONTRAST,
        Guidance.ANNULUS_PIGTAIL_BOUND,
    ]
    assert [DepthSource.NONE, DepthSource.TIP, DepthSource.STENT] == [
        Guidance.DEPTH_SOURCE_NONE,
        Guidance.DEPTH_SOURCE_TIP,
        Guidance.DEPTH_SOURCE_STENT,
    ]


def test_contrast_annulus_gives_tip_depth_and_valid_guidance() -> None:
    e = _estimator(target_depth_mm=3.0).update(0.0, _tracked(0.0, _scene(), lost=STENT), MM_PER_PX)
    assert e.valid and e.tracking_state == TrackingState.OK and e.invalid_reason == ""
    assert e.annulus_source == AnnulusSource.CONTRAST
    assert (e.annulus_origin_x_px, e.annulus_origin_y_px) == (230.0, 300.0)
    assert e.annulus_angle_deg == pytest.approx(0.0)
    assert e.annulus_diameter_mm == pytest.approx(24.0)
    assert e.tip_depth_mm == pytest.approx(4.0)
    assert e.tip_lateral_mm == pytest.approx(1.0)
    assert e.coaxiality_deg == pytest.approx(0.0, abs=1e-6)
    assert e.depth_source == DepthSource.TIP and e.depth_mm == pytest.approx(4.0)
    assert e.depth_error_mm == pytest.approx(1.0)
    assert not e.stent_valid and "FE1" in e.stent_reason
    assert math.isnan(e.stent_mean_depth_mm)


def test_pigtail_binding_carries_the_annulus_through_washout_under_translation() -> None:
    est = _estimator()
    t = _bind(est, _scene())
    shifted = _scene() + np.array([6.0, -9.0])
    e = est.update(t, _tracked(t, shifted, lost=ANATOMY + STENT), MM_PER_PX)
    assert e.annulus_valid and e.annulus_source == AnnulusSource.PIGTAIL_BOUND
    assert (e.annulus_origin_x_px, e.annulus_origin_y_px) == pytest.approx((236.0, 291.0))
    assert e.annulus_angle_deg == pytest.approx(0.0)
    assert e.annulus_diameter_mm == pytest.approx(24.0)
    assert e.valid and e.tip_depth_mm == pytest.approx(4.0) and e.tip_lateral_mm == pytest.approx(1.0)


def test_without_contrast_or_binding_nothing_is_valid() -> None:
    e = _estimator().update(0.0, _tracked(0.0, _scene(), predicted=ANATOMY, lost=STENT), MM_PER_PX)
    assert not e.annulus_valid and not e.valid
    assert e.annulus_source == AnnulusSource.NONE
    assert "AA1 not measured" in e.annulus_reason and "no pigtail binding" in e.annulus_reason
    assert e.invalid_reason.startswith("annulus:")
    assert not e.catheter_valid and e.catheter_reason == "annulus invalid"
    assert e.extraction_valid  # extraction does not need the annulus
    assert e.tracking_state == TrackingState.DEGRADED


def test_pigtail_missing_beyond_the_limit_loses_the_annulus_until_the_next_contrast() -> None:
    est = _estimator(pigtail_missing_max_s=0.3)
    t = _bind(est, _scene())
    washout = ANATOMY + STENT
    short = est.update(t, _tracked(t, _scene(), lost=(*washout, Kp.PT)), MM_PER_PX)
    assert not short.annulus_valid and short.annulus_source == AnnulusSource.PIGTAIL_BOUND
    assert "PT lost" in short.annulus_reason
    gone = est.update(t + 0.4, _tracked(t + 0.4, _scene(), lost=(*washout, Kp.PT)), MM_PER_PX)
    assert gone.annulus_source == AnnulusSource.NONE and "annulus lost" in gone.annulus_reason
    back = est.update(t + 0.5, _tracked(t + 0.5, _scene(), lost=washout), MM_PER_PX)
    assert not back.annulus_valid and not back.valid  # the binding is gone for good
    again = est.update(t + 0.6, _tracked(t + 0.6, _scene(), lost=STENT), MM_PER_PX)
    assert again.valid and again.annulus_source == AnnulusSource.CONTRAST


def test_briefly_coasting_pigtail_keeps_the_bound_annulus_valid() -> None:
    est = _estimator(max_predicted_s=0.2)
    t = _bind(est, _scene())
    e = est.update(t, _tracked(t, _scene(), lost=ANATOMY + STENT, predicted=(Kp.PT,)), MM_PER_PX)
    assert e.annulus_valid and e.valid


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"lost": (Kp.CT, *STENT)}, "CT lost"),
        ({"lost": STENT, "predicted": (Kp.CT,), "predicted_for_s": 0.35}, "CT coasting"),
        ({"lost": STENT, "uncertain": (Kp.CT,)}, "CT uncertain (2.4 mm"),
        ({"lost": STENT, "young": (Kp.CT,)}, "CT track not confirmed (1/3"),
    ],
)
def test_lost_long_coasted_uncertain_or_unconfirmed_tip_is_never_valid(kwargs: dict, reason: str) -> None:
    est = _estimator(max_predicted_s=0.2, max_keypoint_std_mm=2.0)
    t = _bind(est, _scene())
    e = est.update(t, _tracked(t, _scene(), **kwargs), MM_PER_PX)
    assert not e.valid and not e.catheter_valid
    assert reason in e.catheter_reason and reason in e.invalid_reason
    assert math.isnan(e.depth_error_mm) and e.depth_source == DepthSource.NONE


def test_implausible_annulus_diameter_is_invalid_with_a_reason() -> None:
    xy = _scene()
    xy[Kp.AA2] = (330, 300)  # 130 px = 52 mm
    e = _estimator().update(0.0, _tracked(0.0, xy, lost=STENT), MM_PER_PX)
    assert not e.annulus_valid and "diameter 52.0 mm outside" in e.annulus_reason


def test_tip_depth_beyond_the_sanity_limit_is_inconsistent() -> None:
    xy = _scene()
    xy[Kp.CT] = (232.5, 300 + 45 / MM_PER_PX)
    e = _estimator(anchor_consistency_mm=1e3).update(0.0, _tracked(0.0, xy, lost=STENT), MM_PER_PX)
    assert e.annulus_valid and not e.catheter_valid and not e.valid
    assert "tip depth +45.0 mm beyond" in e.catheter_reason


def test_closed_capsule_reference_follows_the_latest_closed_frames_until_the_edges_show() -> None:
    est = _estimator(
        cp_cd_closed_mm=0.0, reference_learn_frames=3, reference_lag_frames=0, valve_frame_height_mm=18.0
    )
    xy = _scene()  # CP-CD 90 px = 36 mm
    first = [est.update(i * 0.1, _tracked(i * 0.1, xy, lost=STENT), MM_PER_PX) for i in range(3)]
    assert [e.extraction_valid for e in first] == [False, False, True]
    assert "learning" in first[0].extraction_reason
    assert first[2].capsule_retraction_mm == pytest.approx(0.0)
    xy[Kp.CP] += (0, -5 / MM_PER_PX)  # advancing through the arch: CP-CD foreshortened to 41 mm
    advanced = [
        est.update(0.3 + i * 0.1, _tracked(0.3 + i * 0.1, xy, lost=STENT), MM_PER_PX) for i in range(3)
    ]
    assert advanced[-1].capsule_retraction_mm == pytest.approx(0.0)  # the closed reference followed
    xy[Kp.CD] += (0, -9 / MM_PER_PX)  # capsule pulled back 9 mm: the frame edges show
    e = est.update(0.6, _tracked(0.6, xy), MM_PER_PX)
    assert e.extraction_valid
    assert e.capsule_retraction_mm == pytest.approx(9.0)
    assert e.deployment_fraction == pytest.approx(0.5)
    later = est.update(0.7, _tracked(0.7, xy), MM_PER_PX)  # frozen while the edges are seen
    assert later.capsule_retraction_mm == pytest.approx(9.0)


def test_the_newest_closed_frames_are_left_out_of_the_reference() -> None:
    est = _estimator(cp_cd_closed_mm=0.0, reference_learn_frames=3, reference_lag_frames=2)
    xy = _scene()  # CP-CD 36 mm
    early = [est.update(i * 0.1, _tracked(i * 0.1, xy, lost=STENT), MM_PER_PX) for i in range(5)]
    assert [e.extraction_valid for e in early] == [False] * 4 + [True]  # 3 frames plus the 2 left out
    xy[Kp.CD] += (0, -1.5 / MM_PER_PX)  # retracting, edges not detected yet
    creeping = [
        est.update(0.5 + i * 0.1, _tracked(0.5 + i * 0.1, xy, lost=STENT), MM_PER_PX) for i in range(2)
    ]
    assert [e.capsule_retraction_mm for e in creeping] == pytest.approx([1.5, 1.5])  # not absorbed


def test_depth_source_switches_to_the_stent_once_deployment_starts_and_stays() -> None:
    est = _estimator(cp_cd_closed_mm=36.0, deployment_start_mm=1.0)
    xy = _scene()
    before = est.update(0.0, _tracked(0.0, xy, lost=STENT), MM_PER_PX)
    assert before.depth_source == DepthSource.TIP
    xy[Kp.CD] += (0, -5 / MM_PER_PX)
    during = est.update(0.1, _tracked(0.1, xy), MM_PER_PX)
    assert during.valid and during.depth_source == DepthSource.STENT
    assert during.depth_mm == pytest.approx(4.8) and during.stent_asymmetry_mm == pytest.approx(0.0)
    edges_missing = est.update(0.2, _tracked(0.2, xy, lost=STENT), MM_PER_PX)
    assert not edges_missing.valid and edges_missing.catheter_valid  # the tip is not used any more
    assert edges_missing.invalid_reason.startswith("stent:")


def test_stale_tracking_invalidates_everything() -> None:
    e = _estimator(max_staleness_s=0.2).update(1.0, _tracked(0.5, _scene()), MM_PER_PX)
    assert not any((e.valid, e.annulus_valid, e.catheter_valid, e.stent_valid, e.extraction_valid))
    assert "stale" in e.invalid_reason and e.tracking_state == TrackingState.LOST


@pytest.mark.parametrize("scale", [0.0, -0.3, math.nan])
def test_unusable_scale_invalidates_everything(scale: float) -> None:
    e = _estimator().update(0.0, _tracked(0.0, _scene()), scale)
    assert not e.valid and "mm_per_px" in e.invalid_reason and "mm_per_px" in e.annulus_reason


def test_time_going_backwards_is_refused_without_a_new_sequence() -> None:
    est = _estimator()
    _bind(est, _scene())
    with pytest.raises(ValueError, match="start_sequence"):
        est.update(0.0, _tracked(0.0, _scene(), lost=ANATOMY + STENT), MM_PER_PX)


def test_a_new_sequence_drops_the_binding() -> None:
    est = _estimator()
    _bind(est, _scene())
    est.start_sequence()
    e = est.update(0.0, _tracked(0.0, _scene(), lost=ANATOMY + STENT), MM_PER_PX)
    assert not e.annulus_valid and "no pigtail binding" in e.annulus_reason


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="annulus diameter range"):
        GeometryParams(annulus_diameter_min_mm=40.0)


def test_contrast_annulus_far_from_the_carried_one_is_inconsistent_until_the_binding_follows() -> None:
    est = _estimator(annulus_consistency_mm=3.0, binding_average_s=0.2)
    t = _bind(est, _scene())
    moved = _scene()
    for kp in ANATOMY:
        moved[kp] += (0.0, 5.0 / MM_PER_PX)  # the annulus detected 5 mm lower, PT where it was
    first = est.update(t, _tracked(t, moved, lost=STENT), MM_PER_PX)
    assert not first.annulus_valid and "5.0 mm apart" in first.annulus_reason and not first.valid
    later = [
        est.update(t + 0.1 * i, _tracked(t + 0.1 * i, moved, lost=STENT), MM_PER_PX) for i in range(1, 20)
    ]
    assert later[-1].annulus_valid and later[-1].annulus_source == AnnulusSource.CONTRAST


def test_frame_edges_far_from_the_tip_are_inconsistent() -> None:
    xy = _scene()
    xy[Kp.CD] += (0, -5 / MM_PER_PX)  # deploying
    xy[Kp.FE1] += (0, 8 / MM_PER_PX)
    xy[Kp.FE2] += (0, 8 / MM_PER_PX)
    e = _estimator(anchor_consistency_mm=1e3).update(0.0, _tracked(0.0, xy), MM_PER_PX)
    assert not e.stent_valid and "from the tip depth" in e.stent_reason


def test_frame_edges_seen_with_the_capsule_closed_do_not_start_deployment() -> None:
    est = _estimator(stent_min_retraction_mm=1.0)
    e = est.update(0.0, _tracked(0.0, _scene()), MM_PER_PX)  # FE detected, retraction 0
    assert not e.stent_valid and "capsule closed" in e.stent_reason
    assert e.valid and e.depth_source == DepthSource.TIP


def test_frame_edges_with_an_unknown_capsule_state_before_deployment_are_not_used() -> None:
    est = _estimator(cp_cd_closed_mm=0.0, reference_learn_frames=5)
    e = est.update(0.0, _tracked(0.0, _scene()), MM_PER_PX)
    assert not e.extraction_valid and not e.stent_valid
    assert "capsule state unknown" in e.stent_reason and e.depth_source == DepthSource.TIP


def test_tip_away_from_its_learned_distance_to_the_anchor_cp_is_a_misdetection() -> None:
    est = _estimator(anchor_consistency_mm=4.0)
    xy = _scene()
    t = _bind(est, xy)
    jumped = xy.copy()
    jumped[Kp.CT] += (0, -30)  # 12 mm nearer CP, e.g. the detector locked onto another feature
    out = est.update(t, _tracked(t, jumped, lost=STENT), MM_PER_PX)
    assert not out.catheter_valid and not out.valid
    assert "from CP" in out.catheter_reason and out.invalid_reason.startswith("catheter:")
    within = xy.copy()
    within[Kp.CT] += (0, 7.5)  # 3 mm deeper: inside the tolerance, a real advance
    assert est.update(t + 0.1, _tracked(t + 0.1, within, lost=STENT), MM_PER_PX).catheter_valid


def test_tip_is_not_valid_before_its_anchor_distance_is_learned_and_unchecked_without_cp() -> None:
    est = _estimator()
    xy = _scene()
    jumped = xy.copy()
    jumped[Kp.CT] += (0, -30)
    t = _bind(est, xy)
    no_cp = est.update(t, _tracked(t, jumped, lost=(*STENT, Kp.CP)), MM_PER_PX)
    assert no_cp.catheter_valid  # unverifiable is not inconsistent; CP missing only stops the extraction
    fresh = _estimator(learned_anchor=False).update(0.0, _tracked(0.0, jumped, lost=STENT), MM_PER_PX)
    assert not fresh.catheter_valid and "learning the CT-CP distance" in fresh.catheter_reason


def test_frame_edges_whose_centre_is_not_at_the_tip_distance_from_cp_are_rejected() -> None:
    est = _estimator(cp_cd_closed_mm=36.0, deployment_start_mm=1.0)
    xy = _scene()
    t = _bind(est, xy)
    xy[Kp.CD] += (0, -5 / MM_PER_PX)  # 5 mm retraction
    edges_off = xy.copy()
    edges_off[[Kp.FE1, Kp.FE2]] += (0, -40)  # both edges 16 mm towards CP, the tip still in place
    out = est.update(t, _tracked(t, edges_off, lost=(Kp.CT,)), MM_PER_PX)
    assert not out.stent_valid and "frame-edge midpoint" in out.stent_reason
    assert out.depth_source != DepthSource.STENT  # a rejected edge pair does not start deployment
    assert est.update(t + 0.1, _tracked(t + 0.1, xy), MM_PER_PX).stent_valid


def test_a_retraction_without_valid_frame_edges_does_not_start_deployment() -> None:
    est = _estimator(cp_cd_closed_mm=36.0, deployment_start_mm=1.0)
    xy = _scene()
    xy[Kp.CD] += (0, -5 / MM_PER_PX)  # looks like 5 mm retraction (or a CD misdetected towards CP)
    for i in range(5):
        out = est.update(0.1 * i, _tracked(0.1 * i, xy, lost=STENT), MM_PER_PX)
        assert out.extraction_valid and out.capsule_retraction_mm == pytest.approx(5.0)
        assert out.depth_source == DepthSource.TIP and out.valid
    started = est.update(0.5, _tracked(0.5, xy), MM_PER_PX)
    assert started.depth_source == DepthSource.STENT


def test_anchor_distance_is_learned_without_contrast_and_recovers_from_early_misdetections() -> None:
    est = _estimator(learned_anchor=False, reference_learn_frames=5, anchor_window_frames=40)
    xy = _scene()
    t = _bind(est, xy)  # contrast frames: the annulus is bound, nothing is learned
    out = est.update(t, _tracked(t, xy, lost=(*ANATOMY, *STENT)), MM_PER_PX)
    assert out.annulus_valid and not out.catheter_valid and "(1/5)" in out.catheter_reason
    wrong = xy.copy()
    wrong[Kp.CT] += (0, -30)
    for i in range(1, 5):  # learned from a tip misdetected in the first contrast-free frames
        est.update(t + 0.1 * i, _tracked(t + 0.1 * i, wrong, lost=(*ANATOMY, *STENT)), MM_PER_PX)
    t += 0.5
    verdicts = [
        est.update(t + 0.1 * i, _tracked(t + 0.1 * i, xy, lost=(*ANATOMY, *STENT)), MM_PER_PX).catheter_valid
        for i in range(12)
    ]
    assert not verdicts[0]  # the true tip looks inconsistent with what was learned ...
    assert verdicts[-1] and all(verdicts[6:])  # ... until correct frames are the majority of the window


def test_a_restarted_pigtail_track_drops_the_binding_until_the_next_contrast() -> None:
    est = _estimator()
    xy = _scene()
    t = _bind(est, xy)
    washout = est.update(t, _tracked(t, xy, lost=(*ANATOMY, *STENT)), MM_PER_PX)
    assert washout.annulus_valid and washout.annulus_source == AnnulusSource.PIGTAIL_BOUND
    jumped = xy.copy()
    jumped[Kp.PT] += (40, 0)  # the detector jumped 16 mm and stayed: the tracker restarted PT there
    restarted = _tracked(t + 0.1, jumped, lost=(*ANATOMY, *STENT))
    restarted.hits[Kp.PT] = 3
    out = est.update(t + 0.1, restarted, MM_PER_PX)
    assert not out.annulus_valid and not out.valid and "PT track restarted" in out.annulus_reason
    assert est.update(t + 0.2, _tracked(t + 0.2, jumped, lost=STENT), MM_PER_PX).annulus_valid  # contrast


def test_delivery_tilt_comes_from_cp_ct_then_the_frame_edges_and_is_unknown_without_either() -> None:
    est = _estimator()
    xy = _scene()
    assert est.update(0.0, _tracked(0.0, xy, lost=STENT), MM_PER_PX).delivery_tilt_deg == pytest.approx(0.0)
    turned = xy.copy()  # turn CP about CT by +5 deg in the image (from +x towards +y): CP->CT turns too
    a = math.radians(5.0)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    turned[Kp.CP] = xy[Kp.CT] + rot @ (xy[Kp.CP] - xy[Kp.CT])
    e = est.update(0.1, _tracked(0.1, turned, lost=STENT), MM_PER_PX)
    assert e.catheter_valid and e.delivery_tilt_deg == pytest.approx(5.0)
    no_cp = est.update(0.2, _tracked(0.2, xy, lost=(*STENT, Kp.CP)), MM_PER_PX)
    assert no_cp.catheter_valid and math.isnan(no_cp.delivery_tilt_deg)
    no_annulus = _estimator().update(0.0, _tracked(0.0, xy, lost=(*STENT, *ANATOMY, Kp.PT)), MM_PER_PX)
    assert math.isnan(no_annulus.delivery_tilt_deg)


def test_a_deployment_whose_frame_edges_stay_gone_is_released_back_to_the_tip() -> None:
    est = _estimator(cp_cd_closed_mm=36.0, deployment_start_mm=1.0, deployment_release_s=3.0)
    xy = _scene()
    xy[Kp.CD] += (0, -5 / MM_PER_PX)  # 5 mm retracted, frame edges in view: deployment latches
    assert est.update(0.0, _tracked(0.0, xy), MM_PER_PX).depth_source == DepthSource.STENT
    held = est.update(2.9, _tracked(2.9, xy, lost=STENT), MM_PER_PX)
    assert not held.valid and held.invalid_reason.startswith("stent:")  # within the release time: holds
    released = est.update(3.1, _tracked(3.1, xy, lost=STENT), MM_PER_PX)
    assert "latch released" in released.stent_reason
    assert released.valid and released.depth_source == DepthSource.TIP
    assert released.depth_mm == pytest.approx(4.0)
    back = est.update(3.2, _tracked(3.2, xy), MM_PER_PX)  # edges return with the capsule retracted
    assert back.valid and back.depth_source == DepthSource.STENT


def _washout(est: GuidanceEstimator, t_s: float, xy: np.ndarray, frames: int = 5) -> float:
    """Contrast-free frames with PT usable (the binding carried); returns the next time."""
    for i in range(frames):
        t = t_s + 0.1 * i
        assert est.update(t, _tracked(t, xy, lost=ANATOMY + STENT), MM_PER_PX).valid
    return t_s + 0.1 * frames


def _after_gap(t_s: float, xy: np.ndarray, frame: int) -> TrackedKeypoints:
    """The ``frame``-th frame (0 first) after a gap: every track restarted at the gap."""
    tracked = _tracked(t_s, xy, lost=ANATOMY + STENT)
    tracked.hits = np.where(tracked.hits > 0, frame + 1, 0)
    return tracked


def test_annulus_y_sign_points_to_the_ventricle_and_the_contract_alone_rebuilds_the_frame() -> None:
    e = _estimator().update(0.0, _tracked(0.0, _scene(), lost=STENT), MM_PER_PX)
    assert e.annulus_y_sign == 1  # x axis +x, STJ above: the ventricle is image +y, x turned by +90°
    frame = e.annulus_frame()
    assert frame.to_annulus_mm(_scene()[Kp.CT], MM_PER_PX) == pytest.approx(
        (e.tip_lateral_mm, e.tip_depth_mm)
    )
    flipped = _scene() * np.array([1.0, -1.0])  # mirrored top-down: STJ below the annulus
    f = _estimator(learned_anchor=False).update(0.0, _tracked(0.0, flipped, lost=STENT), MM_PER_PX)
    assert f.annulus_y_sign == -1
    np.testing.assert_allclose(f.annulus_frame().y_axis, (0.0, -1.0), atol=1e-12)
    assert GuidanceEstimate().annulus_frame() is None


def test_depth_std_is_propagated_from_the_depth_point_and_the_annulus_origin() -> None:
    est = _estimator()
    tracked = _tracked(0.0, _scene(), lost=STENT)
    tracked.std_px[[Kp.AA1, Kp.AA2, Kp.CT, Kp.PT]] = (1.0, 2.0, 1.5, 0.8)
    e = est.update(0.0, tracked, MM_PER_PX)
    # origin = (AA1 + AA2) / 2: variance (1² + 2²) / 4 per axis; the tip: 1.5²
    assert e.depth_std_mm == pytest.approx(math.sqrt(1.25 + 2.25) * MM_PER_PX)
    t = _bind(est, _scene())
    washed = _tracked(t, _scene(), lost=ANATOMY + STENT)
    washed.std_px[[Kp.CT, Kp.PT]] = (1.5, 0.8)
    e = est.update(t, washed, MM_PER_PX)
    assert e.annulus_source == AnnulusSource.PIGTAIL_BOUND  # origin = PT + offset: PT's variance
    assert e.depth_std_mm == pytest.approx(math.sqrt(0.8**2 + 1.5**2) * MM_PER_PX)
    lost = est.update(t + 0.1, _tracked(t + 0.1, _scene(), lost=(*ANATOMY, *STENT, Kp.CT)), MM_PER_PX)
    assert not lost.valid and math.isnan(lost.depth_std_mm)


@pytest.mark.parametrize("gap_s", [0.6, 30.0])
def test_a_contrast_free_pedal_gap_keeps_the_annulus_and_guidance_returns_within_a_few_frames(
    gap_s: float,
) -> None:
    est = _estimator()
    t = _washout(est, _bind(est, _scene()), _scene())
    before = est.update(t, _tracked(t, _scene(), lost=ANATOMY + STENT), MM_PER_PX)
    est.resume_after_gap(gap_s)
    t += gap_s
    after = [est.update(t + 0.1 * i, _after_gap(t + 0.1 * i, _scene(), i), MM_PER_PX) for i in range(5)]
    assert [e.valid for e in after] == [False, False, True, True, True]  # PT and CT confirmed at 3 hits
    assert "held over a" in after[0].annulus_reason and not after[0].annulus_valid
    assert after[2].annulus_source == AnnulusSource.PIGTAIL_BOUND
    assert (after[2].annulus_origin_x_px, after[2].annulus_origin_y_px) == pytest.approx(
        (before.annulus_origin_x_px, before.annulus_origin_y_px)
    )
    assert after[2].tip_depth_mm == pytest.approx(4.0)


def test_a_pigtail_back_far_from_where_it_was_loses_the_held_annulus() -> None:
    est = _estimator(reattach_tolerance_mm=3.0)
    t = _washout(est, _bind(est, _scene()), _scene())
    est.resume_after_gap(5.0)
    t += 5.0
    moved = _scene() + np.array([8.0 / MM_PER_PX, 0.0])  # the table moved 8 mm
    after = [est.update(t + 0.1 * i, _after_gap(t + 0.1 * i, moved, i), MM_PER_PX) for i in range(6)]
    assert not any(e.valid or e.annulus_valid for e in after)
    assert "8.0 mm from its positions before the gap" in after[2].annulus_reason
    assert "no pigtail binding" in after[-1].annulus_reason  # needs contrast


def test_the_pigtail_anywhere_on_its_path_before_the_gap_re_attaches_the_annulus() -> None:
    est = _estimator()
    t = _bind(est, _scene())
    for i in range(20):  # the root moves 6 mm up and down with the heart: PT with it
        shift = np.array([0.0, 6.0 / MM_PER_PX * abs(math.sin(0.3 * i))])
        est.update(t + 0.1 * i, _tracked(t + 0.1 * i, _scene() + shift, lost=ANATOMY + STENT), MM_PER_PX)
    est.resume_after_gap(10.0)
    t += 12.0
    # back where it was 2 s before the gap: 3.3 mm from its last position, beyond the 3 mm tolerance
    after = [est.update(t + 0.1 * i, _after_gap(t + 0.1 * i, _scene(), i), MM_PER_PX) for i in range(3)]
    assert after[2].valid and after[2].tip_depth_mm == pytest.approx(4.0)


def test_a_pigtail_not_found_soon_after_the_gap_loses_the_held_annulus() -> None:
    est = _estimator(reattach_window_s=0.5)
    t = _washout(est, _bind(est, _scene()), _scene())
    est.resume_after_gap(3.0)
    t += 3.0
    for i in range(7):
        e = est.update(
            t + 0.1 * i, _tracked(t + 0.1 * i, _scene(), lost=(*ANATOMY, *STENT, Kp.PT)), MM_PER_PX
        )
    assert "not usable within 0.5 s after the gap" in e.annulus_reason
    e = est.update(t + 0.8, _after_gap(t + 0.8, _scene(), 5), MM_PER_PX)
    assert not e.annulus_valid and "no pigtail binding" in e.annulus_reason


def test_a_gap_longer_than_the_hold_limit_loses_the_annulus() -> None:
    est = _estimator(annulus_hold_max_s=60.0)
    t = _washout(est, _bind(est, _scene()), _scene())
    est.resume_after_gap(61.0)
    t += 61.0
    e = [est.update(t + 0.1 * i, _after_gap(t + 0.1 * i, _scene(), i), MM_PER_PX) for i in range(4)][-1]
    assert not e.annulus_valid and "annulus_hold_max_s" in e.annulus_reason


def test_invalidating_the_annulus_loses_it_until_the_next_contrast() -> None:
    est = _estimator()
    t = _washout(est, _bind(est, _scene()), _scene())
    est.invalidate_annulus("C-arm angle changed")
    e = est.update(t, _tracked(t, _scene(), lost=ANATOMY + STENT), MM_PER_PX)
    assert not e.valid and "no pigtail binding (C-arm angle changed)" in e.annulus_reason
    again = est.update(t + 0.1, _tracked(t + 0.1, _scene(), lost=STENT), MM_PER_PX)
    assert again.valid and again.annulus_source == AnnulusSource.CONTRAST


def test_a_pedal_gap_through_the_real_tracker_re_attaches_the_annulus() -> None:
    tracker, est = KeypointTracker(), _estimator()
    vis = np.ones(11)
    t = 0.0
    for i in range(40):  # 10 frames of contrast, then washout
        if i == 10:
            vis[list(ANATOMY)] = 0.0
        vis[list(STENT)] = 0.0
        t = 0.1 * i
        e = est.update(t, tracker.update(t, _scene(), vis), MM_PER_PX)
    assert e.valid and e.annulus_source == AnnulusSource.PIGTAIL_BOUND
    tracker.resume_after_gap(5.0)
    est.resume_after_gap(5.0)
    valid = []
    for i in range(10):
        t2 = t + 5.0 + 0.1 * i
        valid.append(est.update(t2, tracker.update(t2, _scene(), vis), MM_PER_PX).valid)
    assert valid == [False, False] + [True] * 8


def test_a_scale_change_between_frames_loses_the_annulus() -> None:
    est = _estimator()
    t = _washout(est, _bind(est, _scene()), _scene())
    e = est.update(t, _tracked(t, _scene(), lost=ANATOMY + STENT), 0.3)  # zoomed in: another field size
    assert not e.valid and "scale changed from 0.4 to 0.3 mm/px" in e.annulus_reason


def test_a_pedal_gap_during_deployment_does_not_release_the_deployment_latch() -> None:
    est = _estimator(cp_cd_closed_mm=36.0, deployment_start_mm=1.0, deployment_release_s=3.0)
    xy = _scene()
    xy[Kp.CD] += (0, -5 / MM_PER_PX)  # 5 mm retracted, frame edges in view: deployment latches
    assert est.update(0.0, _tracked(0.0, xy), MM_PER_PX).depth_source == DepthSource.STENT
    est.resume_after_gap(20.0)
    young_edges = _tracked(20.0, xy, young=STENT)  # the frame-edge tracks restart after the gap
    e = est.update(20.0, young_edges, MM_PER_PX)
    assert not e.valid and e.invalid_reason.startswith("stent:") and "latch released" not in e.stent_reason
    assert est.update(20.1, _tracked(20.1, xy), MM_PER_PX).depth_source == DepthSource.STENT


def test_a_contrast_annulus_off_the_planned_line_falls_back_to_the_pigtail_binding() -> None:
    est = _estimator()
    est.planned_annulus = PlannedAnnulus(angle_deg=2.0, tolerance_deg=8.0)
    t = _bind(est, _scene())  # the annulus along +x: 2 deg from the plan's line, bound to PT
    turned = _scene()
    turned[Kp.AA1] += (0.0, 12.0)  # AA1 misplaced: the line turns about 11 deg
    e = est.update(t, _tracked(t, turned, lost=STENT), MM_PER_PX)
    assert e.annulus_valid and e.annulus_source == AnnulusSource.PIGTAIL_BOUND
    assert e.annulus_angle_deg == pytest.approx(0.0)  # the bound annulus, not the misplaced line
    assert e.valid and e.tip_depth_mm == pytest.approx(4.0)
    est.planned_annulus = None  # without a plan the same frame is a contrast annulus
    e = est.update(t + 0.1, _tracked(t + 0.1, turned, lost=STENT), MM_PER_PX)
    assert e.annulus_source == AnnulusSource.CONTRAST and e.annulus_angle_deg == pytest.approx(-11.3, abs=0.1)


def _planned_shape(xy: np.ndarray, with_stj: bool = True) -> PlannedAnnulus:
    """The plan's shape of ``xy``'s root, placed 37 px left and 11 px up (the plan knows no position)."""
    offset = np.array([37.0, 11.0])
    hinges = (xy[[Kp.AA1, Kp.AA2]] - offset) * MM_PER_PX
    stj = (0.5 * (xy[Kp.STJ1] + xy[Kp.STJ2]) - offset) * MM_PER_PX if with_stj else None
    return PlannedAnnulus(0.0, 8.0, hinges, stj)


def test_the_plan_registered_on_the_detections_is_not_moved_by_one_misplaced_hinge_point() -> None:
    xy = _scene()
    misplaced = xy.copy()
    misplaced[Kp.AA2] += (2.0, 8.0)  # 3.2 mm towards the ventricle, inside the 8 deg tolerance
    frame = _planned_shape(xy).register(misplaced, MM_PER_PX)
    np.testing.assert_allclose(frame.origin_px, (230.0, 300.0), atol=1e-9)
    assert frame.angle_deg == pytest.approx(0.0, abs=1e-9)  # the plan's direction, not the detections'
    est = _estimator()
    est.planned_annulus = _planned_shape(xy)
    e = est.update(0.0, _tracked(0.0, misplaced, lost=STENT), MM_PER_PX)
    assert e.annulus_source == AnnulusSource.CONTRAST and e.tip_depth_mm == pytest.approx(4.0)
    est.planned_annulus = None  # read off the detections, the tip reads 1.7 mm shallower
    e = est.update(0.1, _tracked(0.1, misplaced, lost=STENT), MM_PER_PX)
    assert e.tip_depth_mm == pytest.approx(2.3, abs=0.01)


def test_a_line_off_the_plan_is_taken_when_two_of_three_landmarks_agree_with_the_registered_shape() -> None:
    xy = _scene()
    turned = xy.copy()
    turned[Kp.AA2] += (0.0, 12.0)  # 4.8 mm towards the ventricle: the line turns 11.3 deg, beyond 8 deg
    plan = dataclasses.replace(_planned_shape(xy), landmark_tolerance_mm=2.0)
    assert plan.agreeing_landmarks(turned, MM_PER_PX) == 2  # AA1 and the STJ centre, not AA2
    est = _estimator()
    est.planned_annulus = plan
    e = est.update(0.0, _tracked(0.0, turned, lost=STENT), MM_PER_PX)
    assert e.annulus_source == AnnulusSource.CONTRAST and e.valid
    assert e.annulus_angle_deg == pytest.approx(0.0, abs=1e-9) and e.tip_depth_mm == pytest.approx(4.0)
    est = _estimator()  # the line check alone (tolerance 0) does not take the frame
    est.planned_annulus = dataclasses.replace(plan, landmark_tolerance_mm=0.0)
    e = est.update(0.0, _tracked(0.0, turned, lost=STENT), MM_PER_PX)
    assert not e.annulus_valid and "contrast annulus line +11.3 deg from the plan's" in e.annulus_reason


def test_a_line_off_the_plan_with_two_landmarks_misplaced_apart_is_not_taken() -> None:
    xy = _scene()
    misplaced = xy.copy()
    misplaced[Kp.AA2] += (0.0, 12.0)  # across the line
    misplaced[[Kp.STJ1, Kp.STJ2]] += (15.0, 0.0)  # along it: 6 mm
    plan = dataclasses.replace(_planned_shape(xy), landmark_tolerance_mm=2.0)
    assert plan.agreeing_landmarks(misplaced, MM_PER_PX) == 1
    assert plan.problem(11.3, misplaced, MM_PER_PX) is not None
    assert plan.problem(7.0, misplaced, MM_PER_PX) is None  # within the line tolerance: taken as before
    without_stj = dataclasses.replace(_planned_shape(xy, with_stj=False), landmark_tolerance_mm=2.0)
    assert without_stj.agreeing_landmarks(xy, MM_PER_PX) == 0  # two landmarks cannot outvote each other


def test_without_an_stj_in_the_plan_the_registered_line_runs_through_the_hinge_points_mean() -> None:
    xy = _scene()
    misplaced = xy.copy()
    misplaced[Kp.AA2] += (0.0, 8.0)
    misplaced[Kp.STJ1] += (0.0, 30.0)  # the STJ is not used
    frame = _planned_shape(xy, with_stj=False).register(misplaced, MM_PER_PX)
    np.testing.assert_allclose(frame.origin_px, (230.0, 304.0), atol=1e-9)
    assert frame.angle_deg == pytest.approx(0.0, abs=1e-9)


def test_registration_pairs_the_hinge_points_by_direction_when_the_image_x_order_differs() -> None:
    xy = _scene()
    plan = _planned_shape(xy)
    swapped = PlannedAnnulus(plan.angle_deg, plan.tolerance_deg, plan.hinges_mm[::-1], plan.stj_mm)
    np.testing.assert_allclose(swapped.register(xy, MM_PER_PX).origin_px, (230.0, 300.0), atol=1e-9)


def test_a_contrast_annulus_off_the_planned_line_without_a_binding_is_invalid_with_the_reason() -> None:
    est = _estimator()
    est.planned_annulus = PlannedAnnulus(angle_deg=20.0, tolerance_deg=8.0)
    e = est.update(0.0, _tracked(0.0, _scene(), lost=STENT), MM_PER_PX)
    assert not e.annulus_valid and not e.valid
    assert "contrast annulus line -20.0 deg from the plan's" in e.annulus_reason
