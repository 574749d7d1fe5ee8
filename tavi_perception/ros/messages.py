"""Pure conversions between the ROS-free results and ROS messages (no node, no graph).

Pose conventions (``annulus_pose``, ``catheter_tip_pose``, ``markers``, the annulus transform): the
stamp is the input image's; the ``frame_id`` is the *metric* image frame (perception_node parameter
``metric_frame_id``, default ``fluoro_mm``), not the pixel frame of the image header (``fluoro``). Both
share the origin (top-left corner of the image) and axes (x right, y down, z = x × y into the image);
the metric frame counts metres at the isocentre (pixels × ``mm_per_px`` / 1000), as REP 103 wants for
poses, so RViz/Foxglove and tf2 can use them. The guidance itself stays in millimetres and degrees
(see tavi_msgs/msg/Guidance.msg).

Orientations: the annulus pose and the ``annulus`` TF frame have x along AA1 → AA2 and y towards the
ventricle (so a point's y in that frame is its depth), z = x × y: a rotation about z by the annulus
angle, followed by a half turn about x when y towards the ventricle is the image's -90° side
(``Guidance.annulus_y_sign`` = -1). The tip pose's x axis runs along the delivery axis CD → CT.

Covariances (row-major 6 × 6 over x, y, z, roll, pitch, yaw) come from the tracker's 1-sigma keypoint
uncertainties ``std_px`` (isotropic, independent keypoints): the annulus origin from AA1 and AA2 (their
midpoint) with contrast, from PT while pigtail-bound; the yaw from the two points defining the axis
(small-angle: (σ1² + σ2²) / length²). z, roll and pitch are fixed by the planar convention (variance
0); the yaw of a pigtail-bound annulus is held, not measured: variance :data:`UNMEASURED_VARIANCE`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, PoseWithCovarianceStamped, Quaternion, TransformStamped, Vector3
from std_msgs.msg import ColorRGBA, Header
from tavi_msgs.msg import Guidance, Keypoint, KeypointArray, ManipulatorCommand
from visualization_msgs.msg import Marker, MarkerArray

from tavi_perception.controller import Command, GuidanceSample
from tavi_perception.evaluation.report import GuidanceRow
from tavi_perception.guidance import GuidanceEstimate
from tavi_perception.keypoints import KEYPOINT_GROUP, KEYPOINT_NAMES, NUM_KEYPOINTS, Kp

# the contract's fields, in its order (equal to the message's but header and latency_ms, which a test checks)
_GUIDANCE_FIELDS = tuple(f.name for f in dataclasses.fields(GuidanceEstimate))


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


def guidance_to_msg(estimate: GuidanceEstimate, header: Header, latency_ms: float) -> Guidance:
    """The message of ``estimate`` (or of a subclass: its extra fields are left out)."""
    msg = Guidance(header=header, latency_ms=float(latency_ms))
    for name in _GUIDANCE_FIELDS:
        setattr(msg, name, type(getattr(msg, name))(getattr(estimate, name)))
    return msg


def _contract_values(msg: Guidance) -> dict[str, object]:
    return {name: getattr(msg, name) for name in _GUIDANCE_FIELDS}


def guidance_from_msg(msg: Guidance) -> GuidanceEstimate:
    """The contract of a message (header and latency dropped)."""
    return GuidanceEstimate(**_contract_values(msg))


def guidance_row(msg: Guidance) -> GuidanceRow:
    """The recorder's row of a message: the contract, its stamp and latency."""
    return GuidanceRow(
        **_contract_values(msg), stamp_ns=stamp_ns(msg.header.stamp), latency_ms=float(msg.latency_ms)
    )


def guidance_sample(msg: Guidance, received_s: float) -> GuidanceSample:
    """What the reference controller acts on: the contract, its stamp and the receipt time."""
    return GuidanceSample(
        **_contract_values(msg), received_s=received_s, stamp_s=stamp_to_s(msg.header.stamp)
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


METRIC_FRAME_ID = "fluoro_mm"  # default of perception_node's metric_frame_id
ANNULUS_FRAME_ID = "annulus"  # child frame of the annulus transform
UNMEASURED_VARIANCE = 1.0e6  # [rad^2] a component that is held, not measured (ROS: large = unknown)


def _planar_quaternion(angle_rad: float, y_sign: int) -> Quaternion:
    """Rotation about z by ``angle_rad``, then a half turn about x when ``y_sign`` < 0 (see above)."""
    c, s = math.cos(angle_rad / 2), math.sin(angle_rad / 2)
    if y_sign < 0:
        return Quaternion(x=c, y=s, z=0.0, w=0.0)
    return Quaternion(x=0.0, y=0.0, z=s, w=c)


def _axis_variance_rad2(xy_px: np.ndarray, std_px: np.ndarray, a: Kp, b: Kp) -> float:
    """Small-angle variance of the direction a -> b from the two points' isotropic 1-sigma [rad^2]."""
    length_px = float(np.hypot(*(xy_px[b] - xy_px[a])))
    if length_px < 1e-9:
        return UNMEASURED_VARIANCE
    return float(std_px[a] ** 2 + std_px[b] ** 2) / length_px**2


def pose_in_image(
    header: Header,
    x_px: float,
    y_px: float,
    orientation: Quaternion,
    mm_per_px: float,
    position_var_px2: float,
    yaw_var_rad2: float,
) -> PoseWithCovarianceStamped:
    """A pose in the metric image frame named by ``header`` (see the module docstring) with its covariance."""
    m_per_px = mm_per_px * 1e-3
    pose = PoseWithCovarianceStamped(header=header)
    pose.pose.pose.position = Point(x=x_px * m_per_px, y=y_px * m_per_px, z=0.0)
    pose.pose.pose.orientation = orientation
    covariance = np.zeros((6, 6))
    covariance[0, 0] = covariance[1, 1] = position_var_px2 * m_per_px**2
    covariance[5, 5] = yaw_var_rad2
    pose.pose.covariance = covariance.ravel().tolist()
    return pose


def annulus_pose(
    header: Header, guidance: Guidance, xy_px: np.ndarray, std_px: np.ndarray
) -> PoseWithCovarianceStamped:
    """The annulus frame as a pose: origin at the annulus origin, x along AA1 → AA2, y to the ventricle."""
    if guidance.annulus_source == Guidance.ANNULUS_CONTRAST:
        position_var_px2 = 0.25 * float(std_px[Kp.AA1] ** 2 + std_px[Kp.AA2] ** 2)  # of the midpoint
        yaw_var_rad2 = _axis_variance_rad2(xy_px, std_px, Kp.AA1, Kp.AA2)
    else:  # carried by the pigtail's translation, orientation held
        position_var_px2 = float(std_px[Kp.PT] ** 2)
        yaw_var_rad2 = UNMEASURED_VARIANCE
    return pose_in_image(
        header,
        guidance.annulus_origin_x_px,
        guidance.annulus_origin_y_px,
        _planar_quaternion(math.radians(guidance.annulus_angle_deg), int(guidance.annulus_y_sign)),
        guidance.mm_per_px,
        position_var_px2,
        yaw_var_rad2,
    )


def annulus_transform(header: Header, guidance: Guidance) -> TransformStamped:
    """The ``annulus`` frame in the metric image frame named by ``header`` (for /tf)."""
    m_per_px = guidance.mm_per_px * 1e-3
    transform = TransformStamped(header=header, child_frame_id=ANNULUS_FRAME_ID)
    transform.transform.translation = Vector3(
        x=guidance.annulus_origin_x_px * m_per_px, y=guidance.annulus_origin_y_px * m_per_px, z=0.0
    )
    transform.transform.rotation = _planar_quaternion(
        math.radians(guidance.annulus_angle_deg), int(guidance.annulus_y_sign)
    )
    return transform


def tip_pose(
    header: Header, xy_px: np.ndarray, std_px: np.ndarray, mm_per_px: float
) -> PoseWithCovarianceStamped:
    """The catheter tip CT, x axis along the delivery axis CD → CT."""
    axis = xy_px[Kp.CT] - xy_px[Kp.CD]
    angle = math.atan2(float(axis[1]), float(axis[0])) if float(np.hypot(*axis)) > 1e-9 else 0.0
    return pose_in_image(
        header,
        float(xy_px[Kp.CT, 0]),
        float(xy_px[Kp.CT, 1]),
        _planar_quaternion(angle, 1),
        mm_per_px,
        float(std_px[Kp.CT] ** 2),
        _axis_variance_rad2(xy_px, std_px, Kp.CD, Kp.CT),
    )


_STATE_COLOURS = (
    ColorRGBA(r=0.1, g=0.9, b=0.2, a=1.0),  # MEASURED: green
    ColorRGBA(r=1.0, g=0.8, b=0.0, a=1.0),  # PREDICTED: amber
)


def markers(header: Header, xy_px: np.ndarray, state: np.ndarray, guidance: Guidance) -> MarkerArray:
    """RViz markers in the metric image frame named by ``header`` (metres): tracked keypoints, the annulus
    axis and a depth label.

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
    frame = guidance_from_msg(guidance).annulus_frame() if guidance.annulus_valid else None
    if frame is not None:  # the annulus frame: x axis one diameter long, y axis to the ventricle
        axis.action = Marker.ADD
        axis.scale.x = 2 * scale
        axis.pose.orientation.w = 1.0
        axis.color = ColorRGBA(r=0.2, g=0.6, b=1.0, a=1.0)
        half_px = 0.5 * guidance.annulus_diameter_mm / guidance.mm_per_px if guidance.mm_per_px > 0 else 0.0
        ends = (-frame.x_axis, frame.x_axis, np.zeros(2), frame.y_axis)
        axis.points = [
            Point(x=float(x) * scale, y=float(y) * scale)
            for x, y in (frame.origin_px + half_px * e for e in ends)
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
