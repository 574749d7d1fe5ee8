"""perception_node: fluoroscopy frames in, keypoints, poses and one atomic guidance per frame out.

A lifecycle node (rclpy.lifecycle): parameters are declared and validated at construction (the process
exits with a clear message on a bad value); *configure* loads the model and creates the publishers;
*activate* subscribes the images. Run as a plain executable it configures and activates itself
(parameter ``autostart``, default true).

Topics (relative names; remap ``image`` to the camera topic):

- ``image`` (sensor_msgs/Image, in) with ``image_transport`` "raw", or ``image/compressed``
  (sensor_msgs/CompressedImage: JPEG, PNG 8/16 bit) with "compressed" (image_transport's naming: the
  remapped ``image`` topic + ``/compressed``, e.g. ``/fluoro/image/compressed``).
  QoS from ``image_qos_reliability``/``image_qos_depth`` (default best effort, keep last 1 =
  SensorDataQoS with depth 1), so a slow frame is replaced, never queued. Encodings: mono8/16,
  8UC1/16UC1, 32FC1, bgr8/rgb8 (luma), yuv422 (UYVY), yuv422_yuy2 (YUYV), uyvy, yuyv (their Y).
- ``calibration/mm_per_px`` (std_msgs/Float64, in, reliable + transient local: the latest value is
  latched): the scale [mm/px at the isocentre] of the (cropped) image as received; it overrides the
  calibration parameters from its arrival on.
- ``carm_state`` (tavi_msgs/CArmState, in, reliable + transient local): the C-arm's angles, SID, field
  size and table position; a change of view (:mod:`tavi_perception.core.carm`) restarts tracking at the
  next frame and drops the annulus (held across pedal gaps or pigtail-bound) until the next aortogram.
- ``guidance`` (tavi_msgs/Guidance): one per received frame, also for a rejected frame (then invalid
  with the reason), published first; none for a repeat of the last frame's pixels (see below). Every
  guidance says whether the scale was given (``calibrated``) and where it came from
  (``calibration_source``).
- ``keypoints`` (tavi_msgs/KeypointArray): tracked keypoints of every processed frame.
- ``annulus_pose``, ``catheter_tip_pose`` (geometry_msgs/PoseWithCovarianceStamped, covariance from the
  tracker's keypoint uncertainties): only while the annulus / catheter block is valid; in the metric
  frame ``metric_frame_id`` (metres; the image's stamp); conventions in :mod:`tavi_perception.ros.messages`.
- ``/tf`` (tf2_msgs/TFMessage): ``metric_frame_id`` -> ``annulus`` while the annulus block is valid, when
  tf2_msgs is importable (a ROS installation; the PyPI wheels have none, then no /tf).
- ``markers`` (visualization_msgs/MarkerArray) and ``overlay`` (sensor_msgs/Image, bgr8): rendered
  only while someone subscribes, after the guidance.
- ``/diagnostics`` (diagnostic_msgs/DiagnosticArray): rates, latencies, admission counts per rule,
  calibration, backend (and ``provider_fallback``: why a requested GPU provider is not running), model
  SHA-256; WARN "uncalibrated" while the scale is the default.

Every output header is the input image's header, unchanged (poses, markers and /tf: the same stamp,
frame ``metric_frame_id``); pixel coordinates (keypoints, annulus origin, poses, overlay) are the input
image's, also when a region of interest (``roi_*``, ``roi_auto``)
crops it to the fluoroscopy area; the calibration refers to the cropped image. Which frames are
measured is decided by :mod:`tavi_perception.core.admission` (stale, stamped in the future, out of
order, new sequence, gap, too large, undecodable, repeated or frozen pixels, non-scene frames): a
rejected frame is answered with invalid guidance and counted, never a crash. Without an explicit
calibration (``mm_per_px`` > 0, or all of pixel spacing, SID and SOD, or the calibration topic) the node
warns once, reports it in /diagnostics and publishes ``calibrated=false``; with
``require_calibration`` it refuses to activate instead.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
import traceback
from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseWithCovarianceStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Float64, Header
from tavi_msgs.msg import CArmState, Guidance, KeypointArray
from visualization_msgs.msg import MarkerArray

try:  # a ROS installation has tf2_msgs; the PyPI wheels do not (then no /tf)
    from tf2_msgs.msg import TFMessage
except ImportError:
    TFMessage = None

from tavi_perception.core.admission import RULES, AdmissionParams
from tavi_perception.core.calibration import Calibration, calibration_from_parameters
from tavi_perception.core.carm import CArmPose
from tavi_perception.core.overlay import OverlayRenderer
from tavi_perception.core.pipeline import (
    SHIPPED_REFINE_MODEL,
    SHIPPED_ROOT_REFINE_MODEL,
    FrameResult,
    PerceptionPipeline,
    UnprocessedFrame,
    shipped_model_path,
)
from tavi_perception.core.roi import Box, RegionOfInterest
from tavi_perception.devices import device_geometry
from tavi_perception.geometry.estimator import GeometryParams
from tavi_perception.guidance import GuidanceEstimate
from tavi_perception.inference.engines import (
    BACKENDS,
    PROVIDER_CHOICES,
    OrtOptions,
    create_engine,
    file_sha256,
)
from tavi_perception.inference.refinement import ROOT, VALVE, Refinement
from tavi_perception.plan.annulus import read_plan
from tavi_perception.plan.obliquity import ViewCorrection
from tavi_perception.ros.diagnostics import LatencyWindow, RateMeter, status
from tavi_perception.ros.imaging import (
    compressed_to_grey,
    image_to_grey,
    numpy_to_image,
)
from tavi_perception.ros.lifecycle import AUTOSTART, ManagedNode, run
from tavi_perception.ros.messages import (
    METRIC_FRAME_ID,
    annulus_pose,
    annulus_transform,
    guidance_to_msg,
    keypoints_to_msg,
    markers,
    stamp_ns,
    tip_pose,
)
from tavi_perception.ros.params import ParamSpec, declare_parameters, dynamic_parameter_guard
from tavi_perception.tracking import TrackerParams

_GEO = GeometryParams()
_TRK = TrackerParams()
_ADM = AdmissionParams()


def _dyn(name: str, default: float | int, description: str, low: float, high: float) -> ParamSpec:
    """A parameter that may be changed at run time."""
    return ParamSpec(name, default, description, low, high, dynamic=True)


# (target, enabling parameter, model-path parameter, shipped model) of each second look
_REFINEMENTS = (
    (VALVE, "refine_valve", "refine_model_path", SHIPPED_REFINE_MODEL),
    (ROOT, "refine_root", "refine_root_model_path", SHIPPED_ROOT_REFINE_MODEL),
)

PARAMETERS: tuple[ParamSpec, ...] = (
    AUTOSTART,
    # model
    ParamSpec("model_path", "", "ONNX model (.onnx) or torch checkpoint (.pt); empty: the shipped model"),
    ParamSpec("refine_valve", False, "read FE1/FE2 again on a full-resolution crop of the valve"),
    ParamSpec("refine_model_path", "", "with refine_valve: the refinement model; empty: the shipped model"),
    ParamSpec("refine_root", False, "read AA1, AA2, STJ1, STJ2 again on a full-resolution crop of the root"),
    ParamSpec("refine_root_model_path", "", "with refine_root: its model; empty: the shipped root model"),
    ParamSpec("backend", "auto", "inference backend", choices=BACKENDS),
    ParamSpec("inference_threads", 2, "[threads] CPU threads of the inference engine", 1, 64),
    ParamSpec(
        "ort_provider",
        "auto",
        "ONNX Runtime provider; cuda/tensorrt fall back to cpu with a warning",
        choices=tuple(PROVIDER_CHOICES),
    ),
    ParamSpec("trt_engine_cache_path", "", "folder for built TensorRT engines; empty: rebuilt at each start"),
    ParamSpec("trt_fp16", False, "TensorRT may run layers in float16"),
    # input
    ParamSpec(
        "image_transport",
        "raw",
        "raw: sensor_msgs/Image on image; compressed: image/compressed",
        choices=("raw", "compressed"),
    ),
    ParamSpec(
        "image_qos_reliability", "best_effort", "image QoS reliability", choices=("best_effort", "reliable")
    ),
    ParamSpec("image_qos_depth", 1, "[frames] image subscription queue depth (keep last)", 1, 100),
    ParamSpec("roi_x_px", 0, "[px] left edge of the fluoroscopy area in the input image", 0, 65535),
    ParamSpec("roi_y_px", 0, "[px] top edge of the fluoroscopy area in the input image", 0, 65535),
    ParamSpec("roi_width_px", 0, "[px] width of the fluoroscopy area; 0 = to the right edge", 0, 65535),
    ParamSpec("roi_height_px", 0, "[px] height of the fluoroscopy area; 0 = to the bottom edge", 0, 65535),
    ParamSpec("roi_auto", False, "find the bright fluoroscopy area of a screen capture (roi_* all 0)"),
    # admission (names and meanings of tavi_perception.core.admission.AdmissionParams)
    _dyn(
        "max_frame_age_ms",
        _ADM.max_frame_age_ms,
        "[ms] older on arrival: rejected as stale; 0 = never",
        0.0,
        6e4,
    ),
    _dyn(
        "max_future_stamp_ms",
        _ADM.max_future_stamp_ms,
        "[ms] stamped further ahead of the clock: rejected; 0 = never",
        0.0,
        6e4,
    ),
    _dyn(
        "stamp_reset_s",
        _ADM.stamp_reset_s,
        "[s] a stamp this far before the latest starts a new sequence",
        0.0,
        1e6,
    ),
    ParamSpec("max_image_side_px", _ADM.max_image_side_px, "[px] larger frames are rejected", 16, 65536),
    _dyn(
        "gap_after_s", _ADM.gap_after_s, "[s] longer without an admitted frame: the tracks restart", 0.0, 60.0
    ),
    _dyn(
        "frozen_after_s",
        _ADM.frozen_after_s,
        "[s] repeated pixels for longer: frozen source, invalid",
        0.0,
        60.0,
    ),
    ParamSpec(
        "reject_repeated_frames", _ADM.reject_repeated, "bit-identical repeats are repeats, not new frames"
    ),
    ParamSpec("check_image_quality", _ADM.check_quality, "reject black, uniform, saturated and noise frames"),
    # calibration
    _dyn("mm_per_px", 0.0, "[mm/px] scale at the isocentre; 0 = from pixel spacing, SID and SOD", 0.0, 10.0),
    _dyn(
        "imager_pixel_spacing_mm",
        0.0,
        "[mm] detector pixel spacing at calibration_width_px; 0 = not given",
        0.0,
        10.0,
    ),
    _dyn("sid_mm", 0.0, "[mm] source-image distance; 0 = not given", 0.0, 3000.0),
    _dyn("sod_mm", 0.0, "[mm] source-object (isocentre) distance, <= sid_mm; 0 = not given", 0.0, 3000.0),
    _dyn(
        "calibration_width_px", 512, "[px] (cropped) image width the scale refers to; 0 = any width", 0, 16384
    ),
    ParamSpec("require_calibration", False, "refuse to activate without an explicit calibration"),
    # preoperative plan and the C-arm view (tavi_perception.plan.obliquity)
    ParamSpec(
        "plan_file", "", "plan YAML of `tavi-perception plan` (or cusp nadirs); empty: no view correction"
    ),
    ParamSpec("carm_angles_given", False, "carm_primary_deg/carm_secondary_deg hold the C-arm's angles"),
    ParamSpec(
        "carm_primary_deg",
        0.0,
        "[deg] C-arm primary angle, + LAO / - RAO (carm_state overrides)",
        -180.0,
        180.0,
    ),
    ParamSpec("carm_secondary_deg", 0.0, "[deg] C-arm secondary angle, + cranial / - caudal", -90.0, 90.0),
    ParamSpec(
        "view_obliquity_limit_deg",
        20.0,
        "[deg] beyond this angle between the annulus plane and the beam the guidance is invalid",
        0.0,
        90.0,
    ),
    ParamSpec(
        "view_annulus_tolerance_deg",
        8.0,
        "[deg] guidance is invalid when the measured annulus line is this far from the plan's in the view",
        0.0,
        90.0,
    ),
    ParamSpec(
        "view_landmark_tolerance_mm",
        2.0,
        "[mm] a contrast line off the plan's is still taken when 2 of AA1, AA2, STJ lie this close to the "
        "registered plan; 0: off",
        0.0,
        20.0,
    ),
    # geometry (names and meanings of tavi_perception.geometry.estimator.GeometryParams)
    _dyn("target_depth_mm", _GEO.target_depth_mm, "[mm] target implantation depth", -20.0, 40.0),
    _dyn("depth_tolerance_mm", _GEO.depth_tolerance_mm, "[mm] half-width of the depth band", 0.0, 20.0),
    ParamSpec(
        "device_preset",
        "",
        "valve and delivery system of config/devices.yaml (e.g. evolut-r-26): sets valve_frame_height_mm "
        "and cp_cd_length_mm where known; empty: those two parameters",
    ),
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
    ParamSpec(
        "annulus_hold_max_s", _GEO.annulus_hold_max_s, "[s] longest gap an annulus is held over", 0.0, 3600.0
    ),
    ParamSpec(
        "reattach_tolerance_mm", _GEO.reattach_tolerance_mm, "[mm] PT back within this: re-attach", 0.1, 50.0
    ),
    ParamSpec(
        "reattach_window_s", _GEO.reattach_window_s, "[s] PT usable within this after a gap", 0.1, 60.0
    ),
    ParamSpec("pt_history_s", _GEO.pt_history_s, "[s] PT positions kept for re-attachment", 0.1, 120.0),
    # tracking (names and meanings of tavi_perception.tracking.TrackerParams)
    ParamSpec("visibility_threshold", _TRK.visibility_threshold, "[1] detection threshold", 0.01, 1.0),
    ParamSpec(
        "measurement_std_px", _TRK.measurement_std_px, "[px] detector noise at visibility 1", 0.01, 100.0
    ),
    ParamSpec("max_coast_s", _TRK.max_coast_s, "[s] prediction-only time before LOST", 0.01, 10.0),
    # outputs
    ParamSpec(
        "metric_frame_id",
        METRIC_FRAME_ID,
        "frame_id of the poses, markers and /tf parent: the image frame in metres (the image header's "
        "frame_id names the pixel frame)",
    ),
    ParamSpec("output_qos_depth", 10, "[messages] queue depth of the reliable outputs", 1, 1000),
    _dyn("overlay_every_n", 1, "[frames] render the overlay every n-th frame (while subscribed)", 1, 1000),
    ParamSpec("diagnostics_period_s", 1.0, "[s] /diagnostics publication period", 0.1, 60.0),
)

_GEOMETRY_KEYS = frozenset(f.name for f in dataclasses.fields(GeometryParams))


def _device_geometry(values: dict[str, object]) -> tuple[GeometryParams, str, list[str]]:
    """Geometry parameters with the ``device_preset`` applied, their device values' source, warnings.

    Raises ``ValueError`` for invalid values or an unknown preset (the node then exits naming it).
    """
    base = GeometryParams(**_subset(values, _GEOMETRY_KEYS))  # type: ignore[arg-type]
    return device_geometry(str(values["device_preset"]), base)


_TRACKER_KEYS = frozenset(f.name for f in dataclasses.fields(TrackerParams))


def _subset(values: dict[str, object], keys: frozenset[str]) -> dict[str, object]:
    return {k: v for k, v in values.items() if k in keys}


# node parameter -> AdmissionParams field
_ADMISSION_FIELDS = {
    "max_frame_age_ms": "max_frame_age_ms",
    "max_future_stamp_ms": "max_future_stamp_ms",
    "stamp_reset_s": "stamp_reset_s",
    "max_image_side_px": "max_image_side_px",
    "gap_after_s": "gap_after_s",
    "frozen_after_s": "frozen_after_s",
    "reject_repeated_frames": "reject_repeated",
    "check_image_quality": "check_quality",
}
_CALIBRATION_KEYS = frozenset(
    ("mm_per_px", "imager_pixel_spacing_mm", "sid_mm", "sod_mm", "calibration_width_px")
)
CALIBRATION_TOPIC = "calibration/mm_per_px"
CARM_TOPIC = "carm_state"


def _admission_fields(values: dict[str, object]) -> dict[str, object]:
    return {field: values[name] for name, field in _ADMISSION_FIELDS.items() if name in values}


def _parameter_calibration(values: dict[str, object]) -> Calibration:
    return calibration_from_parameters(
        values["mm_per_px"],  # type: ignore[arg-type]
        values["imager_pixel_spacing_mm"],  # type: ignore[arg-type]
        values["sid_mm"],  # type: ignore[arg-type]
        values["sod_mm"],  # type: ignore[arg-type]
        values["calibration_width_px"],  # type: ignore[arg-type]
    )


class PerceptionNode(ManagedNode):
    """The perception lifecycle node; see the module docstring for topics and behaviour."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__("perception_node", **kwargs)  # type: ignore[arg-type]
        self._values = declare_parameters(self, PARAMETERS)
        _, self._device_source, device_warnings = _device_geometry(self._values)  # fail fast
        for warning in device_warnings:
            self.get_logger().warning(warning)
        TrackerParams(**_subset(self._values, _TRACKER_KEYS))  # type: ignore[arg-type]
        AdmissionParams(**_admission_fields(self._values))  # type: ignore[arg-type]
        _parameter_calibration(self._values)  # SOD > SID
        self.add_on_set_parameters_callback(dynamic_parameter_guard(PARAMETERS))
        self.add_on_set_parameters_callback(self._check_calibration)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self._pipeline: PerceptionPipeline | None = None
        self._model_path = Path()
        self._model_sha256 = ""
        self._refine_model_paths: dict[str, str] = {}  # refinement models by parameter name; none: off
        self._provider_fallback = ""
        self._subscription = None
        self._calibration_subscription = None
        self._carm_subscription = None
        self._topic_calibration: Calibration | None = None
        self._overlay = OverlayRenderer()
        self._reset_statistics()

    # --- lifecycle -----------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        v = self._values
        try:
            self._model_path = Path(v["model_path"]) if v["model_path"] else shipped_model_path()
            ort = OrtOptions(v["ort_provider"], v["trt_engine_cache_path"], v["trt_fp16"])
            engine = create_engine(self._model_path, v["backend"], v["inference_threads"], ort_options=ort)
        except (FileNotFoundError, ValueError, RuntimeError) as err:
            self.get_logger().error(f"cannot load the model: {err}")
            return TransitionCallbackReturn.FAILURE
        self._model_sha256 = file_sha256(self._model_path)
        refinements: list[Refinement] = []
        self._refine_model_paths = {}
        for target, enabled, path_key, shipped in _REFINEMENTS:
            if not v[enabled]:
                continue
            try:
                path = Path(v[path_key]) if v[path_key] else shipped_model_path(shipped)
                refine_engine = create_engine(path, v["backend"], v["inference_threads"], ort_options=ort)
            except (FileNotFoundError, ValueError, RuntimeError) as err:
                self.get_logger().error(f"cannot load the {target.name} refinement model: {err}")
                return TransitionCallbackReturn.FAILURE
            refinements.append(Refinement(target, refine_engine))
            self._refine_model_paths[path_key] = str(path)
        self._provider_fallback = getattr(engine, "fallback", "")
        if self._provider_fallback:
            self.get_logger().warning(f"inference provider: {self._provider_fallback}")
        try:
            plan = read_plan(Path(v["plan_file"])) if v["plan_file"] else None
        except (OSError, ValueError) as err:
            self.get_logger().error(f"cannot read the plan: {err}")
            return TransitionCallbackReturn.FAILURE
        box = Box(v["roi_x_px"], v["roi_y_px"], v["roi_width_px"], v["roi_height_px"])
        self._pipeline = PerceptionPipeline(
            engine,
            self._calibration(),
            TrackerParams(**_subset(v, _TRACKER_KEYS)),  # type: ignore[arg-type]
            _device_geometry(v)[0],
            AdmissionParams(**_admission_fields(v)),  # type: ignore[arg-type]
            RegionOfInterest(box, auto=bool(v["roi_auto"])),
            ViewCorrection(
                plan,
                float(v["view_obliquity_limit_deg"]),  # type: ignore[arg-type]
                float(v["view_annulus_tolerance_deg"]),  # type: ignore[arg-type]
                float(v["view_landmark_tolerance_mm"]),  # type: ignore[arg-type]
            ),
            refinements,
        )
        if v["carm_angles_given"]:
            self._pipeline.set_carm(CArmPose(v["carm_primary_deg"], v["carm_secondary_deg"]))  # type: ignore[arg-type]
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        self._calibration_subscription = self.create_subscription(
            Float64, CALIBRATION_TOPIC, self._on_calibration, latched
        )
        self._carm_subscription = self.create_subscription(CArmState, CARM_TOPIC, self._on_carm, latched)
        out_qos = QoSProfile(depth=v["output_qos_depth"], reliability=ReliabilityPolicy.RELIABLE)
        self._guidance_pub = self.create_lifecycle_publisher(Guidance, "guidance", out_qos)
        self._keypoints_pub = self.create_lifecycle_publisher(KeypointArray, "keypoints", out_qos)
        pose = PoseWithCovarianceStamped
        self._annulus_pub = self.create_lifecycle_publisher(pose, "annulus_pose", out_qos)
        self._tip_pub = self.create_lifecycle_publisher(pose, "catheter_tip_pose", out_qos)
        self._tf_pub = (
            self.create_lifecycle_publisher(TFMessage, "/tf", QoSProfile(depth=100)) if TFMessage else None
        )
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
        calibration = self._calibration()
        if not calibration.calibrated:
            if v["require_calibration"]:
                self.get_logger().error(
                    "require_calibration: no explicit calibration; set mm_per_px, or "
                    f"imager_pixel_spacing_mm, sid_mm and sod_mm, or publish {CALIBRATION_TOPIC} first"
                )
                return TransitionCallbackReturn.FAILURE
            self.get_logger().warning(
                f"uncalibrated: millimetres use the {calibration.source}; guidance says calibrated=false"
            )
        if v["image_transport"] == "compressed":  # image_transport's naming: <resolved image>/compressed
            topic = self.resolve_topic_name("image") + "/compressed"
            self._subscription = self.create_subscription(CompressedImage, topic, self._on_image, qos)
        else:
            self._subscription = self.create_subscription(Image, "image", self._on_image, qos)
        self.get_logger().info(
            f"active: listening on {self._subscription.topic_name}; scale {calibration.source}"
        )
        return super().on_activate(state)

    def _stop(self) -> None:
        self._destroy("_subscription")

    def _release(self) -> None:
        if self._pipeline is None:
            return
        self._destroy("_calibration_subscription", "_carm_subscription")
        self._topic_calibration = None
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
        ) + ((self._tf_pub,) if self._tf_pub is not None else ())

    # --- parameters ----------------------------------------------------------------------------

    def _check_calibration(self, params: list[Parameter]) -> SetParametersResult:
        new = {**self._values, **{p.name: p.value for p in params}}
        try:
            calibration = _parameter_calibration(new)
        except ValueError as err:
            return SetParametersResult(successful=False, reason=str(err))
        if new["require_calibration"] and self._topic_calibration is None and not calibration.calibrated:
            return SetParametersResult(
                successful=False, reason=f"require_calibration: this would leave the {calibration.source}"
            )
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params: list[Parameter]) -> None:
        changed = {p.name: p.value for p in params if p.name in self._values}
        self._values.update(changed)
        if self._pipeline is not None and changed.keys() & _GEOMETRY_KEYS:
            estimator = self._pipeline.estimator
            estimator.params = dataclasses.replace(estimator.params, **_subset(changed, _GEOMETRY_KEYS))
        if self._pipeline is not None and changed.keys() & _ADMISSION_FIELDS.keys():
            admission = self._pipeline.admission
            admission.params = dataclasses.replace(admission.params, **_admission_fields(changed))
        if self._pipeline is not None and changed.keys() & _CALIBRATION_KEYS:
            self._pipeline.calibration = self._calibration()
        if changed:
            self.get_logger().info(f"parameters changed: {changed}")

    def _calibration(self) -> Calibration:
        """The calibration topic's latest value, else the parameters'."""
        return self._topic_calibration or _parameter_calibration(self._values)

    def _on_calibration(self, msg: Float64) -> None:
        try:
            calibration = Calibration(float(msg.data), 0, True, f"topic {CALIBRATION_TOPIC} {msg.data:g}")
        except ValueError as err:
            self.get_logger().error(f"ignoring {CALIBRATION_TOPIC}: {err}")
            return
        self._topic_calibration = calibration
        if self._pipeline is not None:
            self._pipeline.calibration = calibration
        self.get_logger().info(f"calibration from {CALIBRATION_TOPIC}: {msg.data:g} mm/px")

    def _on_carm(self, msg: CArmState) -> None:
        pose = CArmPose(
            msg.primary_angle_deg,
            msg.secondary_angle_deg,
            msg.sid_mm,
            msg.field_size_mm,
            msg.table_x_mm,
            msg.table_y_mm,
            msg.table_z_mm,
        )
        reason = self._pipeline.set_carm(pose) if self._pipeline is not None else None
        self._carm_state = ", ".join(
            f"{k} {v:g}" for k, v in dataclasses.asdict(pose).items() if math.isfinite(v)
        )
        if reason is not None:
            self.get_logger().warning(f"{reason}: tracking restarts, the annulus needs a new aortogram")

    # --- frames --------------------------------------------------------------------------------

    def _on_image(self, msg: Image | CompressedImage, info: dict) -> None:
        received_s = time.perf_counter()
        now_s = time.monotonic()
        self._rate_in.tick(now_s)
        self._count_transport_drops(info)
        try:
            self._handle(msg, received_s)
        except Exception as err:  # never let a frame take the node down; hold the controller instead
            self._errors += 1
            reason = f"internal error: {err}"
            self.get_logger().error(f"frame failed: {err}\n{traceback.format_exc()}")
            if self._pipeline is not None:
                self._publish_invalid(msg.header, self._pipeline.invalid_estimate(reason))

    def _handle(self, msg: Image | CompressedImage, received_s: float) -> None:
        pipeline = self._pipeline
        assert pipeline is not None  # images are subscribed only while active
        header = msg.header
        t_s = stamp_ns(header.stamp) * 1e-9
        now_s = self.get_clock().now().nanoseconds * 1e-9
        raw = isinstance(msg, Image)
        outcome = pipeline.screen(t_s, now_s, msg.width, msg.height) if raw else pipeline.screen(t_s, now_s)
        image = None
        if outcome is None:
            try:
                image = image_to_grey(msg) if raw else compressed_to_grey(msg)
                outcome = pipeline.step(t_s, now_s, image)
            except ValueError as err:  # ImageConversionError, or an image the engine or the ROI cannot take
                outcome = pipeline.undecodable(t_s, str(err))
        if image is not None:
            kind = msg.encoding if raw else msg.format
            self._image_size = f"{image.shape[1]}x{image.shape[0]} {kind}"
        if isinstance(outcome, UnprocessedFrame):
            if outcome.estimate is not None:  # a repeat (no estimate) is answered with nothing
                self._publish_invalid(header, outcome.estimate)
            return
        self._publish(header, image, outcome, received_s)

    def _publish_invalid(self, header: Header, estimate: GuidanceEstimate) -> None:
        latency_ms = (self.get_clock().now().nanoseconds - stamp_ns(header.stamp)) * 1e-6
        self._guidance_pub.publish(guidance_to_msg(estimate, header, latency_ms))
        self._invalid += 1
        self._last_problem = estimate.invalid_reason
        self.get_logger().warning(estimate.invalid_reason, throttle_duration_sec=2.0)

    def _publish(self, header: Header, image: np.ndarray, result: FrameResult, received_s: float) -> None:
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

        tracked, det = result.tracked, result.detections
        kp_args = (tracked.xy_px, tracked.velocity_px_s, tracked.std_px, tracked.state)
        kp_msg = keypoints_to_msg(
            header, image.shape[1], image.shape[0], *kp_args, det.visibility, det.group_probability
        )
        self._keypoints_pub.publish(kp_msg)
        metric = Header(stamp=header.stamp, frame_id=self._values["metric_frame_id"])
        if guidance.annulus_valid:
            self._annulus_pub.publish(annulus_pose(metric, guidance, tracked.xy_px, tracked.std_px))
            if self._tf_pub is not None:
                self._tf_pub.publish(TFMessage(transforms=[annulus_transform(metric, guidance)]))
        if guidance.catheter_valid:
            self._tip_pub.publish(tip_pose(metric, tracked.xy_px, tracked.std_px, guidance.mm_per_px))
        if self._markers_pub.get_subscription_count() > 0:
            self._markers_pub.publish(markers(metric, tracked.xy_px, tracked.state, guidance))
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
        self._carm_state = ""  # the last C-arm state received on carm_state
        self._rate_in = RateMeter()
        self._rate_out = RateMeter()
        self._latency = LatencyWindow()
        self._processing = LatencyWindow()
        self._inference = LatencyWindow()
        self._last_seq: dict[bytes, int] = {}
        self._processed = self._valid = self._invalid = self._errors = self._dropped_transport = 0
        self._frames_since_overlay = 0
        self._tracking_state = Guidance.TRACKING_LOST
        self._image_size = ""
        self._last_problem = ""

    def _publish_diagnostics(self) -> None:
        now_s = time.monotonic()
        active = self._subscription is not None
        counts = self._pipeline.admission.counts if self._pipeline else {}
        calibration = self._calibration()
        values: dict[str, object] = {
            "active": active,
            "input_rate_hz": self._rate_in.rate_hz(now_s),
            "output_rate_hz": self._rate_out.rate_hz(now_s),
            "frames_received": self._rate_in.total,
            "frames_processed": self._processed,
            "guidance_valid": self._valid,
            "guidance_invalid": self._invalid,
            "dropped_transport": self._dropped_transport,
            # frames per admission rule (tavi_perception.core.admission.RULES)
            **{f"admission_{rule}": counts.get(rule, 0) for rule in RULES},
            "internal_errors": self._errors,
            "calibrated": calibration.calibrated,
            "calibration_source": calibration.source,
            "device_values": self._device_source,
            "carm_state": self._carm_state,
            "latency_ms_p50": self._latency.percentile(50),
            "latency_ms_p99": self._latency.percentile(99),
            "processing_ms_p50": self._processing.percentile(50),
            "processing_ms_p99": self._processing.percentile(99),
            "inference_ms_p50": self._inference.percentile(50),
            "backend": self._pipeline.backend if self._pipeline else "",
            "provider_fallback": self._provider_fallback,
            "model_path": str(self._model_path),
            "model_sha256": self._model_sha256,
            "refine_model_path": self._refine_model_paths.get("refine_model_path", ""),
            "refine_root_model_path": self._refine_model_paths.get("refine_root_model_path", ""),
            "image": self._image_size,
            "tracking_state": self._tracking_state,
            "last_problem": self._last_problem,
        }
        if not active:
            level, message = DiagnosticStatus.WARN, "inactive"
        elif self._rate_in.rate_hz(now_s) == 0.0:
            level, message = DiagnosticStatus.WARN, "no images"
        elif not calibration.calibrated:
            level, message = DiagnosticStatus.WARN, "uncalibrated"
        elif self._tracking_state == Guidance.TRACKING_OK:
            level, message = DiagnosticStatus.OK, "tracking"
        else:
            level, message = DiagnosticStatus.WARN, self._last_problem or "tracking degraded"
        array = DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()))
        array.status = [
            status(self.get_fully_qualified_name(), "pipeline", "perception", level, message, values)
        ]
        self._diagnostics_pub.publish(array)


def main(argv: list[str] | None = None) -> int:
    """Run the perception node; with ``autostart`` it configures and activates itself."""
    return run(PerceptionNode, "perception_node", argv)


if __name__ == "__main__":
    sys.exit(main())
