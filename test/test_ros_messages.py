"""Pure conversions of the ROS shell: results -> messages, stamps, poses, parameter specs."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from guidance_data import level_annulus
from std_msgs.msg import Header
from tavi_msgs.msg import Guidance, Keypoint

from tavi_perception.controller import Command, Phase
from tavi_perception.geometry.frames import AnnulusFrame, annulus_frame_from_keypoints
from tavi_perception.guidance import GuidanceEstimate, annulus_fields
from tavi_perception.keypoints import KEYPOINT_NAMES, Kp
from tavi_perception.ros.messages import (
    METRIC_FRAME_ID,
    UNMEASURED_VARIANCE,
    annulus_pose,
    annulus_transform,
    command_to_msg,
    guidance_from_msg,
    guidance_row,
    guidance_sample,
    guidance_to_msg,
    keypoints_to_msg,
    markers,
    s_to_stamp,
    stamp_ns,
    stamp_to_s,
    tip_pose,
)
from tavi_perception.ros.params import ParamSpec


def _header() -> Header:
    return Header(stamp=s_to_stamp(1_700_000_000.123456789), frame_id="fluoro")


def test_every_guidance_field_but_header_and_latency_mirrors_the_estimate() -> None:
    estimate_fields = {f.name for f in dataclasses.fields(GuidanceEstimate)}
    assert estimate_fields == set(Guidance.get_fields_and_field_types()) - {"header", "latency_ms"}


def test_guidance_copies_the_estimate_and_keeps_the_header() -> None:
    est = GuidanceEstimate(
        valid=True, tracking_state=0, annulus_valid=True, annulus_source=2, tip_depth_mm=3.5
    )
    msg = guidance_to_msg(est, _header(), latency_ms=6.25)
    assert msg.header == _header()
    assert msg.valid and msg.annulus_source == Guidance.ANNULUS_PIGTAIL_BOUND and msg.tip_depth_mm == 3.5
    assert msg.latency_ms == 6.25
    assert math.isnan(msg.depth_mm)  # an invalid number stays NaN, never a plausible 0


def test_a_refused_frame_marks_every_block_invalid_with_the_reason_and_keeps_the_target() -> None:
    refused = GuidanceEstimate.invalid("bad image: truncated", target_depth_mm=4.5, depth_tolerance_mm=0.8)
    msg = guidance_to_msg(refused, _header(), latency_ms=3.0)
    assert not msg.valid and msg.tracking_state == Guidance.TRACKING_LOST
    for block in ("annulus", "catheter", "stent", "extraction"):
        assert not getattr(msg, f"{block}_valid")
        assert getattr(msg, f"{block}_reason") == "bad image: truncated"
    assert math.isnan(msg.delivery_tilt_deg)  # unknown, not level
    assert math.isnan(msg.depth_mm) and math.isnan(msg.depth_std_mm) and math.isnan(msg.tip_depth_mm)
    assert msg.target_depth_mm == 4.5 and msg.depth_tolerance_mm == 0.8 and msg.latency_ms == 3.0
    assert msg.annulus_y_sign == 0


def test_message_to_contract_and_row_round_trip_every_field() -> None:
    est = GuidanceEstimate(
        valid=True,
        annulus_valid=True,
        annulus_y_sign=-1,
        tip_depth_mm=3.5,
        depth_std_mm=0.4,
        calibrated=True,
        calibration_source="parameter mm_per_px",
    )
    msg = guidance_to_msg(est, _header(), latency_ms=6.25)
    back = guidance_from_msg(msg)
    for f in dataclasses.fields(GuidanceEstimate):
        mine, theirs = getattr(est, f.name), getattr(back, f.name)
        assert mine == theirs or (math.isnan(mine) and math.isnan(theirs)), f.name
    row = guidance_row(msg)
    assert row.stamp_ns == stamp_ns(_header().stamp) and row.latency_ms == 6.25
    assert row.annulus_y_sign == -1 and row.calibration_source == "parameter mm_per_px"


def test_stamps_round_trip_to_the_nanosecond() -> None:
    stamp = s_to_stamp(12.000000001)
    assert (stamp.sec, stamp.nanosec) == (12, 1)
    assert stamp_ns(stamp) == 12_000_000_001
    assert stamp_to_s(stamp) == pytest.approx(12.000000001)


def test_keypoints_are_in_schema_order_with_groups_and_states() -> None:
    xy = np.arange(22, dtype=float).reshape(11, 2)
    state = np.array([0, 1, 2] * 3 + [0, 1], dtype=np.uint8)
    msg = keypoints_to_msg(
        _header(),
        512,
        256,
        xy,
        xy * 0.5,
        np.ones(11),
        state,
        np.linspace(0, 1.2, 11),
        np.array([0.2, 1.0, 0.5]),
    )
    assert [k.name for k in msg.keypoints] == list(KEYPOINT_NAMES)
    assert [k.index for k in msg.keypoints] == list(range(11))
    assert msg.keypoints[Kp.CT].group == Keypoint.GROUP_INSTRUMENTAL
    assert msg.keypoints[Kp.PT].group == Keypoint.GROUP_CONTOUR
    assert msg.keypoints[Kp.CM].x_px == xy[Kp.CM, 0] and msg.keypoints[Kp.CM].vy_px_s == xy[Kp.CM, 1] * 0.5
    assert [k.state for k in msg.keypoints] == state.tolist()
    assert msg.keypoints[-1].visibility == 1.0  # clipped to a probability
    assert (msg.image_width, msg.image_height) == (512, 256)


def _rotate(q: object, v: tuple[float, float, float]) -> np.ndarray:
    """``v`` rotated by the unit quaternion ``q`` (geometry_msgs/Quaternion)."""
    w, u = q.w, np.array([q.x, q.y, q.z])
    v = np.asarray(v, dtype=float)
    return v + 2 * w * np.cross(u, v) + 2 * np.cross(u, np.cross(u, v))


def _annulus_guidance(frame: AnnulusFrame, mm_per_px: float, source: int) -> Guidance:
    return Guidance(annulus_source=source, mm_per_px=mm_per_px, **annulus_fields(frame))


@pytest.mark.parametrize("stj_above", [True, False], ids=["ventricle-down", "ventricle-up"])
def test_annulus_pose_and_transform_are_the_annulus_frame_in_metres_where_y_is_the_depth(
    stj_above: bool,
) -> None:
    xy = np.zeros((11, 2))
    xy[Kp.AA1], xy[Kp.AA2] = (90.0, 200.0), (110.0, 204.0)
    xy[Kp.STJ1], xy[Kp.STJ2] = (92.0, 170.0 if stj_above else 230.0), (112.0, 174.0 if stj_above else 234.0)
    xy[Kp.CT] = (104.0, 215.0)
    frame = annulus_frame_from_keypoints(xy)
    std = np.full(11, 2.0)
    g = _annulus_guidance(frame, 0.5, Guidance.ANNULUS_CONTRAST)
    metric = Header(stamp=_header().stamp, frame_id=METRIC_FRAME_ID)

    pose = annulus_pose(metric, g, xy, std)
    transform = annulus_transform(metric, g)
    assert pose.header == metric and transform.header == metric and transform.child_frame_id == "annulus"
    origin_m = np.array([pose.pose.pose.position.x, pose.pose.pose.position.y, 0.0])
    assert origin_m[:2] == pytest.approx(frame.origin_px * 0.5e-3)
    t = transform.transform
    assert (t.translation.x, t.translation.y) == pytest.approx(tuple(origin_m[:2]))
    assert t.rotation == pose.pose.pose.orientation
    # the tip expressed in the annulus TF frame: x = lateral, y = depth (metres)
    q = t.rotation
    inverse = type(q)(x=-q.x, y=-q.y, z=-q.z, w=q.w)
    tip_m = np.array([*(xy[Kp.CT] * 0.5e-3), 0.0])
    lateral_mm, depth_mm = frame.to_annulus_mm(xy[Kp.CT], 0.5)
    assert _rotate(inverse, tuple(tip_m - origin_m)) * 1e3 == pytest.approx(
        [lateral_mm, depth_mm, 0.0], abs=1e-9
    )
    assert _rotate(q, (0.0, 0.0, 1.0))[2] == pytest.approx(1.0 if frame.y_sign > 0 else -1.0)

    cov = np.array(pose.pose.covariance).reshape(6, 6)
    assert cov[0, 0] == cov[1, 1] == pytest.approx(0.25 * (4.0 + 4.0) * 0.5e-3**2)  # AA1-AA2 midpoint
    assert cov[5, 5] == pytest.approx((4.0 + 4.0) / float(np.hypot(20.0, 4.0)) ** 2)
    assert np.count_nonzero(cov) == 3


def test_a_pigtail_bound_annulus_pose_takes_the_pigtail_uncertainty_and_an_unmeasured_yaw() -> None:
    xy = np.zeros((11, 2))
    xy[Kp.AA1], xy[Kp.AA2], xy[Kp.STJ1], xy[Kp.STJ2] = (
        (90.0, 200.0),
        (110.0, 200.0),
        (90.0, 170.0),
        (110.0, 170.0),
    )
    std = np.full(11, 50.0)
    std[Kp.PT] = 1.5
    g = _annulus_guidance(annulus_frame_from_keypoints(xy), 0.4, Guidance.ANNULUS_PIGTAIL_BOUND)
    cov = np.array(annulus_pose(_header(), g, xy, std).pose.covariance).reshape(6, 6)
    assert cov[0, 0] == pytest.approx(1.5**2 * 0.4e-3**2)
    assert cov[5, 5] == UNMEASURED_VARIANCE


def test_tip_pose_points_along_the_delivery_axis_with_the_tip_uncertainty() -> None:
    xy = np.zeros((11, 2))
    xy[Kp.CD], xy[Kp.CT] = (10.0, 10.0), (10.0, 20.0)  # CD -> CT points down the image (+y)
    std = np.ones(11)
    std[Kp.CT] = 3.0
    pose = tip_pose(_header(), xy, std, 1.0)
    q = pose.pose.pose.orientation
    assert 2 * math.atan2(q.z, q.w) == pytest.approx(math.pi / 2)
    cov = np.array(pose.pose.covariance).reshape(6, 6)
    assert cov[0, 0] == pytest.approx(9.0 * 1e-6) and cov[5, 5] == pytest.approx((9.0 + 1.0) / 100.0)


def test_markers_delete_what_is_invalid_and_skip_lost_points() -> None:
    state = np.array([2] * 10 + [0], dtype=np.uint8)
    array = markers(_header(), np.zeros((11, 2)), state, Guidance(mm_per_px=0.3))
    points, axis, label = array.markers
    assert len(points.points) == 1
    assert axis.action == axis.DELETE and label.action == label.DELETE


@pytest.mark.parametrize("y_sign", [1, -1])
def test_markers_draw_the_annulus_frame_from_the_message_alone(y_sign: int) -> None:
    g = Guidance(**level_annulus((100.0, 200.0), y_sign))
    axis = markers(_header(), np.zeros((11, 2)), np.full(11, 2, dtype=np.uint8), g).markers[1]
    assert axis.action == axis.ADD
    ends_px = [(round(p.x / 0.5e-3), round(p.y / 0.5e-3)) for p in axis.points]
    assert ends_px == [(80, 200), (120, 200), (100, 200), (100, 200 + 20 * y_sign)]  # y: to the ventricle


def test_command_message_answers_the_guidance_stamp_in_the_annulus_frame() -> None:
    msg = command_to_msg(Command(1.5, 0.0, -0.7, False, "advance", Phase.ADVANCE, 3.0), _header())
    assert msg.header.stamp == _header().stamp and msg.header.frame_id == "annulus"
    assert msg.advance_speed_mm_s == 1.5 and msg.steer_rate_deg_s == -0.7 and not msg.hold


def test_guidance_sample_carries_what_the_controller_needs() -> None:
    g = Guidance(
        header=_header(),
        valid=True,
        depth_error_mm=-1.0,
        depth_tolerance_mm=0.5,
        deployment_fraction=0.2,
        delivery_tilt_deg=2.5,
    )
    sample = guidance_sample(g, received_s=42.0)
    assert sample.received_s == 42.0 and sample.valid and sample.depth_error_mm == -1.0
    assert sample.delivery_tilt_deg == 2.5
    assert sample.stamp_s == pytest.approx(stamp_to_s(_header().stamp))


def test_param_spec_checks_type_range_and_choices() -> None:
    depth = ParamSpec("target_depth_mm", 4.0, "[mm] target", -20.0, 40.0)
    assert depth.check(5.0) is None and depth.check(5) is None  # an int is a valid double
    assert "maximum" in depth.check(41.0)
    assert "expected float" in depth.check("4")
    assert "finite" in depth.check(math.nan)
    qos = ParamSpec(
        "image_qos_reliability", "best_effort", "reliability", choices=("best_effort", "reliable")
    )
    assert "not one of" in qos.check("sometimes")
    assert ParamSpec("autostart", True, "start").check(1) is not None  # no int for a bool
