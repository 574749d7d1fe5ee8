"""Pure conversions of the ROS shell: results -> messages, stamps, poses, parameter specs."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from std_msgs.msg import Header
from tavi_msgs.msg import Guidance, Keypoint

from tavi_perception.controller import Command, Phase
from tavi_perception.geometry.estimator import GuidanceEstimate
from tavi_perception.keypoints import KEYPOINT_NAMES, Kp
from tavi_perception.ros.messages import (
    annulus_pose,
    command_to_msg,
    guidance_sample,
    guidance_to_msg,
    invalid_guidance,
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


def test_invalid_guidance_marks_every_block_invalid_with_the_reason() -> None:
    msg = invalid_guidance(_header(), "bad image: truncated")
    assert not msg.valid and msg.tracking_state == Guidance.TRACKING_LOST
    for block in ("annulus", "catheter", "stent", "extraction"):
        assert not getattr(msg, f"{block}_valid")
        assert getattr(msg, f"{block}_reason") == "bad image: truncated"
    assert math.isnan(msg.delivery_tilt_deg)  # unknown, not level


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


def test_annulus_pose_is_in_metres_of_the_image_frame_rotated_by_the_annulus_angle() -> None:
    g = Guidance(annulus_origin_x_px=100.0, annulus_origin_y_px=200.0, annulus_angle_deg=90.0, mm_per_px=0.5)
    pose = annulus_pose(_header(), g)
    assert pose.header == _header()
    assert (pose.pose.position.x, pose.pose.position.y) == pytest.approx((0.05, 0.1))
    q = pose.pose.orientation
    assert (q.z, q.w) == pytest.approx((math.sin(math.pi / 4), math.cos(math.pi / 4)))


def test_tip_pose_points_along_the_delivery_axis() -> None:
    xy = np.zeros((11, 2))
    xy[Kp.CD], xy[Kp.CT] = (10.0, 10.0), (10.0, 20.0)  # CD -> CT points down the image (+y)
    q = tip_pose(_header(), xy, 1.0).pose.orientation
    assert 2 * math.atan2(q.z, q.w) == pytest.approx(math.pi / 2)


def test_markers_delete_what_is_invalid_and_skip_lost_points() -> None:
    state = np.array([2] * 10 + [0], dtype=np.uint8)
    array = markers(_header(), np.zeros((11, 2)), state, Guidance(mm_per_px=0.3))
    points, axis, label = array.markers
    assert len(points.points) == 1
    assert axis.action == axis.DELETE and label.action == label.DELETE


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
