"""Pure conversions between the ROS-free results and ROS messages (no node, no graph).

Pose conventions (``annulus_pose``, ``catheter_tip_pose``, ``markers``): the header is the input image's,
so the frame is the image frame (``fluoro``): origin at the top-left corner of the image, x right, y down,
z = x × y (into the image), in metres at the isocentre (pixels × ``mm_per_px`` / 1000). Orientations
are rotations about z: the annulus pose's x axis runs AA1 → AA2, the tip pose's x axis along the
delivery axis CD → CT.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, PoseStamped, Quaternion
from std_msgs.msg import ColorRGBA, Header
from tavi_msgs.msg import Guidance, Keypoint, KeypointArray, ManipulatorCommand
from visualization_msgs.msg import Marker, MarkerArray

from tavi_perception.controller import Command, GuidanceSample
from tavi_perception.keypoints import KEYPOINT_GROUP, KEYPOINT_NAMES, NUM_KEYPOINTS, Kp

_GUIDANCE_FIELDS = frozenset(Guidance.get_fields_and_field_types()) - {"header", "latency_ms"}


def stamp_to_s(stamp: Time) -> float:
    """A header stamp in seconds."""
    return stamp.sec + 1e-9 * stamp.nanosec


def s_to_stamp(t_s: float) -> Time:
    """Seconds to a builtin_interfaces/Time (rounded to the nanosecond)."""
    ns = round(t_s * 1e9)
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def stamp_ns(stamp: Time) -> int:
    """A header stamp in integer nanoseconds (exact, for ordering and equality)."""
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def guidance_to_msg(estimate: object, header: Header, latency_ms: float) -> Guidance:
    """Copy every Guidance field of ``estimate`` (a dataclass whose field names mirror the message)."""
    msg = Guidance(header=header, latency_ms=float(latency_ms))
    for f in dataclasses.fields(estimate):  # type: ignore[arg-type]
        if f.name in _GUIDANCE_FIELDS:
            value = getattr(estimate, f.name)
            setattr(msg, f.name, type(getattr(msg, f.name))(value))
    return msg


def invalid_guidance(header: Header, reason: str, latency_ms: float = 0.0) -> Guidance:
    """A Guidance with every block invalid and ``reason``: what a controller receives for a bad frame."""
    msg = Guidance(header=header, valid=False, tracking_state=Guidance.TRACKING_LOST, invalid_reason=reason)
    for block in ("annulus", "catheter", "stent", "extraction"):
        setattr(msg, f"{block}_reason", reason)
    msg.delivery_tilt_deg = math.nan
    msg.latency_ms = float(latency_ms)
    return msg


def guidance_sample(msg: Guidance, received_s: float) -> GuidanceSample:
    """The fields the reference controller acts on."""
    return GuidanceSample(
        received_s=received_s,
        stamp_s=stamp_to_s(msg.header.stamp),
        valid=bool(msg.valid),
        invalid_reason=msg.invalid_reason,
        depth_error_mm=float(msg.depth_error_mm),
        depth_tolerance_mm=float(msg.depth_tolerance_mm),
        extraction_valid=bool(msg.extraction_valid),
        deployment_fraction=float(msg.deployment_fraction),
        delivery_tilt_deg=float(msg.delivery_tilt_deg),
    )


def command_to_msg(command: Command, header: Header) -> ManipulatorCommand:
    """A ManipulatorCommand (frame "annulus"; stamp = the guidance it answers, given in ``header``)."""
    return ManipulatorCommand(
        header=Header(stamp=header.stamp, frame_id="annulus"),
        advance_speed_mm_s=float(command.advance_speed_mm_s),
        retraction_speed_mm_s=float(command.retraction_speed_mm_s),
        steer_rate_deg_s=float(command.steer_rate_deg_s),
        hold=bool(command.hold),
        reason=command.reason,
    )


def keypoints_to_msg(
    header: Header,
    width: int,
    height: int,
    xy_px: np.ndarray,
    velocity_px_s: np.ndarray,
    std_px: np.ndarray,
    state: np.ndarray,
    visibility: np.ndarray,
    group_probability: np.ndarray,
) -> KeypointArray:
    """All 11 keypoints in schema order (tracked positions, detector visibility)."""
    points = [
        Keypoint(
            name=KEYPOINT_NAMES[i],
            index=i,
            group=int(KEYPOINT_GROUP[i]),
            x_px=float(xy_px[i, 0]),
            y_px=float(xy_px[i, 1]),
            vx_px_s=float(velocity_px_s[i, 0]),
            vy_px_s=float(velocity_px_s[i, 1]),
            visibility=float(np.clip(visibility[i], 0.0, 1.0)),
            state=int(state[i]),
            std_px=float(std_px[i]),
        )
        for i in range(NUM_KEYPOINTS)
    ]
    return KeypointArray(
        header=header,
        image_width=int(width),
        image_height=int(height),
        keypoints=points,
        group_probability=[float(p) for p in np.clip(group_probability, 0.0, 1.0)],
    )


def _yaw_quaternion(angle_rad: float) -> Quaternion:
    return Quaternion(x=0.0, y=0.0, z=math.sin(angle_rad / 2), w=math.cos(angle_rad / 2))


def pose_in_image(
    header: Header, x_px: float, y_px: float, angle_rad: float, mm_per_px: float
) -> PoseStamped:
    """A pose in the image frame in metres (see the module docstring), rotated by ``angle_rad`` about z."""
    pose = PoseStamped(header=header)
    pose.pose.position = Point(x=x_px * mm_per_px * 1e-3, y=y_px * mm_per_px * 1e-3, z=0.0)
    pose.pose.orientation = _yaw_quaternion(angle_rad)
    return pose


def annulus_pose(header: Header, guidance: Guidance) -> PoseStamped:
    """The annulus frame as a pose: origin at the AA1-AA2 midpoint, x along AA1 → AA2."""
    return pose_in_image(
        header,
        guidance.annulus_origin_x_px,
        guidance.annulus_origin_y_px,
        math.radians(guidance.annulus_angle_deg),
        guidance.mm_per_px,
    )


def tip_pose(header: Header, xy_px: np.ndarray, mm_per_px: float) -> PoseStamped:
    """The catheter tip CT, x axis along the delivery axis CD → CT."""
    axis = xy_px[Kp.CT] - xy_px[Kp.CD]
    angle = math.atan2(float(axis[1]), float(axis[0])) if float(np.hypot(*axis)) > 1e-9 else 0.0
    return pose_in_image(header, float(xy_px[Kp.CT, 0]), float(xy_px[Kp.CT, 1]), angle, mm_per_px)


_STATE_COLOURS = (
    ColorRGBA(r=0.1, g=0.9, b=0.2, a=1.0),  # MEASURED: green
    ColorRGBA(r=1.0, g=0.8, b=0.0, a=1.0),  # PREDICTED: amber
)


def markers(header: Header, xy_px: np.ndarray, state: np.ndarray, guidance: Guidance) -> MarkerArray:
    """RViz markers in the image frame (metres): tracked keypoints, the annulus axis and a depth label.

    Markers whose data is not available this frame are deleted (action DELETE with the same id).
    """
    scale = guidance.mm_per_px * 1e-3 if guidance.mm_per_px > 0 else 1e-3
    points = Marker(header=header, ns="keypoints", id=0, type=Marker.SPHERE_LIST, action=Marker.ADD)
    points.scale.x = points.scale.y = points.scale.z = 6 * scale
    points.pose.orientation.w = 1.0
    for i in range(NUM_KEYPOINTS):
        if state[i] < len(_STATE_COLOURS):
            points.points.append(Point(x=float(xy_px[i, 0]) * scale, y=float(xy_px[i, 1]) * scale, z=0.0))
            points.colors.append(_STATE_COLOURS[int(state[i])])
    out = [points]
    axis = Marker(header=header, ns="annulus", id=1, type=Marker.LINE_LIST)
    label = Marker(header=header, ns="depth", id=2, type=Marker.TEXT_VIEW_FACING)
    if guidance.annulus_valid:
        axis.action = Marker.ADD
        axis.scale.x = 2 * scale
        axis.pose.orientation.w = 1.0
        axis.color = ColorRGBA(r=0.2, g=0.6, b=1.0, a=1.0)
        half_px = 0.5 * guidance.annulus_diameter_mm / guidance.mm_per_px if guidance.mm_per_px > 0 else 0.0
        angle = math.radians(guidance.annulus_angle_deg)
        cx, cy = guidance.annulus_origin_x_px, guidance.annulus_origin_y_px
        dx, dy = half_px * math.cos(angle), half_px * math.sin(angle)
        axis.points = [
            Point(x=(cx - dx) * scale, y=(cy - dy) * scale),
            Point(x=(cx + dx) * scale, y=(cy + dy) * scale),
        ]
    else:
        axis.action = Marker.DELETE
    if guidance.valid:
        label.action = Marker.ADD
        label.scale.z = 12 * scale
        label.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
        label.pose.position = Point(x=float(xy_px[Kp.CT, 0]) * scale, y=(float(xy_px[Kp.CT, 1]) + 20) * scale)
        label.pose.orientation.w = 1.0
        label.text = f"depth {guidance.depth_mm:.1f} mm (target {guidance.target_depth_mm:.1f})"
    else:
        label.action = Marker.DELETE
    out += [axis, label]
    return MarkerArray(markers=out)
