"""TAVI guidance in millimetres from tracked keypoints (no ROS).

:class:`GuidanceEstimator` turns one frame of :class:`~tavi_perception.tracking.TrackedKeypoints` into a
:class:`~tavi_perception.guidance.GuidanceEstimate` (the Guidance contract). Each frame the usability of
every keypoint is computed once (:mod:`.usability`); the stateful blocks live in their own modules and the
estimator runs them in order:

- annulus (:mod:`.annulus`): contrast, pigtail binding, held over gaps without frames; a change of the
  scale ``mm_per_px`` between frames (field size or calibration changed) drops it like
  :meth:`GuidanceEstimator.invalidate_annulus`;
- anchor check (:mod:`.anchor`): CT and the frame-edge midpoint against the learned CT-CP distance;
- catheter: CT and CD usable and the annulus valid; tip depth/lateral within the sanity limits; CT
  consistent with the anchor while CP is usable;
- extraction (:mod:`.extraction`): capsule retraction against the closed-capsule CP-CD reference;
- stent: FE1 and FE2 usable and the annulus valid; the FE1-FE2 midpoint (the inflow edge's centre, which
  sits at CT) consistent with the anchor; depths within the sanity limits and, while the tip is measured,
  the mean depth within ``stent_tip_consistency_mm`` of the tip depth; before deployment has started, a
  valid retraction of at least ``stent_min_retraction_mm`` (edges show once uncovered);
- deployment latch (:mod:`.deployment`): depth source TIP until deployment starts, STENT afterwards;
- guidance: ``valid`` only when the annulus and the active depth block are valid. ``depth_std_mm`` is the
  1-sigma of ``depth_mm`` from the tracker's per-keypoint uncertainties (the depth point, CT or the
  FE1-FE2 midpoint, and the annulus origin: AA1-AA2 midpoint or PT), taken as independent and isotropic;
  the uncertainty of the annulus orientation is left out (second order for a point near the origin).

Each invalid block says why in ``*_reason``; numbers of an invalid block are NaN. Tracked keypoints more
than ``max_staleness_s`` away from the estimate time invalidate everything.

Sequences: the estimator does not decide by time that a sequence ended. The caller (frame admission)
calls :meth:`GuidanceEstimator.start_sequence` (forget everything: a new stream) or
:meth:`GuidanceEstimator.resume_after_gap` (frames resume after a pedal release: the annulus is held for
re-attachment) before ``update``; a time going back without ``start_sequence`` is refused.
"""

from __future__ import annotations

import math

from tavi_perception.geometry.anchor import TipAnchor
from tavi_perception.geometry.annulus import AnnulusPose, AnnulusTracker, PlannedAnnulus
from tavi_perception.geometry.deployment import DeploymentLatch
from tavi_perception.geometry.deviations import (
    axis_tilt_deg,
    catheter_deviation,
    stent_axis_px,
    stent_deviation,
)
from tavi_perception.geometry.extraction import CapsuleExtraction
from tavi_perception.geometry.params import GeometryParams
from tavi_perception.geometry.usability import KeypointUsability
from tavi_perception.guidance import BLOCKS, AnnulusSource, DepthSource, GuidanceEstimate, TrackingState
from tavi_perception.keypoints import Kp
from tavi_perception.tracking.tracker import TrackedKeypoints

__all__ = [
    "AnnulusSource",
    "DepthSource",
    "GeometryParams",
    "GuidanceEstimate",
    "GuidanceEstimator",
    "TrackingState",
]


class GuidanceEstimator:
    """Stateful per-frame geometry over the blocks of the module docstring."""

    def __init__(self, params: GeometryParams | None = None) -> None:
        self.params = params or GeometryParams()
        self.planned_annulus: PlannedAnnulus | None = None  # the plan as seen in the current view
        self.start_sequence()

    def start_sequence(self) -> None:
        """A new sequence starts with the next frame (new stream, time going back): forget the annulus,
        the learned distances and the deployment latch."""
        p = self.params
        self._t_s: float | None = None
        self._mm_per_px: float | None = None  # [mm/px] of the last frame with a usable scale
        self._annulus = AnnulusTracker(p)
        self._anchor = TipAnchor(p)
        self._extraction = CapsuleExtraction(p)
        self._deployment = DeploymentLatch(p)

    def resume_after_gap(self, gap_s: float) -> None:
        """Frames resume after ``gap_s`` [s] without images (fluoroscopy pedal released).

        The tracks restart (the tracker's ``resume_after_gap``); the annulus is held for re-attachment to
        the pigtail (:mod:`.annulus`), the learned distances are kept, and the gap does not count towards
        releasing the deployment latch.
        """
        if not (math.isfinite(gap_s) and gap_s >= 0.0):
            raise ValueError(f"gap_s must be a finite duration >= 0 s, got {gap_s!r}")
        self._annulus.resume_after_gap(gap_s)
        self._deployment.resume_after_gap(gap_s)

    def invalidate_annulus(self, reason: str) -> None:
        """Drop the annulus now (C-arm angle, field size or table changed): LOST until the next contrast."""
        self._annulus.invalidate(reason)

    def update(self, t_s: float, tracked: TrackedKeypoints, mm_per_px: float) -> GuidanceEstimate:
        """Guidance for time ``t_s`` [s] from ``tracked`` keypoints with scale ``mm_per_px`` [mm/px]."""
        if not math.isfinite(t_s):
            raise ValueError(f"t_s must be a finite time in seconds, got {t_s!r}")
        if self._t_s is not None and t_s < self._t_s:
            raise ValueError(
                f"time went back {self._t_s - t_s:.3f} s from {self._t_s!r} s without start_sequence()"
            )
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
            for block in BLOCKS:
                setattr(est, f"{block}_reason", problem)
            est.invalid_reason = problem
            return est
        if self._mm_per_px is not None and not math.isclose(mm_per_px, self._mm_per_px, rel_tol=1e-9):
            # a new field size (zoom) or calibration: the annulus in pixels no longer holds
            self._annulus.invalidate(f"scale changed from {self._mm_per_px:.4g} to {mm_per_px:.4g} mm/px")
        self._mm_per_px = mm_per_px

        usable = KeypointUsability(tracked, mm_per_px, p)
        self._anchor.learn(usable)
        annulus = self._annulus.update(t_s, usable, est, self.planned_annulus)
        self._catheter(usable, annulus, est)
        self._extraction.update(usable, self._deployment.started, est)
        self._stent(usable, annulus, est)
        self._delivery_tilt(usable, annulus, est)
        self._deployment.update(t_s, est)
        self._guidance(usable, annulus, est)
        return est

    # --- stateless blocks ---------------------------------------------------------------------------

    def _catheter(
        self, usable: KeypointUsability, annulus: AnnulusPose | None, est: GuidanceEstimate
    ) -> None:
        p = self.params
        xy = usable.tracked.xy_px
        problem = usable.first_problem((Kp.CT, Kp.CD))
        if problem is None and annulus is None:
            problem = "annulus invalid"
        if problem is None:
            problem = self._anchor.problem(usable, xy[Kp.CT], "tip CT")
        if problem is None:
            try:
                dev = catheter_deviation(
                    annulus.frame, xy[Kp.CT], xy[Kp.CD], annulus.root_axis, usable.mm_per_px
                )
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

    def _stent(self, usable: KeypointUsability, annulus: AnnulusPose | None, est: GuidanceEstimate) -> None:
        p = self.params
        xy = usable.tracked.xy_px
        started = self._deployment.started
        problem = usable.first_problem((Kp.FE1, Kp.FE2))
        if problem is None and annulus is None:
            problem = "annulus invalid"
        if problem is None:
            problem = self._anchor.problem(usable, 0.5 * (xy[Kp.FE1] + xy[Kp.FE2]), "frame-edge midpoint")
        if problem is None:
            try:
                dev = stent_deviation(annulus.frame, xy[Kp.FE1], xy[Kp.FE2], usable.mm_per_px)
            except ValueError as exc:
                problem = str(exc)
            else:
                worst = max(abs(dev.fe1_depth_mm), abs(dev.fe2_depth_mm))
                tip_gap = abs(dev.mean_depth_mm - est.tip_depth_mm) if est.catheter_valid else 0.0
                if worst > p.depth_limit_mm:
                    problem = f"frame-edge depth {worst:.1f} mm beyond ±{p.depth_limit_mm:g} mm"
                elif tip_gap > p.stent_tip_consistency_mm:
                    problem = f"frame edges {tip_gap:.1f} mm from the tip depth (inflow edge sits at CT)"
                elif not started and not est.extraction_valid:
                    problem = f"frame edges seen, capsule state unknown ({est.extraction_reason})"
                elif not started and est.capsule_retraction_mm < p.stent_min_retraction_mm:
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

    @staticmethod
    def _delivery_tilt(usable: KeypointUsability, annulus: AnnulusPose | None, est: GuidanceEstimate) -> None:
        """Tilt of the delivery axis against the annulus y axis: from CP->CT when the catheter block is
        valid and CP usable (a ~50 mm baseline: a few pixels of detector error move it by about a degree;
        CD->CT is 2 mm long before deployment), else from the frame edges when the stent block is valid
        (a baseline of one valve diameter, so several degrees); left NaN otherwise."""
        if annulus is None:
            return
        frame = annulus.frame
        xy = usable.tracked.xy_px
        if est.catheter_valid and usable.problem(Kp.CP) is None:
            est.delivery_tilt_deg = axis_tilt_deg(frame, xy[Kp.CT] - xy[Kp.CP])
        elif est.stent_valid:
            est.delivery_tilt_deg = axis_tilt_deg(frame, stent_axis_px(frame, xy[Kp.FE1], xy[Kp.FE2]))

    def _guidance(
        self, usable: KeypointUsability, annulus: AnnulusPose | None, est: GuidanceEstimate
    ) -> None:
        p = self.params
        std_px = usable.tracked.std_px
        if self._deployment.started:
            depth_ok, depth, depth_reason = est.stent_valid, est.stent_mean_depth_mm, est.stent_reason
            source, name = DepthSource.STENT, "stent"
            point_var_px2 = 0.25 * float(std_px[Kp.FE1] ** 2 + std_px[Kp.FE2] ** 2)  # of the midpoint
        else:
            depth_ok, depth, depth_reason = est.catheter_valid, est.tip_depth_mm, est.catheter_reason
            source, name = DepthSource.TIP, "catheter"
            point_var_px2 = float(std_px[Kp.CT] ** 2)
        if depth_ok:
            est.depth_source = source
            est.depth_mm = depth
            est.depth_error_mm = depth - p.target_depth_mm
            # depth = (point - origin) . y_axis: a unit vector, so the per-axis variances add
            est.depth_std_mm = math.sqrt(point_var_px2 + annulus.origin_var_px2) * usable.mm_per_px
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
