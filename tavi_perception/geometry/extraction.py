"""Capsule extraction: the capsule retraction from the CP-CD distance against its closed-capsule value.

The closed-capsule CP-CD reference is ``cp_cd_closed_mm`` or, when that is 0, the median of
``reference_learn_frames`` frames with CP and CD measured, no frame edge in sight and deployment not
started (capsule still closed), the newest ``reference_lag_frames`` of them left out. Learning goes on
until the edges show, so the reference is taken where the deployment happens: the projected CP-CD
distance changes by several millimetres with foreshortening while the delivery system advances through
the arch. A retraction outside ``[-margin, height + margin]`` is invalid.
"""

from __future__ import annotations

import numpy as np

from tavi_perception.geometry.deviations import capsule_retraction_mm, deployment_fraction
from tavi_perception.geometry.median import RunningMedian
from tavi_perception.geometry.params import GeometryParams
from tavi_perception.geometry.usability import KeypointUsability
from tavi_perception.guidance import GuidanceEstimate
from tavi_perception.keypoints import Kp
from tavi_perception.tracking.tracker import KeypointState


class CapsuleExtraction:
    """The closed-capsule reference (fixed or learned) and the extraction block."""

    def __init__(self, params: GeometryParams) -> None:
        self.params = params
        learn = params.reference_learn_frames
        self._reference = RunningMedian(learn, learn, params.reference_lag_frames)  # closed CP-CD [mm]

    def update(self, usable: KeypointUsability, deployment_started: bool, est: GuidanceEstimate) -> None:
        """Fill the extraction block of ``est`` (learning the reference while the capsule is closed)."""
        p = self.params
        problem = usable.first_problem((Kp.CP, Kp.CD))
        if problem is not None:
            est.extraction_reason = problem
            return
        tracked = usable.tracked
        xy = tracked.xy_px
        ref = self._reference
        edges_seen = bool((tracked.state[[Kp.FE1, Kp.FE2]] == KeypointState.MEASURED).any())
        measured = usable.first_problem((Kp.CP, Kp.CD), measured=True) is None
        if p.cp_cd_closed_mm == 0 and measured and not edges_seen and not deployment_started:
            ref.observe(float(np.hypot(*(xy[Kp.CD] - xy[Kp.CP]))) * usable.mm_per_px)
        closed_mm = p.cp_cd_closed_mm if p.cp_cd_closed_mm > 0 else ref.value_mm
        if closed_mm is None:
            progress = f"{ref.count}/{ref.min_samples} frames"
            est.extraction_reason = f"learning the closed-capsule CP-CD reference ({progress})"
            return
        retraction = capsule_retraction_mm(
            xy[Kp.CP], xy[Kp.CD], usable.mm_per_px, closed_mm, p.cp_cd_length_mm
        )
        low, high = -p.retraction_margin_mm, p.valve_frame_height_mm + p.retraction_margin_mm
        if not low <= retraction <= high:
            est.extraction_reason = f"capsule retraction {retraction:+.1f} mm outside [{low:g}, {high:g}] mm"
            return
        est.extraction_valid = True
        est.capsule_retraction_mm = retraction
        est.deployment_fraction = deployment_fraction(retraction, p.valve_frame_height_mm)
