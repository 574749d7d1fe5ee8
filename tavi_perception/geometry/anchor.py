"""The anchor check: CP, the tip CT and the frame's inflow-edge centre are fixed to each other.

On the inner shaft, CT (and the centre of the frame's inflow edge, the FE1-FE2 midpoint, which sits at
CT) keeps its distance from CP. That distance is learned as a running median over contrast-free frames
with CT and CP both measured (the devices are seen best without contrast); a point this much farther
from or nearer to CP than learned (``anchor_consistency_mm``) is a misdetection. The projected distance
changes with foreshortening by ~1 mm while the catheter moves; the running median forgets early
misdetections.
"""

from __future__ import annotations

import numpy as np

from tavi_perception.geometry.median import RunningMedian
from tavi_perception.geometry.params import GeometryParams
from tavi_perception.geometry.usability import KeypointUsability
from tavi_perception.keypoints import GROUP_MEMBERS, Group, Kp
from tavi_perception.tracking.tracker import KeypointState

ANATOMY = GROUP_MEMBERS[Group.ANATOMICAL]


class TipAnchor:
    """The learned CT-CP distance and the consistency check of CT or the frame-edge midpoint against it."""

    def __init__(self, params: GeometryParams) -> None:
        self._distance = RunningMedian(
            params.anchor_window_frames, params.reference_learn_frames
        )  # CT-CP [mm]
        self.consistency_mm = params.anchor_consistency_mm

    def learn(self, usable: KeypointUsability) -> None:
        """Feed the CT-CP running median with a frame where CT and CP are both measured and no anatomical
        keypoint is (no contrast in the root)."""
        tracked = usable.tracked
        contrast = bool((tracked.state[list(ANATOMY)] == KeypointState.MEASURED).any())
        if not contrast and usable.first_problem((Kp.CT, Kp.CP), measured=True) is None:
            xy = tracked.xy_px
            self._distance.observe(float(np.hypot(*(xy[Kp.CT] - xy[Kp.CP]))) * usable.mm_per_px)

    def problem(self, usable: KeypointUsability, point_px: np.ndarray, what: str) -> str | None:
        """Why ``point_px`` (CT or the frame-edge midpoint) is inconsistent with the anchor CP, or None.

        Unchecked (None) while CP is unusable; inconsistent while the CT-CP distance is not learned yet.
        """
        if usable.problem(Kp.CP) is not None:
            return None
        distance_mm = float(np.hypot(*(point_px - usable.tracked.xy_px[Kp.CP]))) * usable.mm_per_px
        learned = self._distance
        expected_mm = learned.value_mm
        if expected_mm is None:
            progress = f"{learned.count}/{learned.min_samples}"
            return f"learning the CT-CP distance from contrast-free frames ({progress})"
        if abs(distance_mm - expected_mm) <= self.consistency_mm:
            return None
        return (
            f"{what} {distance_mm:.1f} mm from CP, expected {expected_mm:.1f} ± "
            f"{self.consistency_mm:g} mm (misdetection)"
        )
