"""TAVI guidance in millimetres from tracked keypoints (no ROS).

:class:`GuidanceEstimator` turns one frame of :class:`~tavi_perception.tracking.TrackedKeypoints` into a
:class:`GuidanceEstimate` whose fields mirror ``tavi_msgs/msg/Guidance.msg`` one-to-one (all but
``header`` and ``latency_ms``, which the node fills), so the node copies them into the message by name.

Blocks and their validity (each invalid block says why in ``*_reason``; numbers of an invalid block are NaN):

- annulus: CONTRAST when AA1, AA2, STJ1 and STJ2 are all MEASURED this frame; while PT is measured too,
  the pose is bound to PT (:mod:`.binding`). Otherwise PIGTAIL_BOUND, carried by PT's translation with
  the orientation held, as long as PT is usable; PT missing for more than ``pigtail_missing_max_s``, or
  PT's track restarting (the detector jumped and stayed: perhaps another feature), drops the binding
  (annulus LOST until the next contrast). A projected AA1-AA2 distance outside the
  sanity range is invalid, and so is a contrast annulus more than ``annulus_consistency_mm`` from the
  pigtail-carried one.
- catheter: CT and CD usable and the annulus valid; tip depth/lateral within the sanity limits; while CP
  is usable, CT within ``anchor_consistency_mm`` of its distance from CP learned as a running median
  (CT-CP is fixed).
- stent: FE1 and FE2 usable and the annulus valid; while CP is usable, the FE1-FE2 midpoint (the inflow
  edge's centre, which sits at CT) within ``anchor_consistency_mm`` of the learned CT-CP distance from CP;
  depths within the sanity limits and, while the tip is measured, the mean depth within
  ``stent_tip_consistency_mm`` of the tip depth; before deployment has started, a valid retraction of at
  least ``stent_min_retraction_mm`` (edges show once uncovered).
- extraction: CP and CD usable; closed-capsule CP-CD reference from ``cp_cd_closed_mm``, or, when that is
  0, the median of ``reference_learn_frames`` frames with CP and CD measured, no frame edge in sight and
  deployment not started (capsule still closed), the newest ``reference_lag_frames`` of them left out.
  Learning goes on until the edges show, so the reference is taken where the deployment happens: the
  projected CP-CD distance changes by several millimetres with foreshortening while the delivery system
  advances through the arch. Retraction outside ``[-margin, height + margin]``: invalid.
- guidance: depth source TIP until deployment starts (latched once a retraction >= ``deployment_start_mm``
  is measured together with valid frame edges: a misdetected CD can fake a retraction, but the capsule
  uncovering the frame shows both edges), STENT afterwards; the latch is released when the stent block
  stays invalid for ``deployment_release_s`` (a false latch must not hold the loop forever). ``valid``
  only when the annulus and the active depth block are valid.

A keypoint is *usable* when MEASURED, or PREDICTED for at most ``max_predicted_s``, its track has
accepted at least ``min_track_hits`` detections (a track born on one outlier is not trusted) and its
1-sigma uncertainty is at most ``max_keypoint_std_mm``; LOST (coasted-out) keypoints are never used.
Tracked keypoints more than ``max_staleness_s`` away from the estimate time invalidate everything.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from tavi_perception.geometry.binding import PigtailBinding
from tavi_perception.geometry.deviations import (
    axis_tilt_deg,
    capsule_retraction_mm,
    catheter_deviation,
    deployment_fraction,
    stent_axis_px,
    stent_deviation,
)
from tavi_perception.geometry.frames import AnnulusFrame, annulus_frame_from_keypoints
from tavi_perception.keypoints import GROUP_MEMBERS, Group, Kp
from tavi_perception.tracking.tracker import KeypointState, TrackedKeypoints


class TrackingState(IntEnum):
    """Values equal ``tavi_msgs/Guidance`` ``TRACKING_*``."""

    OK = 0
    DEGRADED = 1
    LOST = 2


class AnnulusSource(IntEnum):
    """Values equal ``tavi_msgs/Guidance`` ``ANNULUS_*``."""

    NONE = 0
    CONTRAST = 1
    PIGTAIL_BOUND = 2


class DepthSource(IntEnum):
    """Values equal ``tavi_msgs/Guidance`` ``DEPTH_SOURCE_*``."""

    NONE = 0
    TIP = 1
    STENT = 2


@dataclass(frozen=True)
class GeometryParams:
    """Geometry and guidance parameters (millimetres at the isocentre, seconds, degrees)."""

    target_depth_mm: float = 4.0  # [mm] target implantation depth (self-expanding valves: ~3-5 mm)
    depth_tolerance_mm: float = 1.0  # [mm] half-width of the acceptable band around the target
    valve_frame_height_mm: float = 18.0  # [mm] valve frame height (SAPIEN 3 26 mm-like: 18 mm)
    cp_cd_closed_mm: float = 0.0  # [mm] projected CP-CD distance with the capsule closed; 0 = learn it online
    # [mm] true (3D) CP-CD length of the delivery system with the capsule closed, from its specification;
    # with it the retraction is (1 - d / d_closed) x this length, free of the view's foreshortening
    # (the projected difference d_closed - d is shortened by the cosine of the catheter's out-of-plane
    # angle, so a full deployment would read a few percent short). 0 = unknown: projected difference.
    cp_cd_length_mm: float = 0.0
    # frames in the running medians: the latest closed-capsule CP-CD distances (the learned reference) and
    # the minimum count before the CT-CP distance is used
    reference_learn_frames: int = 10
    # [frames] the newest closed-capsule frames left out of the CP-CD reference: the capsule retracts a
    # little before the frame edges are detected (30 frames = 2 s at 15 fps, ~1-2 mm at 1-2 mm/s)
    reference_lag_frames: int = 30
    # [mm] retraction from which deployment counts as started (latched). Above the ~1 mm by which the
    # projected CP-CD distance wanders with foreshortening while the closed capsule moves in.
    deployment_start_mm: float = 3.0
    # [s] a latched deployment whose stent block stays invalid this long is released (depth source back to
    # the tip, closed-capsule reference learning resumed): a started deployment keeps its expanded frame
    # edges in view, so edges gone for good mean the latch was false (a drifting reference and phantom
    # edges together); the tip depth stays a valid depth of the inflow edge either way
    deployment_release_s: float = 3.0
    retraction_margin_mm: float = 3.0  # [mm] retraction tolerated below 0 and above the frame height
    # [mm] sanity range of the *projected* AA1-AA2 distance. The hinge points are two cusp nadirs ~120°
    # apart on the annulus (chord ~0.87 x the 18-30 mm diameter), foreshortened by the view: the
    # simulator's test-split views give 8-24 mm, so the range is wider than the clinical diameters.
    annulus_diameter_min_mm: float = 6.0
    annulus_diameter_max_mm: float = 40.0
    # [mm] a contrast annulus this far from the pigtail-carried one is inconsistent (the binding keeps
    # averaging the contrast, so a real change is accepted within ~2 binding_average_s)
    annulus_consistency_mm: float = 3.0
    # [mm] stent mean depth this far from the tip depth is inconsistent: the frame's inflow edge sits at
    # CT (delivery-system contract, docs/ARCHITECTURE.md)
    stent_tip_consistency_mm: float = 5.0
    # [mm] CP, the tip CT and the centre of the frame's inflow edge (FE1-FE2 midpoint) are fixed to each
    # other on the inner shaft: CT, and the frame-edge midpoint, this much farther from or nearer to CP
    # than the CT-CP distance learned over the last anchor_window_frames frames with both measured
    # (their median, once reference_learn_frames are in) is a misdetection. The projected distance
    # changes with foreshortening by ~1 mm while the catheter moves; the running median forgets early
    # misdetections.
    anchor_consistency_mm: float = 4.0
    anchor_window_frames: int = 300  # [frames] window of the CT-CP running median (20 s at 15 fps)
    # [mm] before deployment has started, frame edges need at least this capsule retraction (they show
    # once the capsule uncovers the frame; 1 mm is above the projected CP-CD noise)
    stent_min_retraction_mm: float = 1.0
    depth_limit_mm: float = 40.0  # [mm] |depth| beyond this is inconsistent (tip and frame edges)
    lateral_limit_mm: float = 30.0  # [mm] |tip lateral offset| beyond this is inconsistent
    pigtail_missing_max_s: float = 0.5  # [s] PT unusable this long drops the binding (annulus LOST)
    binding_average_s: float = 0.5  # [s] time constant of the binding's average over contrast frames
    max_predicted_s: float = 0.2  # [s] longest coasting of a keypoint still used for a valid block
    min_track_hits: int = 3  # accepted detections a track needs before a valid block uses it
    max_keypoint_std_mm: float = 2.0  # [mm] largest 1-sigma keypoint uncertainty used for a valid block
    max_staleness_s: float = 0.5  # [s] largest age of the tracked keypoints at the estimate time

    def __post_init__(self) -> None:
        checks = {
            "depth_tolerance_mm must be >= 0": self.depth_tolerance_mm >= 0,
            "valve_frame_height_mm must be > 0": self.valve_frame_height_mm > 0,
            "cp_cd_closed_mm must be >= 0 (0 = learn)": self.cp_cd_closed_mm >= 0,
            "cp_cd_length_mm must be >= 0 (0 = unknown)": self.cp_cd_length_mm >= 0,
            "reference_learn_frames must be >= 1": self.reference_learn_frames >= 1,
            "reference_lag_frames must be >= 0": self.reference_lag_frames >= 0,
            "deployment_start_mm must be > 0": self.deployment_start_mm > 0,
            "deployment_release_s must be > 0": self.deployment_release_s > 0,
            "retraction_margin_mm must be >= 0": self.retraction_margin_mm >= 0,
            "annulus diameter range must be 0 < min < max": 0
            < self.annulus_diameter_min_mm
            < self.annulus_diameter_max_mm,
            "annulus_consistency_mm must be > 0": self.annulus_consistency_mm > 0,
            "stent_tip_consistency_mm must be > 0": self.stent_tip_consistency_mm > 0,
            "anchor_consistency_mm must be > 0": self.anchor_consistency_mm > 0,
            "anchor_window_frames must be >= 1": self.anchor_window_frames >= 1,
            "depth_limit_mm must be > 0": self.depth_limit_mm > 0,
            "lateral_limit_mm must be > 0": self.lateral_limit_mm > 0,
            "pigtail_missing_max_s must be >= 0": self.pigtail_missing_max_s >= 0,
            "binding_average_s must be >= 0": self.binding_average_s >= 0,
            "max_predicted_s must be >= 0": self.max_predicted_s >= 0,
            "min_track_hits must be >= 1": self.min_track_hits >= 1,
            "max_keypoint_std_mm must be > 0": self.max_keypoint_std_mm > 0,
            "max_staleness_s must be >= 0": self.max_staleness_s >= 0,
        }
        errors = [msg for msg, ok in checks.items() if not ok]
        if errors:
            raise ValueError("invalid GeometryParams: " + "; ".join(errors))


_NAN = math.nan
ANATOMY = GROUP_MEMBERS[Group.ANATOMICAL]


@dataclass
class GuidanceEstimate:
    """One frame of guidance; field names and meanings are those of ``tavi_msgs/msg/Guidance.msg``."""

    valid: bool = False
    tracking_state: int = TrackingState.LOST
    invalid_reason: str = ""
    # annulus block
    annulus_valid: bool = False
    annulus_reason: str = ""
    annulus_source: int = AnnulusSource.NONE
    annulus_origin_x_px: float = _NAN
    annulus_origin_y_px: float = _NAN
    annulus_angle_deg: float = _NAN
    mm_per_px: float = _NAN
    annulus_diameter_mm: float = _NAN
    # catheter block
    catheter_valid: bool = False
    catheter_reason: str = ""
    tip_depth_mm: float = _NAN
    tip_lateral_mm: float = _NAN
    coaxiality_deg: float = _NAN
    # stent block
    stent_valid: bool = False
    stent_reason: str = ""
    fe1_depth_mm: float = _NAN
    fe2_depth_mm: float = _NAN
    stent_mean_depth_mm: float = _NAN
    stent_asymmetry_mm: float = _NAN
    stent_tilt_deg: float = _NAN
    delivery_tilt_deg: float = _NAN  # CP->CT, else the stent axis (image sense)
    # extraction block
    extraction_valid: bool = False
    extraction_reason: str = ""
    capsule_retraction_mm: float = _NAN
    deployment_fraction: float = _NAN
    # guidance
    depth_source: int = DepthSource.NONE
    depth_mm: float = _NAN
    target_depth_mm: float = _NAN
    depth_tolerance_mm: float = _NAN
    depth_error_mm: float = _NAN


class _RunningMedian:
    """Median [mm] of the ``window`` samples before the newest ``lag``, once ``min_samples`` are in it.

    For a distance that should be constant while it is learned but whose measurements may be wrong for
    a while: unlike a reference fixed from the first frames, it recovers once correct frames are the
    majority. The lag keeps the newest samples out, for a distance about to change unseen (the capsule
    starts retracting a little before the frame edges show).
    """

    def __init__(self, window: int, min_samples: int, lag: int = 0) -> None:
        self._samples: deque[float] = deque(maxlen=window + lag)
        self.min_samples = min_samples
        self._lag = lag

    @property
    def count(self) -> int:
        return max(0, len(self._samples) - self._lag)

    @property
    def value_mm(self) -> float | None:
        if self.count < self.min_samples:
            return None
        return float(np.median(list(self._samples)[: self.count]))

    def observe(self, distance_mm: float) -> None:
        self._samples.append(distance_mm)


class GuidanceEstimator:
    """Stateful per-frame geometry: pigtail binding, closed-capsule reference and deployment latch."""

    def __init__(self, params: GeometryParams | None = None) -> None:
        self.params = params or GeometryParams()
        self.reset()

    def reset(self) -> None:
        """Forget the binding, the learned reference and the deployment latch (a new procedure)."""
        p = self.params
        self._t_s: float | None = None
        self._binding = PigtailBinding(p.binding_average_s)
        self._pt_seen_s = -math.inf
        self._pt_hits = 0  # detections accepted by PT's track when PT was last usable
        self._binding_dropped = ""  # why the last binding was dropped, until the next one
        # closed-capsule CP-CD [mm]: the latest frames before the frame edges showed (unless fixed)
        self._reference = _RunningMedian(
            p.reference_learn_frames, p.reference_learn_frames, p.reference_lag_frames
        )
        self._tip_anchor = _RunningMedian(p.anchor_window_frames, p.reference_learn_frames)  # CT-CP [mm]
        self._deployment_started = False
        self._stent_valid_s = -math.inf  # last time the stent block was valid [s]

    def update(self, t_s: float, tracked: TrackedKeypoints, mm_per_px: float) -> GuidanceEstimate:
        """Guidance for time ``t_s`` [s] from ``tracked`` keypoints with scale ``mm_per_px`` [mm/px]."""
        if not math.isfinite(t_s):
            raise ValueError(f"t_s must be a finite time in seconds, got {t_s!r}")
        if self._t_s is not None and t_s < self._t_s:
            self.reset()
        self._t_s = t_s
        p = self.params
        est = GuidanceEstimate(
            mm_per_px=float(mm_per_px),
            target_depth_mm=p.target_depth_mm,
            depth_tolerance_mm=p.depth_tolerance_mm,
        )
        problem = None
        if not (math.isfinite(mm_per_px) and mm_per_px > 0):
            problem = f"mm_per_px must be positive and finite, got {mm_per_px!r}"
        elif abs(t_s - tracked.t_s) > p.max_staleness_s:
            problem = f"tracked keypoints are stale ({t_s - tracked.t_s:+.2f} s from the estimate time)"
        if problem is not None:
            for block in ("annulus", "catheter", "stent", "extraction"):
                setattr(est, f"{block}_reason", problem)
            est.invalid_reason = problem
            return est

        view = _KeypointView(tracked, mm_per_px, p)
        self._learn_anchor(view)
        annulus = self._annulus(t_s, view, est)
        self._catheter(view, annulus, est)
        self._extraction(view, est)
        self._stent(view, annulus, est)
        self._delivery_tilt(view, annulus, est)
        self._release_false_deployment(t_s, est)
        if est.stent_valid and est.extraction_valid and est.capsule_retraction_mm >= p.deployment_start_mm:
            self._deployment_started = True
        self._guidance(est)
        return est

    # --- blocks -------------------------------------------------------------------------------------

    def _annulus(
        self, t_s: float, view: _KeypointView, est: GuidanceEstimate
    ) -> tuple[AnnulusFrame, np.ndarray] | None:
        p = self.params
        pt_problem = view.problem(Kp.PT)
        if pt_problem is None:
            self._pt_seen_s = t_s
        if pt_problem is None:
            pt_hits = int(view.tracked.hits[Kp.PT])
            if pt_hits < self._pt_hits and self._binding.bound:
                # a usable PT whose track is younger than the last usable one is a restarted track
                # (the detector jumped and stayed): it may follow another feature, and carrying the
                # annulus with it would move the annulus by the jump
                self._binding.clear()
                self._binding_dropped = "pigtail PT track restarted"
            self._pt_hits = pt_hits

        contrast_problem = view.first_problem((Kp.AA1, Kp.AA2, Kp.STJ1, Kp.STJ2), measured=True)
        if contrast_problem is None:
            xy = view.tracked.xy_px
            try:
                frame = annulus_frame_from_keypoints(xy)
            except ValueError as exc:
                contrast_problem = str(exc)
            else:
                diameter_mm = float(np.hypot(*(xy[Kp.AA2] - xy[Kp.AA1]))) * view.mm_per_px
                contrast_problem = self._diameter_problem(diameter_mm)
        if contrast_problem is None:
            root = frame.origin_px - 0.5 * (xy[Kp.STJ1] + xy[Kp.STJ2])
            root_axis = root / np.hypot(*root)
            disagreement = None
            if view.tracked.state[Kp.PT] == KeypointState.MEASURED and pt_problem is None:
                if self._binding.bound:
                    carried = self._binding.carry(xy[Kp.PT])[0]
                    gap_mm = float(np.hypot(*(frame.origin_px - carried.origin_px))) * view.mm_per_px
                    if gap_mm > p.annulus_consistency_mm:
                        disagreement = f"contrast and pigtail-bound annulus {gap_mm:.1f} mm apart"
                self._binding.bind(t_s, frame, root_axis, diameter_mm, xy[Kp.PT])
                self._binding_dropped = ""
            if disagreement is not None:
                est.annulus_source = AnnulusSource.CONTRAST
                est.annulus_reason = disagreement
                return None
            _fill_annulus(est, AnnulusSource.CONTRAST, frame, diameter_mm)
            return frame, root_axis

        if not self._binding.bound:
            dropped = f" ({self._binding_dropped})" if self._binding_dropped else ""
            est.annulus_reason = f"no contrast annulus ({contrast_problem}) and no pigtail binding{dropped}"
            return None
        missing_s = t_s - self._pt_seen_s
        if missing_s > p.pigtail_missing_max_s:
            self._binding.clear()
            est.annulus_reason = f"annulus lost: pigtail PT unusable for {missing_s:.2f} s ({pt_problem})"
            return None
        est.annulus_source = AnnulusSource.PIGTAIL_BOUND
        if pt_problem is not None:
            est.annulus_reason = f"pigtail-bound annulus: {pt_problem}"
            return None
        frame, root_axis = self._binding.carry(view.tracked.xy_px[Kp.PT])
        _fill_annulus(est, AnnulusSource.PIGTAIL_BOUND, frame, self._binding.diameter_mm)
        return frame, root_axis

    def _diameter_problem(self, diameter_mm: float) -> str | None:
        p = self.params
        if p.annulus_diameter_min_mm <= diameter_mm <= p.annulus_diameter_max_mm:
            return None
        return (
            f"annulus diameter {diameter_mm:.1f} mm outside "
            f"[{p.annulus_diameter_min_mm:g}, {p.annulus_diameter_max_mm:g}] mm"
        )

    def _catheter(
        self, view: _KeypointView, annulus: tuple[AnnulusFrame, np.ndarray] | None, est: GuidanceEstimate
    ) -> None:
        p = self.params
        problem = view.first_problem((Kp.CT, Kp.CD))
        if problem is None and annulus is None:
            problem = "annulus invalid"
        if problem is None:
            problem = self._anchor_problem(view, view.tracked.xy_px[Kp.CT], "tip CT")
        if problem is None:
            frame, root_axis = annulus
            xy = view.tracked.xy_px
            try:
                dev = catheter_deviation(frame, xy[Kp.CT], xy[Kp.CD], root_axis, view.mm_per_px)
            except ValueError as exc:
                problem = f"CD and CT: {exc}"
            else:
                if abs(dev.tip_depth_mm) > p.depth_limit_mm:
                    problem = f"tip depth {dev.tip_depth_mm:+.1f} mm beyond ±{p.depth_limit_mm:g} mm"
                elif abs(dev.tip_lateral_mm) > p.lateral_limit_mm:
                    problem = (
                        f"tip lateral offset {dev.tip_lateral_mm:+.1f} mm beyond ±{p.lateral_limit_mm:g} mm"
                    )
        if problem is not None:
            est.catheter_reason = problem
            return
        est.catheter_valid = True
        est.tip_depth_mm = dev.tip_depth_mm
        est.tip_lateral_mm = dev.tip_lateral_mm
        est.coaxiality_deg = dev.coaxiality_deg

    def _stent(
        self, view: _KeypointView, annulus: tuple[AnnulusFrame, np.ndarray] | None, est: GuidanceEstimate
    ) -> None:
        p = self.params
        problem = view.first_problem((Kp.FE1, Kp.FE2))
        if problem is None and annulus is None:
            problem = "annulus invalid"
        if problem is None:
            middle = 0.5 * (view.tracked.xy_px[Kp.FE1] + view.tracked.xy_px[Kp.FE2])
            problem = self._anchor_problem(view, middle, "frame-edge midpoint")
        if problem is None:
            xy = view.tracked.xy_px
            try:
                dev = stent_deviation(annulus[0], xy[Kp.FE1], xy[Kp.FE2], view.mm_per_px)
            except ValueError as exc:
                problem = str(exc)
            else:
                worst = max(abs(dev.fe1_depth_mm), abs(dev.fe2_depth_mm))
                tip_gap = abs(dev.mean_depth_mm - est.tip_depth_mm) if est.catheter_valid else 0.0
                if worst > p.depth_limit_mm:
                    problem = f"frame-edge depth {worst:.1f} mm beyond ±{p.depth_limit_mm:g} mm"
                elif tip_gap > p.stent_tip_consistency_mm:
                    problem = f"frame edges {tip_gap:.1f} mm from the tip depth (inflow edge sits at CT)"
                elif not self._deployment_started and not est.extraction_valid:
                    problem = f"frame edges seen, capsule state unknown ({est.extraction_reason})"
                elif not self._deployment_started and est.capsule_retraction_mm < p.stent_min_retraction_mm:
                    problem = (
                        f"frame edges seen with the capsule closed ({est.capsule_retraction_mm:+.1f} mm)"
                    )
        if problem is not None:
            est.stent_reason = problem
            return
        est.stent_valid = True
        est.fe1_depth_mm = dev.fe1_depth_mm
        est.fe2_depth_mm = dev.fe2_depth_mm
        est.stent_mean_depth_mm = dev.mean_depth_mm
        est.stent_asymmetry_mm = dev.asymmetry_mm
        est.stent_tilt_deg = dev.tilt_deg

    def _release_false_deployment(self, t_s: float, est: GuidanceEstimate) -> None:
        """Drop the deployment latch when the stent block has been invalid for ``deployment_release_s``."""
        if est.stent_valid:
            self._stent_valid_s = t_s
            return
        gone_s = t_s - self._stent_valid_s
        if self._deployment_started and gone_s > self.params.deployment_release_s:
            self._deployment_started = False
            est.stent_reason += f" (deployment latch released: stent invalid for {gone_s:.1f} s)"

    def _delivery_tilt(
        self, view: _KeypointView, annulus: tuple[AnnulusFrame, np.ndarray] | None, est: GuidanceEstimate
    ) -> None:
        """Tilt of the delivery axis against the annulus y axis: from CP->CT when the catheter block is
        valid and CP usable (a ~50 mm baseline: a few pixels of detector error move it by about a degree;
        CD->CT is 2 mm long before deployment), else from the frame edges when the stent block is valid
        (a baseline of one valve diameter, so several degrees); left NaN otherwise."""
        if annulus is None:
            return
        frame = annulus[0]
        xy = view.tracked.xy_px
        if est.catheter_valid and view.problem(Kp.CP) is None:
            est.delivery_tilt_deg = axis_tilt_deg(frame, xy[Kp.CT] - xy[Kp.CP])
        elif est.stent_valid:
            est.delivery_tilt_deg = axis_tilt_deg(frame, stent_axis_px(frame, xy[Kp.FE1], xy[Kp.FE2]))

    def _learn_anchor(self, view: _KeypointView) -> None:
        """Feed the CT-CP running median with frames where CT and CP are both measured and no anatomical
        keypoint is (no contrast in the root: the devices are seen best without it)."""
        contrast = bool((view.tracked.state[list(ANATOMY)] == KeypointState.MEASURED).any())
        if not contrast and view.first_problem((Kp.CT, Kp.CP), measured=True) is None:
            xy = view.tracked.xy_px
            self._tip_anchor.observe(float(np.hypot(*(xy[Kp.CT] - xy[Kp.CP]))) * view.mm_per_px)

    def _anchor_problem(self, view: _KeypointView, point_px: np.ndarray, what: str) -> str | None:
        """Why ``point_px`` (CT or the frame-edge midpoint) is inconsistent with the anchor CP, or None.

        Unchecked (None) while CP is unusable; inconsistent while the CT-CP distance is not learned yet.
        """
        if view.problem(Kp.CP) is not None:
            return None
        distance_mm = float(np.hypot(*(point_px - view.tracked.xy_px[Kp.CP]))) * view.mm_per_px
        anchor = self._tip_anchor
        expected_mm = anchor.value_mm
        if expected_mm is None:
            return (
                f"learning the CT-CP distance from contrast-free frames ({anchor.count}/{anchor.min_samples})"
            )
        if abs(distance_mm - expected_mm) <= self.params.anchor_consistency_mm:
            return None
        return (
            f"{what} {distance_mm:.1f} mm from CP, expected {expected_mm:.1f} ± "
            f"{self.params.anchor_consistency_mm:g} mm (misdetection)"
        )

    def _extraction(self, view: _KeypointView, est: GuidanceEstimate) -> None:
        p = self.params
        problem = view.first_problem((Kp.CP, Kp.CD))
        if problem is not None:
            est.extraction_reason = problem
            return
        xy = view.tracked.xy_px
        ref = self._reference
        edges_seen = bool((view.tracked.state[[Kp.FE1, Kp.FE2]] == KeypointState.MEASURED).any())
        measured = view.first_problem((Kp.CP, Kp.CD), measured=True) is None
        if p.cp_cd_closed_mm == 0 and measured and not edges_seen and not self._deployment_started:
            ref.observe(float(np.hypot(*(xy[Kp.CD] - xy[Kp.CP]))) * view.mm_per_px)
        closed_mm = p.cp_cd_closed_mm if p.cp_cd_closed_mm > 0 else ref.value_mm
        if closed_mm is None:
            progress = f"{ref.count}/{ref.min_samples} frames"
            est.extraction_reason = f"learning the closed-capsule CP-CD reference ({progress})"
            return
        retraction = capsule_retraction_mm(xy[Kp.CP], xy[Kp.CD], view.mm_per_px, closed_mm, p.cp_cd_length_mm)
        low, high = -p.retraction_margin_mm, p.valve_frame_height_mm + p.retraction_margin_mm
        if not low <= retraction <= high:
            est.extraction_reason = f"capsule retraction {retraction:+.1f} mm outside [{low:g}, {high:g}] mm"
            return
        est.extraction_valid = True
        est.capsule_retraction_mm = retraction
        est.deployment_fraction = deployment_fraction(retraction, p.valve_frame_height_mm)

    def _guidance(self, est: GuidanceEstimate) -> None:
        p = self.params
        if self._deployment_started:
            depth_ok, depth, depth_reason = est.stent_valid, est.stent_mean_depth_mm, est.stent_reason
            source, name = DepthSource.STENT, "stent"
        else:
            depth_ok, depth, depth_reason = est.catheter_valid, est.tip_depth_mm, est.catheter_reason
            source, name = DepthSource.TIP, "catheter"
        if depth_ok:
            est.depth_source = source
            est.depth_mm = depth
            est.depth_error_mm = depth - p.target_depth_mm
        est.valid = est.annulus_valid and depth_ok
        if not est.annulus_valid:
            est.invalid_reason = f"annulus: {est.annulus_reason}"
        elif not depth_ok:
            est.invalid_reason = f"{name}: {depth_reason}"
        blocks = (est.annulus_valid, est.catheter_valid, est.stent_valid, est.extraction_valid)
        if est.valid and est.extraction_valid:
            est.tracking_state = TrackingState.OK
        elif any(blocks):
            est.tracking_state = TrackingState.DEGRADED
        else:
            est.tracking_state = TrackingState.LOST


class _KeypointView:
    """Usability checks of tracked keypoints for one frame."""

    def __init__(self, tracked: TrackedKeypoints, mm_per_px: float, params: GeometryParams) -> None:
        self.tracked = tracked
        self.mm_per_px = mm_per_px
        self._params = params

    def problem(self, kp: Kp, measured: bool = False) -> str | None:
        """Why keypoint ``kp`` cannot be used this frame, or None (``measured``: PREDICTED is not enough)."""
        t, p = self.tracked, self._params
        state = int(t.state[kp])
        if state == KeypointState.LOST:
            return f"{kp.name} lost"
        if state == KeypointState.PREDICTED:
            if measured:
                return f"{kp.name} not measured"
            if t.since_measured_s[kp] > p.max_predicted_s:
                return f"{kp.name} coasting for {t.since_measured_s[kp]:.2f} s"
        if t.hits[kp] < p.min_track_hits:
            return f"{kp.name} track not confirmed ({t.hits[kp]}/{p.min_track_hits} detections)"
        std_mm = float(t.std_px[kp]) * self.mm_per_px
        if std_mm > p.max_keypoint_std_mm:
            return f"{kp.name} uncertain ({std_mm:.1f} mm 1-sigma)"
        return None

    def first_problem(self, kps: tuple[Kp, ...], measured: bool = False) -> str | None:
        for kp in kps:
            problem = self.problem(kp, measured)
            if problem is not None:
                return problem
        return None


def _fill_annulus(
    est: GuidanceEstimate, source: AnnulusSource, frame: AnnulusFrame, diameter_mm: float
) -> None:
    est.annulus_valid = True
    est.annulus_source = source
    est.annulus_origin_x_px = float(frame.origin_px[0])
    est.annulus_origin_y_px = float(frame.origin_px[1])
    est.annulus_angle_deg = frame.angle_deg
    est.annulus_diameter_mm = float(diameter_mm)
