"""The annulus block: measured from contrast, carried by the pigtail after washout, held over pedal gaps.

- CONTRAST when AA1, AA2, STJ1 and STJ2 are all MEASURED this frame; while PT is measured too, the pose
  is bound to PT (:mod:`.binding`). A projected AA1-AA2 distance outside the sanity range is invalid, and
  so is a contrast annulus more than ``annulus_consistency_mm`` from the pigtail-carried one. With a
  planned annulus (:class:`PlannedAnnulus`: the preoperative plan in the current C-arm view), a
  contrast annulus whose AA1-AA2 line is further from the plan's than its tolerance is not measured: the
  hinge points are misplaced (a device over a cusp in an oblique view), and the pigtail-bound annulus,
  bound on frames that agreed with the plan, is used instead. A contrast annulus that agrees is the
  plan's shape registered to the frame's AA1, AA2 and STJ (:meth:`PlannedAnnulus.register`).
- PIGTAIL_BOUND otherwise, carried by PT's translation with the orientation held, as long as PT is
  usable; PT missing for more than ``pigtail_missing_max_s``, or PT's track restarting (the detector
  jumped and stayed: perhaps another feature), drops the binding (annulus LOST until the next contrast).
- Over a gap without frames (the fluoroscopy pedal released; the caller says so with
  :meth:`AnnulusTracker.resume_after_gap`) the tracks restart, but the binding is *held* for gaps up to
  ``annulus_hold_max_s``: no valid annulus until PT is usable again, then it is re-attached to PT if PT
  lies within ``reattach_tolerance_mm`` of a position it took during the last ``pt_history_s`` before
  the gap (the heart and breathing move PT by several millimetres, so one position is not enough); PT
  farther away means the view, the table or the patient moved: annulus LOST until the next contrast.
  PT not usable within ``reattach_window_s`` of the resumption loses it too. A C-arm change (angle,
  field size, table) that the caller knows of drops it at once (:meth:`AnnulusTracker.invalidate`).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from tavi_perception.geometry.binding import PigtailBinding
from tavi_perception.geometry.frames import (
    AnnulusFrame,
    annulus_frame,
    annulus_frame_from_keypoints,
    wrap_deg,
)
from tavi_perception.geometry.params import GeometryParams
from tavi_perception.geometry.usability import KeypointUsability
from tavi_perception.guidance import AnnulusSource, GuidanceEstimate, annulus_fields
from tavi_perception.keypoints import Kp
from tavi_perception.tracking.tracker import KeypointState

CONTRAST_KEYPOINTS = (Kp.AA1, Kp.AA2, Kp.STJ1, Kp.STJ2)


@dataclass(frozen=True)
class AnnulusPose:
    """The annulus of one frame, for the depth blocks."""

    frame: AnnulusFrame
    root_axis: np.ndarray  # (2,) unit vector STJ midpoint -> annulus origin (image frame)
    origin_var_px2: float  # [px²] per-axis variance of the origin from the tracker's keypoint std


@dataclass(frozen=True)
class PlannedAnnulus:
    """The preoperative plan seen in the current C-arm view: where it puts the annulus in the image.

    The plan and the C-arm angles fix the projected shape of the root (the hinge points' and the STJ
    centre's positions relative to each other, in image millimetres at the isocentre); only where it
    lies in the image is unknown. :meth:`register` places that shape on a frame's detections.
    """

    angle_deg: float  # [deg] image angle of the AA1->AA2 line (as ``Guidance.annulus_angle_deg``)
    tolerance_deg: float  # [deg] largest accepted difference of a measured line
    hinges_mm: np.ndarray | None = None  # (2, 2) image mm of the AA1- and AA2-side nadirs (AA1: smaller x)
    stj_mm: np.ndarray | None = None  # (2,) image mm of the STJ centre, when the plan has it
    landmark_tolerance_mm: float = 0.0  # [mm] a landmark this close to its registered place agrees; 0: off

    def problem(
        self, angle_deg: float, xy_px: np.ndarray | None = None, mm_per_px: float = math.nan
    ) -> str | None:
        """Why a measured line at ``angle_deg`` [deg] disagrees with the plan, or None (also for NaN: no
        line measured).

        With the frame's detections (``xy_px``), a line off the plan's is still accepted when two of the
        three landmarks (AA1, AA2, STJ centre) lie within ``landmark_tolerance_mm`` of where
        :meth:`register` places them: one misplaced hinge point turns the line, but the registration's
        median does not follow it (:meth:`agreeing_landmarks`).
        """
        off_deg = wrap_deg(angle_deg - self.angle_deg, 90.0)
        if not abs(off_deg) > self.tolerance_deg:
            return None
        if xy_px is not None and self.agreeing_landmarks(xy_px, mm_per_px) >= 2:
            return None
        return f"annulus line {off_deg:+.1f} deg from the plan's (tolerance {self.tolerance_deg:g} deg)"

    def agreeing_landmarks(self, xy_px: np.ndarray, mm_per_px: float) -> int:
        """How many of AA1, AA2 and the STJ centre lie within ``landmark_tolerance_mm`` of their places in
        the registered shape; 0 without a shape with an STJ or with the check off (tolerance 0)."""
        if self.hinges_mm is None or self.stj_mm is None or not self.landmark_tolerance_mm > 0.0:
            return 0
        _, shifts_px, shift_px = self._placement(xy_px, mm_per_px)
        distances_mm = np.hypot(*(shifts_px - shift_px).T) * mm_per_px
        return int(np.sum(distances_mm <= self.landmark_tolerance_mm))

    def register(self, xy_px: np.ndarray, mm_per_px: float) -> AnnulusFrame:
        """The annulus frame of the plan's shape placed on a frame's AA1, AA2 and STJ detections.

        Each landmark says where the shape lies; the placement is their median, along and across the
        planned annulus line separately. Off the S-curve one hinge point projects inside the contrast
        silhouette, where nothing in the image marks it, and the detector misplaces it by several pixels
        in some views; the median of three is not moved by one misplaced landmark (with two, without an
        STJ in the plan, it is their mean). The line's direction is the plan's, not the detections'.
        Without a shape (``hinges_mm`` None) the detections' own frame.
        """
        if self.hinges_mm is None:
            return annulus_frame_from_keypoints(xy_px)
        hinges_px, _, shift_px = self._placement(xy_px, mm_per_px)
        stj_mid_px = 0.5 * (xy_px[Kp.STJ1] + xy_px[Kp.STJ2])
        return annulus_frame(hinges_px[0] + shift_px, hinges_px[1] + shift_px, stj_mid_px)

    def _placement(self, xy_px: np.ndarray, mm_per_px: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(the plan's hinge points paired with AA1 and AA2 (2, 2), each landmark's shift from the plan's
        shape (n, 2), their median shift (2,)), all in pixels (:meth:`register`)."""
        assert self.hinges_mm is not None
        hinges_px = self.hinges_mm / mm_per_px
        detected = xy_px[[Kp.AA1, Kp.AA2]]
        if float((detected[1] - detected[0]) @ (hinges_px[1] - hinges_px[0])) < 0:
            hinges_px = hinges_px[::-1]  # a chord near the image vertical: the x order may differ
        shifts = list(detected - hinges_px)
        if self.stj_mm is not None:
            stj_mid_px = 0.5 * (xy_px[Kp.STJ1] + xy_px[Kp.STJ2])
            shifts.append(stj_mid_px - self.stj_mm / mm_per_px)
        along = hinges_px[1] - hinges_px[0]
        along /= np.hypot(*along)
        across = np.array([-along[1], along[0]])
        shift = sum(float(np.median([s @ axis for s in shifts])) * axis for axis in (along, across))
        return hinges_px, np.asarray(shifts), np.asarray(shift)


@dataclass
class _Held:
    """A binding held over a gap, waiting for PT."""

    gap_s: float  # [s] the gap it is held over
    pt_positions_px: np.ndarray  # (n, 2) PT positions before the gap
    resumed_s: float | None = None  # [s] first frame after the gap


class AnnulusTracker:
    """Contrast annulus, pigtail binding and its hold over gaps (module docstring)."""

    def __init__(self, params: GeometryParams) -> None:
        self.params = params
        self._binding = PigtailBinding(params.binding_average_s)
        self._pt_seen_s = -math.inf
        self._pt_hits = 0  # detections accepted by PT's track when PT was last usable
        self._dropped = ""  # why the last binding was dropped, until the next one
        self._pt_history: deque[tuple[float, np.ndarray]] = deque()  # (t_s, PT px) while bound
        self._held: _Held | None = None

    def invalidate(self, reason: str) -> None:
        """Drop the annulus (the view, the field size or the table moved): LOST until the next contrast."""
        self._drop(reason)

    def resume_after_gap(self, gap_s: float) -> None:
        """Frames resume after ``gap_s`` [s] without images; the tracks restart (module docstring)."""
        self._pt_hits = 0  # PT's next track is young because of the gap, not a detector jump
        if not self._binding.bound:
            return
        p = self.params
        if gap_s > p.annulus_hold_max_s:
            self._drop(f"gap of {gap_s:.1f} s without frames > annulus_hold_max_s {p.annulus_hold_max_s:g} s")
        elif self._held is not None:
            self._held = _Held(self._held.gap_s + gap_s, self._held.pt_positions_px)
        elif self._pt_history:
            positions = np.array([xy for _, xy in self._pt_history])
            self._held = _Held(gap_s, positions)
        else:
            self._drop("no pigtail PT position before the gap")

    def update(
        self,
        t_s: float,
        usable: KeypointUsability,
        est: GuidanceEstimate,
        planned: PlannedAnnulus | None = None,
    ) -> AnnulusPose | None:
        """Fill the annulus block of ``est``; the annulus for the depth blocks, or None when invalid.

        ``planned``: the plan in this view, which a contrast annulus must agree with and is registered from.
        """
        p = self.params
        tracked = usable.tracked
        xy = tracked.xy_px
        std = tracked.std_px
        pt_problem = usable.problem(Kp.PT)
        if self._held is not None:
            self._try_reattach(t_s, usable, pt_problem)
        if pt_problem is None:
            self._pt_seen_s = t_s
            pt_hits = int(tracked.hits[Kp.PT])
            if pt_hits < self._pt_hits and self._binding.bound:
                # a usable PT whose track is younger than the last usable one is a restarted track
                # (the detector jumped and stayed): it may follow another feature, and carrying the
                # annulus with it would move the annulus by the jump
                self._drop("pigtail PT track restarted")
            self._pt_hits = pt_hits

        contrast_problem = usable.first_problem(CONTRAST_KEYPOINTS, measured=True)
        if contrast_problem is None:
            try:
                frame = annulus_frame_from_keypoints(xy)
            except ValueError as exc:
                contrast_problem = str(exc)
            else:
                diameter_mm = float(np.hypot(*(xy[Kp.AA2] - xy[Kp.AA1]))) * usable.mm_per_px
                contrast_problem = self._diameter_problem(diameter_mm)
                if contrast_problem is None and planned is not None:
                    off_plan = planned.problem(frame.angle_deg, xy, usable.mm_per_px)
                    contrast_problem = None if off_plan is None else f"contrast {off_plan}"
                    if contrast_problem is None:
                        frame = planned.register(xy, usable.mm_per_px)
        if contrast_problem is None:
            root = frame.origin_px - 0.5 * (xy[Kp.STJ1] + xy[Kp.STJ2])
            root_axis = root / np.hypot(*root)
            disagreement = None
            if tracked.state[Kp.PT] == KeypointState.MEASURED and pt_problem is None:
                if self._binding.bound:
                    carried = self._binding.carry(xy[Kp.PT])[0]
                    gap_mm = float(np.hypot(*(frame.origin_px - carried.origin_px))) * usable.mm_per_px
                    if gap_mm > p.annulus_consistency_mm:
                        disagreement = f"contrast and pigtail-bound annulus {gap_mm:.1f} mm apart"
                self._binding.bind(t_s, frame, root_axis, diameter_mm, xy[Kp.PT])
                self._dropped = ""
                self._remember_pt(t_s, xy[Kp.PT])
            if disagreement is not None:
                est.annulus_source = AnnulusSource.CONTRAST
                est.annulus_reason = disagreement
                return None
            _fill(est, AnnulusSource.CONTRAST, frame, diameter_mm)
            return AnnulusPose(frame, root_axis, 0.25 * float(std[Kp.AA1] ** 2 + std[Kp.AA2] ** 2))

        if not self._binding.bound:
            dropped = f" ({self._dropped})" if self._dropped else ""
            est.annulus_reason = f"no contrast annulus ({contrast_problem}) and no pigtail binding{dropped}"
            return None
        if self._held is not None:
            est.annulus_source = AnnulusSource.PIGTAIL_BOUND
            est.annulus_reason = (
                f"annulus held over a {self._held.gap_s:.1f} s gap, waiting to re-attach it to the pigtail "
                f"({pt_problem})"
            )
            return None
        missing_s = t_s - self._pt_seen_s
        if missing_s > p.pigtail_missing_max_s:
            self._drop(f"pigtail PT unusable for more than {p.pigtail_missing_max_s:g} s")
            est.annulus_reason = f"annulus lost: pigtail PT unusable for {missing_s:.2f} s ({pt_problem})"
            return None
        est.annulus_source = AnnulusSource.PIGTAIL_BOUND
        if pt_problem is not None:
            est.annulus_reason = f"pigtail-bound annulus: {pt_problem}"
            return None
        self._remember_pt(t_s, xy[Kp.PT])
        frame, root_axis = self._binding.carry(xy[Kp.PT])
        _fill(est, AnnulusSource.PIGTAIL_BOUND, frame, self._binding.diameter_mm)
        return AnnulusPose(frame, root_axis, float(std[Kp.PT] ** 2))

    def _try_reattach(self, t_s: float, usable: KeypointUsability, pt_problem: str | None) -> None:
        """Re-attach the held binding to a usable PT near a position it took before the gap, or drop it."""
        held = self._held
        p = self.params
        if held.resumed_s is None:
            held.resumed_s = t_s
        if pt_problem is None:
            pt = usable.tracked.xy_px[Kp.PT]
            moved_mm = float(np.min(np.hypot(*(held.pt_positions_px - pt).T))) * usable.mm_per_px
            if moved_mm <= p.reattach_tolerance_mm:
                self._held = None
            else:
                self._drop(
                    f"pigtail PT back {moved_mm:.1f} mm from its positions before the gap "
                    f"> reattach_tolerance_mm {p.reattach_tolerance_mm:g}: view, table or patient moved"
                )
        elif t_s - held.resumed_s > p.reattach_window_s:
            self._drop(f"pigtail PT not usable within {p.reattach_window_s:g} s after the gap ({pt_problem})")

    def _remember_pt(self, t_s: float, pt_px: np.ndarray) -> None:
        history = self._pt_history
        history.append((t_s, np.array(pt_px, dtype=float)))
        while history[0][0] < t_s - self.params.pt_history_s:
            history.popleft()

    def _drop(self, reason: str) -> None:
        self._binding.clear()
        self._held = None
        self._pt_history.clear()
        self._dropped = reason

    def _diameter_problem(self, diameter_mm: float) -> str | None:
        p = self.params
        if p.annulus_diameter_min_mm <= diameter_mm <= p.annulus_diameter_max_mm:
            return None
        low, high = p.annulus_diameter_min_mm, p.annulus_diameter_max_mm
        return f"annulus diameter {diameter_mm:.1f} mm outside [{low:g}, {high:g}] mm"


def _fill(est: GuidanceEstimate, source: AnnulusSource, frame: AnnulusFrame, diameter_mm: float) -> None:
    est.annulus_valid = True
    est.annulus_source = source
    for name, value in annulus_fields(frame).items():
        setattr(est, name, value)
    est.annulus_diameter_mm = float(diameter_mm)
