"""One frame through admission -> engine -> tracker -> geometry, with per-stage timings (no ROS).

The perception node, the offline runner, the evaluations and the benchmarks run frames through
:class:`PerceptionPipeline` (the demo and the closed-loop trials through the node); the node adds only
message conversion and publication around it. A frame either comes out as a :class:`FrameResult`
(admitted and measured) or as an :class:`UnprocessedFrame`: rejected, with an invalid guidance that
carries the reason, or a repeat of the last frame's pixels, answered with nothing.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tavi_perception.core.admission import Admission, AdmissionParams, Continuity, FrameAdmission, Verdict
from tavi_perception.core.calibration import Calibration
from tavi_perception.core.carm import CArmPose, change_reason
from tavi_perception.core.roi import RegionOfInterest
from tavi_perception.geometry.estimator import GeometryParams, GuidanceEstimator
from tavi_perception.guidance import GuidanceEstimate
from tavi_perception.inference.engines import Detections, InferenceEngine
from tavi_perception.inference.refinement import Refinement
from tavi_perception.keypoints import Kp
from tavi_perception.plan.obliquity import ViewCorrection
from tavi_perception.share import SOURCE_ROOT, first_file, installed
from tavi_perception.tracking import KeypointTracker, TrackedKeypoints, TrackerParams

SHIPPED_MODEL = "tavi_keypoints.onnx"
SHIPPED_REFINE_MODEL = "tavi_valve_refine.onnx"  # the valve refinement's second look (refinement.py)
SHIPPED_ROOT_REFINE_MODEL = "tavi_root_refine.onnx"  # the root refinement's second look


def shipped_model_path(name: str = SHIPPED_MODEL) -> Path:
    """A shipped model (default: the keypoint model; :data:`SHIPPED_REFINE_MODEL`: the valve refinement):
    installed share folders (AMENT_PREFIX_PATH, this prefix), then the source tree.

    Raises ``FileNotFoundError`` listing where it looked.
    """
    candidates = [*installed("models", name), SOURCE_ROOT / "models" / name]
    return first_file(candidates, f"shipped model {name}")


@dataclass(frozen=True)
class FrameResult:
    """Everything computed for an admitted frame."""

    t_s: float  # [s] image stamp
    admission: Admission  # ADMITTED, with its continuity
    detections: Detections
    tracked: TrackedKeypoints
    estimate: GuidanceEstimate
    admission_ms: float  # [ms] admission rules (stamps, repeat, image quality)
    infer_ms: float  # [ms] engine (pre-processing, network, post-processing; the refinement included)
    track_ms: float  # [ms] tracker update
    geometry_ms: float  # [ms] geometry update


@dataclass(frozen=True)
class UnprocessedFrame:
    """A frame that did not reach the network: a rejection (invalid guidance) or a repeat (nothing)."""

    t_s: float  # [s] image stamp
    admission: Admission  # REJECTED (with the reason) or REPEAT
    estimate: GuidanceEstimate | None  # the invalid guidance of a rejection; None for a repeat


class PerceptionPipeline:
    """Stateful per-frame perception: admission -> engine -> tracker -> geometry (module docstring).

    Admission (:class:`~tavi_perception.core.admission.FrameAdmission`) is the one place that decides
    whether a frame is a new measurement and where a sequence starts: on ``NEW_SEQUENCE`` the tracker
    and the estimator start a sequence, on ``GAP`` they resume after the gap, before the update; a
    rejected or repeated frame reaches neither, so no track coasts through it as if it were measured.

    ``roi`` crops each frame to its fluoroscopy area first; detections, tracks and geometry are in the
    input frame's pixels (the crop's origin added back), the scale is the ``calibration``'s for the
    cropped width. ``calibration`` may be replaced at any time (a calibration topic, a parameter change);
    every estimate carries its ``calibrated`` flag and source.

    ``view`` corrects each estimate for the C-arm view's obliquity to the preoperative plan's annulus
    plane, with the angles of the last :meth:`set_carm` (:mod:`tavi_perception.plan.obliquity`).

    ``refinements`` read their points a second time on a full-resolution crop around the first reading
    (:mod:`tavi_perception.inference.refinement`: the frame edges, the annulus landmarks), in turn,
    before tracking.
    """

    def __init__(
        self,
        engine: InferenceEngine | None,
        calibration: Calibration,
        tracker_params: TrackerParams | None = None,
        geometry_params: GeometryParams | None = None,
        admission_params: AdmissionParams | None = None,
        roi: RegionOfInterest | None = None,
        view: ViewCorrection | None = None,
        refinements: Sequence[Refinement] = (),
    ) -> None:
        self.engine = engine
        self.refinements = tuple(refinements)
        self.view = view or ViewCorrection(None)
        self.calibration = calibration
        self.admission = FrameAdmission(admission_params)
        self.tracker = KeypointTracker(tracker_params)
        self.estimator = GuidanceEstimator(geometry_params)
        self.roi = roi or RegionOfInterest()
        self._carm: CArmPose | None = None
        self._view_change: str | None = None  # a C-arm change not yet applied to the next admitted frame

    @property
    def backend(self) -> str:
        return self.engine.backend if self.engine is not None else ""

    def screen(
        self, t_s: float, now_s: float | None, width_px: int | None = None, height_px: int | None = None
    ) -> UnprocessedFrame | None:
        """The rules that need no pixels, before decoding (the size when known): the rejection, or None."""
        rejection = self.admission.screen(t_s, now_s, width_px, height_px)
        return None if rejection is None else self._unprocessed(t_s, rejection)

    def undecodable(self, t_s: float, reason: str) -> UnprocessedFrame:
        """The answer to a frame whose message could not be decoded."""
        return self._unprocessed(t_s, self.admission.undecodable(reason))

    def step(self, t_s: float, now_s: float | None, image: np.ndarray) -> FrameResult | UnprocessedFrame:
        """Run one (H, W) grey frame stamped ``t_s`` [s].

        ``now_s`` [s]: the receiver's clock in the stamps' time base (stale and future-stamp rules), None
        offline. Raises ``ValueError`` for an image the engine cannot take (wrong shape, too small) or a
        fixed region of interest that does not fit it.
        """
        if self.engine is None:
            raise RuntimeError("this pipeline has no engine: use step_detections")
        t0 = time.perf_counter()
        cropped, origin_px = self.roi.crop(image)
        admission = self.admission.admit(t_s, now_s, cropped)
        t1 = time.perf_counter()
        if not admission.admitted:
            return self._unprocessed(t_s, admission)
        detections = self.engine.infer(cropped)
        mm_per_px = self.calibration.for_width(cropped.shape[1])
        for refinement in self.refinements:
            detections = refinement(cropped, detections, mm_per_px)
        if origin_px != (0, 0):
            shifted = detections.xy_px + np.asarray(origin_px, dtype=float)
            detections = dataclasses.replace(detections, xy_px=shifted)
        t2 = time.perf_counter()
        return self._follow(t_s, admission, detections, mm_per_px, 1e3 * (t1 - t0), 1e3 * (t2 - t1))

    def step_detections(
        self, t_s: float, detections: Detections, width_px: int
    ) -> FrameResult | UnprocessedFrame:
        """The same journey for detections made elsewhere on a ``width_px`` wide frame (simulated
        detector noise): the stamp rules only, as there are no pixels."""
        t0 = time.perf_counter()
        admission = self.admission.admit_stamp(t_s, None)
        t1 = time.perf_counter()
        if not admission.admitted:
            return self._unprocessed(t_s, admission)
        mm_per_px = self.calibration.for_width(width_px)
        return self._follow(t_s, admission, detections, mm_per_px, 1e3 * (t1 - t0), 0.0)

    def set_carm(self, pose: CArmPose) -> str | None:
        """The C-arm's reported state (a C-arm state topic, parameters, a recording's DICOM angles).

        A change of view (:func:`~tavi_perception.core.carm.change_reason`) makes the next admitted frame
        start a new sequence: every track, the annulus (held across pedal gaps or pigtail-bound) and the
        learned projected distances belong to the old view; the annulus reason says the C-arm moved.
        States are compared with the one the current view started from, so a slow drift adds up.
        Returns the change's reason, or None.
        """
        reason = change_reason(self._carm, pose)
        if self._carm is None or reason is not None:  # the view's reference: slow drift adds up
            self._carm = pose
        if reason is not None:
            self._view_change = reason
        return reason

    def invalid_estimate(self, reason: str) -> GuidanceEstimate:
        """The guidance of a frame that was not measured (every block invalid because of ``reason``), with
        the configured target and tolerance and the calibration."""
        params = self.estimator.params
        estimate = GuidanceEstimate.invalid(reason, params.target_depth_mm, params.depth_tolerance_mm)
        self._stamp_calibration(estimate)
        return estimate

    def _unprocessed(self, t_s: float, admission: Admission) -> UnprocessedFrame:
        rejected = admission.verdict is Verdict.REJECTED
        return UnprocessedFrame(t_s, admission, self.invalid_estimate(admission.reason) if rejected else None)

    def _stamp_calibration(self, estimate: GuidanceEstimate) -> None:
        estimate.calibrated = self.calibration.calibrated
        estimate.calibration_source = self.calibration.source

    def _follow(
        self,
        t_s: float,
        admission: Admission,
        detections: Detections,
        mm_per_px: float,
        admission_ms: float,
        infer_ms: float,
    ) -> FrameResult:
        if self._view_change is not None:
            self.tracker.start_sequence()
            self.estimator.start_sequence()
            self.estimator.invalidate_annulus(self._view_change)
            self._view_change = None
        elif admission.continuity is Continuity.NEW_SEQUENCE:
            self.tracker.start_sequence()
            self.estimator.start_sequence()
        elif admission.continuity is Continuity.GAP:
            self.tracker.resume_after_gap(admission.gap_s)
            self.estimator.resume_after_gap(admission.gap_s)
        t0 = time.perf_counter()
        tracked = self.tracker.update(t_s, detections.xy_px, detections.visibility)
        t1 = time.perf_counter()
        carm = self._carm or CArmPose()
        self.estimator.planned_annulus = self.view.planned_annulus(
            carm.primary_angle_deg, carm.secondary_angle_deg
        )
        estimate = self.estimator.update(t_s, tracked, mm_per_px)
        fe_span_mm = float(np.hypot(*(tracked.xy_px[Kp.FE2] - tracked.xy_px[Kp.FE1]))) * mm_per_px
        self.view.apply(estimate, carm.primary_angle_deg, carm.secondary_angle_deg, fe_span_mm)
        t2 = time.perf_counter()
        self._stamp_calibration(estimate)
        return FrameResult(
            t_s,
            admission,
            detections,
            tracked,
            estimate,
            admission_ms,
            infer_ms,
            1e3 * (t1 - t0),
            1e3 * (t2 - t1),
        )
