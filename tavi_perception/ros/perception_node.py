"""perception_node: fluoroscopy frames in, keypoints, poses and one atomic guidance per frame out.

A lifecycle node (rclpy.lifecycle): parameters are declared and validated at construction (the process
exits with a clear message on a bad value); *configure* loads the model and creates the publishers;
*activate* subscribes the images. Run as a plain executable it configures and activates itself
(parameter ``autostart``, default true).

Topics (relative names; remap ``image`` to the camera topic):

- ``image`` (sensor_msgs/Image, in): QoS from ``image_qos_reliability``/``image_qos_depth`` (default
  best effort, keep last 1 = SensorDataQoS with depth 1), so a slow frame is replaced, never queued.
- ``guidance`` (tavi_msgs/Guidance): one per received frame, also for a rejected frame (then invalid
  with the reason), published first.
- ``keypoints`` (tavi_msgs/KeypointArray): tracked keypoints of every processed frame.
- ``annulus_pose``, ``catheter_tip_pose`` (geometry_msgs/PoseStamped): only while the annulus /
  catheter block is valid; frames and units in :mod:`tavi_perception.ros.messages`.
- ``markers`` (visualization_msgs/MarkerArray) and ``overlay`` (sensor_msgs/Image, bgr8): rendered
  only while someone subscribes, after the guidance.
- ``/diagnostics`` (diagnostic_msgs/DiagnosticArray): rates, latencies, drops, backend, model SHA-256.

Every output header is the input image's header, unchanged. A frame is rejected (invalid guidance,
counted in diagnostics, never a crash) when it is older than ``max_frame_age_ms`` on arrival (stale),
when its stamp is not after the previous frame's (out of order; a jump back of more than
``stamp_reset_s`` restarts tracking instead, e.g. a looping bag), when its pixels are bit-identical to the
previous frame's (a frozen source re-sending an old image; ``reject_repeated_frames``), when it is larger than
``max_image_side_px`` or when it cannot be decoded (encoding, size, truncated data).
"""

from __future__ import annotations

import dataclasses
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from tavi_msgs.msg import Guidance, KeypointArray
from visualization_msgs.msg import MarkerArray

from tavi_perception.core.overlay import OverlayRenderer
from tavi_perception.core.pipeline import (
    FrameResult,
    FrozenImageError,
    PerceptionPipeline,
    shipped_model_path,
)
from tavi_perception.geometry.estimator import GeometryParams
from tavi_perception.geometry.frames import mm_per_px as calibrated_mm_per_px
from tavi_perception.inference.engines import BACKENDS, create_engine, file_sha256
from tavi_perception.ros.diagnostics import LatencyWindow, RateMeter, status
from tavi_perception.ros.imaging import ImageConversionError, image_to_grey, numpy_to_image
from tavi_perception.ros.messages import (
    annulus_pose,
    guidance_to_msg,
    invalid_guidance,
    keypoints_to_msg,
    markers,
    stamp_ns,
    tip_pose,
)
from tavi_perception.ros.params import ParamSpec, declare_parameters, dynamic_parameter_guard
from tavi_perception.tracking import TrackerParams

_GEO = GeometryParams()
_TRK = TrackerParams()


def _dyn(name: str, default: float | int, description: str, low: float, high: float) -> ParamSpec:
    """A parameter that may be changed at run time."""
    return ParamSpec(name, default, description, low, high, dynamic=True)


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("autostart", True, "configure and activate at start (false: wait for lifecycle transitions)"),
    # model
    ParamSpec("model_path", "", "ONNX model (.onnx) or torch checkpoint (.pt); empty: the shipped model"),
    ParamSpec("backend", "auto", "inference backend", choices=BACKENDS),
    ParamSpec("inference_threads", 2, "[threads] CPU threads of the inference engine", 1, 64),
    # input
    ParamSpec(
        "image_qos_reliability", "best_effort", "image QoS reliability", choices=("best_effort", "reliable")
    ),
    ParamSpec("image_qos_depth", 1, "[frames] image subscription queue depth (keep last)", 1, 100),
    _dyn(
        "max_frame_age_ms", 200.0, "[ms] frames older than this on arrival are dropped; 0 = never", 0.0, 6e4
    ),
    ParamSpec(
        "stamp_reset_s", 1.0, "[s] a stamp this far before the previous one restarts tracking", 0.0, 1e6
    ),
    ParamSpec("max_image_side_px", 4096, "[px] larger frames are rejected before decoding", 16, 65536),
    ParamSpec(
        "reject_repeated_frames",
        True,
        "reject a frame whose pixels equal the previous frame's (frozen source)",
    ),
    # calibration
    _dyn("mm_per_px", 0.0, "[mm/px] scale at the isocentre; 0 = from pixel spacing, SID and SOD", 0.0, 10.0),
    _dyn("imager_pixel_spacing_mm", 0.6, "[mm] detector pixel spacing at calibration_width_px", 1e-4, 10.0),
    _dyn("sid_mm", 1200.0, "[mm] source-image distance", 100.0, 3000.0),
    _dyn("sod_mm", 800.0, "[mm] source-object (isocentre) distance, <= sid_mm", 50.0, 3000.0),
    _dyn("calibration_width_px", 512, "[px] image width the scale refers to; 0 = any width", 0, 16384),
    # geometry (names and meanings of tavi_perception.geometry.estimator.GeometryParams)
    _dyn("target_depth_mm", _GEO.target_depth_mm, "[mm] target implantation depth", -20.0, 40.0),
    _dyn("depth_tolerance_mm", _GEO.depth_tolerance_mm, "[mm] half-width of the depth band", 0.0, 20.0),
    ParamSpec("valve_frame_height_mm", _GEO.valve_frame_height_mm, "[mm] valve frame height", 5.0, 80.0),
    ParamSpec("cp_cd_closed_mm", _GEO.cp_cd_closed_mm, "[mm] closed-capsule CP-CD; 0 = learn", 0.0, 200.0),
    ParamSpec(
        "cp_cd_length_mm",
        _GEO.cp_cd_length_mm,
        "[mm] true closed CP-CD length (device); 0 = unknown",
        0.0,
        300.0,
    ),
    ParamSpec(
        "pigtail_missing_max_s", _GEO.pigtail_missing_max_s, "[s] PT unseen this long: LOST", 0.0, 10.0
    ),
    ParamSpec(
        "max_predicted_s", _GEO.max_predicted_s, "[s] longest coasting used in a valid block", 0.0, 5.0
    ),
    # tracking (names and meanings of tavi_perception.tracking.TrackerParams)
    ParamSpec("visibility_threshold", _TRK.visibility_threshold, "[1] detection threshold", 0.01, 1.0),
    ParamSpec(
        "measurement_std_px", _TRK.measurement_std_px, "[px] detector noise at visibility 1", 0.01, 100.0
    ),
    ParamSpec("max_coast_s", _TRK.max_coast_s, "[s] prediction-only time before LOST", 0.01, 10.0),
    # outputs
    ParamSpec("output_qos_depth", 10, "[messages] queue depth of the reliable outputs", 1, 1000),
    _dyn("overlay_every_n", 1, "[frames] render the overlay every n-th frame (while subscribed)", 1, 1000),
    ParamSpec("diagnostics_period_s", 1.0, "[s] /diagnostics publication period", 0.1, 60.0),
)

_GEOMETRY_KEYS = frozenset(f.name for f in dataclasses.fields(GeometryParams))
_TRACKER_KEYS = frozenset(f.name for f in dataclasses.fields(TrackerParams))


def _subset(values: dict[str, object], keys: frozenset[str]) -> dict[str, object]:
    return {k: v for k, v in values.items() if k in keys}


class PerceptionNode(LifecycleNode):
    """The perception lifecycle node; see the module docstring for topics and behaviour."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__("perception_node", **kwargs)  # type: ignore[arg-type]
        self._values = declare_parameters(self, PARAMETERS)
        GeometryParams(**_subset(self._values, _GEOMETRY_KEYS))  # type: ignore[arg-type]  # fail fast
        TrackerParams(**_subset(self._values, _TRACKER_KEYS))  # type: ignore[arg-type]
        if self._values["sod_mm"] > self._values["sid_mm"]:
            raise ValueError(
                f"sod_mm ({self._values['sod_mm']}) cannot exceed sid_mm ({self._values['sid_mm']})"
            )
        self.add_on_set_parameters_callback(dynamic_parameter_guard(PARAMETERS))
        self.add_on_set_parameters_callback(self._check_calibration)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self._pipeline: PerceptionPipeline | None = None
        self._model_path = Path()
        self._model_sha256 = ""
        self._subscription = None
        self._overlay = OverlayRenderer()
        self._reset_statistics()

    # --- lifecycle -----------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        v = self._values
        try:
            self._model_path = Path(v["model_path"]) if v["model_path"] else shipped_model_path()
            engine = create_engine(self._model_path, backend=v["backend"], threads=v["inference_threads"])
        except (FileNotFoundError, ValueError, RuntimeError) as err:
            self.get_logger().error(f"cannot load the model: {err}")
            return TransitionCallbackReturn.FAILURE
        self._model_sha256 = file_sha256(self._model_path)
        self._pipeline = PerceptionPipeline(
            engine,
            TrackerParams(**_subset(v, _TRACKER_KEYS)),  # type: ignore[arg-type]
            GeometryParams(**_subset(v, _GEOMETRY_KEYS)),  # type: ignore[arg-type]
            reject_repeated=bool(v["reject_repeated_frames"]),
        )
        out_qos = QoSProfile(depth=v["output_qos_depth"], reliability=ReliabilityPolicy.RELIABLE)
        self._guidance_pub = self.create_lifecycle_publisher(Guidance, "guidance", out_qos)
        self._keypoints_pub = self.create_lifecycle_publisher(KeypointArray, "keypoints", out_qos)
        self._annulus_pub = self.create_lifecycle_publisher(PoseStamped, "annulus_pose", out_qos)
        self._tip_pub = self.create_lifecycle_publisher(PoseStamped, "catheter_tip_pose", out_qos)
        self._markers_pub = self.create_lifecycle_publisher(MarkerArray, "markers", out_qos)
        self._overlay_pub = self.create_lifecycle_publisher(Image, "overlay", QoSProfile(depth=1))
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diagnostics_timer = self.create_timer(v["diagnostics_period_s"], self._publish_diagnostics)
        self.get_logger().info(
            f"model {self._model_path} (sha256 {self._model_sha256[:12]}...) on {engine.backend}, "
            f"{v['inference_threads']} threads"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        v = self._values
        reliable = v["image_qos_reliability"] == "reliable"
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=v["image_qos_depth"],
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.VOLATILE,
        )
        self._subscription = self.create_subscription(Image, "image", self._on_image, qos)
        self.get_logger().info(f"active: listening on {self._subscription.topic_name}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._subscription is not None:
            self.destroy_subscription(self._subscription)
            self._subscription = None
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._subscription is not None:
            self.destroy_subscription(self._subscription)
            self._subscription = None
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        if self._pipeline is None:
            return
        for pub in self._lifecycle_publishers():
            self.destroy_lifecycle_publisher(pub)
        self.destroy_publisher(self._diagnostics_pub)
        self.destroy_timer(self._diagnostics_timer)
        self._pipeline = None
        self._reset_statistics()

    def _lifecycle_publishers(self) -> tuple:
        return (
            self._guidance_pub,
            self._keypoints_pub,
            self._annulus_pub,
            self._tip_pub,
            self._markers_pub,
            self._overlay_pub,
        )

    # --- parameters ----------------------------------------------------------------------------

    def _check_calibration(self, params: list[Parameter]) -> SetParametersResult:
        new = {**self._values, **{p.name: p.value for p in params}}
        if new["sod_mm"] > new["sid_mm"]:
            return SetParametersResult(successful=False, reason="sod_mm cannot exceed sid_mm")
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params: list[Parameter]) -> None:
        changed = {p.name: p.value for p in params if p.name in self._values}
        self._values.update(changed)
        if self._pipeline is not None and changed.keys() & _GEOMETRY_KEYS:
            estimator = self._pipeline.estimator
            estimator.params = dataclasses.replace(estimator.params, **_subset(changed, _GEOMETRY_KEYS))
        if changed:
            self.get_logger().info(f"parameters changed: {changed}")

    def mm_per_px_for(self, width_px: int) -> float:
        """Scale at the isocentre for a frame ``width_px`` wide [mm/px]."""
        v = self._values
        if v["mm_per_px"] > 0:
            scale = v["mm_per_px"]
        else:
            scale = calibrated_mm_per_px(v["imager_pixel_spacing_mm"], v["sid_mm"], v["sod_mm"])
        if v["calibration_width_px"] > 0:
            scale *= v["calibration_width_px"] / width_px
        return float(scale)

    # --- frames --------------------------------------------------------------------------------

    def _on_image(self, msg: Image, info: dict) -> None:
        received_s = time.perf_counter()
        now_s = time.monotonic()
        self._rate_in.tick(now_s)
        self._count_transport_drops(info)
        try:
            self._handle(msg, received_s)
        except Exception as err:  # never let a frame take the node down; hold the controller instead
            self._errors += 1
            self._last_problem = f"internal error: {err}"
            self.get_logger().error(f"frame failed: {err}\n{traceback.format_exc()}")
            self._publish_invalid(msg.header, self._last_problem)

    def _handle(self, msg: Image, received_s: float) -> None:
        v = self._values
        header = msg.header
        t_ns = stamp_ns(header.stamp)
        age_ms = (self.get_clock().now().nanoseconds - t_ns) * 1e-6
        if v["max_frame_age_ms"] > 0 and age_ms > v["max_frame_age_ms"]:
            self._dropped_stale += 1
            self._reject(
                header, f"stale frame: {age_ms:.0f} ms old > max_frame_age_ms {v['max_frame_age_ms']:.0f}"
            )
            return
        if self._last_stamp_ns is not None and t_ns <= self._last_stamp_ns:
            back_s = (self._last_stamp_ns - t_ns) * 1e-9
            if back_s <= v["stamp_reset_s"]:
                self._out_of_order += 1
                self._reject(header, f"out-of-order stamp: {back_s * 1e3:.1f} ms before the previous frame")
                return
            self.get_logger().warning(f"stamps jumped back {back_s:.1f} s: restarting tracking")
            self._pipeline.reset()
            self._resets += 1
        if max(msg.width, msg.height) > v["max_image_side_px"]:
            self._malformed += 1
            self._reject(
                header,
                f"image {msg.width}x{msg.height} larger than max_image_side_px {v['max_image_side_px']}",
            )
            return
        try:
            image = image_to_grey(msg)
            result = self._pipeline.process(t_ns * 1e-9, image, self.mm_per_px_for(msg.width))
        except FrozenImageError as err:
            self._frozen += 1
            self._reject(header, f"frozen image: {err}")
            return
        except (ImageConversionError, ValueError) as err:
            self._malformed += 1
            self._reject(header, f"bad image: {err}")
            return
        self._last_stamp_ns = t_ns
        self._publish(header, msg, image, result, received_s)

    def _reject(self, header: Header, reason: str) -> None:
        self._last_problem = reason
        self.get_logger().warning(reason, throttle_duration_sec=2.0)
        self._publish_invalid(header, reason)

    def _publish_invalid(self, header: Header, reason: str) -> None:
        latency_ms = (self.get_clock().now().nanoseconds - stamp_ns(header.stamp)) * 1e-6
        self._guidance_pub.publish(invalid_guidance(header, reason, latency_ms))
        self._invalid += 1

    def _publish(
        self, header: Header, msg: Image, image: np.ndarray, result: FrameResult, received_s: float
    ) -> None:
        est = result.estimate
        latency_ms = (self.get_clock().now().nanoseconds - stamp_ns(header.stamp)) * 1e-6
        guidance = guidance_to_msg(est, header, latency_ms)
        self._guidance_pub.publish(guidance)
        published_s = time.perf_counter()
        self._rate_out.tick(time.monotonic())
        self._latency.add(latency_ms)
        self._processing.add(1e3 * (published_s - received_s))
        self._inference.add(result.infer_ms)
        self._processed += 1
        if guidance.valid:
            self._valid += 1
        else:
            self._invalid += 1
            self._last_problem = guidance.invalid_reason
        self._tracking_state = int(guidance.tracking_state)
        self._image_size = f"{msg.width}x{msg.height} {msg.encoding}"

        tracked, det = result.tracked, result.detections
        kp_args = (tracked.xy_px, tracked.velocity_px_s, tracked.std_px, tracked.state)
        kp_msg = keypoints_to_msg(
            header, msg.width, msg.height, *kp_args, det.visibility, det.group_probability
        )
        self._keypoints_pub.publish(kp_msg)
        if guidance.annulus_valid:
            self._annulus_pub.publish(annulus_pose(header, guidance))
        if guidance.catheter_valid:
            self._tip_pub.publish(tip_pose(header, tracked.xy_px, guidance.mm_per_px))
        if self._markers_pub.get_subscription_count() > 0:
            self._markers_pub.publish(markers(header, tracked.xy_px, tracked.state, guidance))
        self._frames_since_overlay += 1
        if (
            self._overlay_pub.get_subscription_count() > 0
            and self._frames_since_overlay >= self._values["overlay_every_n"]
        ):
            self._frames_since_overlay = 0
            canvas = self._overlay.render(image, tracked, est)
            self._overlay_pub.publish(numpy_to_image(canvas, "bgr8", header))

    def _count_transport_drops(self, info: dict) -> None:
        """Frames replaced in the depth-limited queue: gaps in each publisher's sequence numbers."""
        seq = info.get("publication_sequence_number")
        gid = info.get("publisher_gid")
        if not seq:
            return
        key = bytes(gid["data"]) if isinstance(gid, dict) and "data" in gid else b""
        last = self._last_seq.get(key)
        if last is not None and seq > last + 1:
            self._dropped_transport += seq - last - 1
        self._last_seq[key] = seq

    # --- diagnostics ---------------------------------------------------------------------------

    def _reset_statistics(self) -> None:
        self._rate_in = RateMeter()
        self._rate_out = RateMeter()
        self._latency = LatencyWindow()
        self._processing = LatencyWindow()
        self._inference = LatencyWindow()
        self._last_seq: dict[bytes, int] = {}
        self._last_stamp_ns: int | None = None
        self._processed = self._valid = self._invalid = self._errors = self._resets = 0
        self._dropped_stale = self._out_of_order = self._malformed = self._dropped_transport = 0
        self._frozen = 0
        self._frames_since_overlay = 0
        self._tracking_state = Guidance.TRACKING_LOST
        self._image_size = ""
        self._last_problem = ""

    def _publish_diagnostics(self) -> None:
        now_s = time.monotonic()
        active = self._subscription is not None
        values: dict[str, object] = {
            "active": active,
            "input_rate_hz": self._rate_in.rate_hz(now_s),
            "output_rate_hz": self._rate_out.rate_hz(now_s),
            "frames_received": self._rate_in.total,
            "frames_processed": self._processed,
            "guidance_valid": self._valid,
            "guidance_invalid": self._invalid,
            "dropped_stale": self._dropped_stale,
            "dropped_transport": self._dropped_transport,
            "rejected_out_of_order": self._out_of_order,
            "rejected_malformed": self._malformed,
            "rejected_frozen": self._frozen,
            "internal_errors": self._errors,
            "tracking_resets": self._resets,
            "latency_ms_p50": self._latency.percentile(50),
            "latency_ms_p99": self._latency.percentile(99),
            "processing_ms_p50": self._processing.percentile(50),
            "processing_ms_p99": self._processing.percentile(99),
            "inference_ms_p50": self._inference.percentile(50),
            "backend": self._pipeline.backend if self._pipeline else "",
            "model_path": str(self._model_path),
            "model_sha256": self._model_sha256,
            "image": self._image_size,
            "tracking_state": self._tracking_state,
            "last_problem": self._last_problem,
        }
        if not active:
            level, message = DiagnosticStatus.WARN, "inactive"
        elif self._rate_in.rate_hz(now_s) == 0.0:
            level, message = DiagnosticStatus.WARN, "no images"
        elif self._tracking_state == Guidance.TRACKING_OK:
            level, message = DiagnosticStatus.OK, "tracking"
        else:
            level, message = DiagnosticStatus.WARN, self._last_problem or "tracking degraded"
        array = DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()))
        array.status = [status("perception_node: pipeline", "perception", level, message, values)]
        self._diagnostics_pub.publish(array)


def main(argv: list[str] | None = None) -> int:
    """Run the perception node; with ``autostart`` it configures and activates itself."""
    rclpy.init(args=sys.argv if argv is None else argv)
    try:
        node = PerceptionNode()
    except ValueError as err:
        print(f"perception_node: {err}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    code = 0
    try:
        if node.get_parameter("autostart").value:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                raise RuntimeError("configure failed (see the error above)")
            if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                raise RuntimeError("activate failed")
        rclpy.spin(node)
    except RuntimeError as err:
        print(f"perception_node: {err}", file=sys.stderr)
        code = 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
