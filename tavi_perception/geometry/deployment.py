"""The deployment latch: which depth the guidance controls (tip before deployment, stent after).

Deployment counts as started (latched) once a retraction of at least ``deployment_start_mm`` is measured
together with valid frame edges: a misdetected CD can fake a retraction, but the capsule uncovering the
frame shows both edges. The latch is released when the stent block stays invalid for
``deployment_release_s`` of image time (a false latch must not hold the loop forever); a gap without
frames does not count as invalid time.
"""

from __future__ import annotations

import math

from tavi_perception.geometry.params import GeometryParams
from tavi_perception.guidance import GuidanceEstimate


class DeploymentLatch:
    """Latched deployment start with its release after a long invalid stent block."""

    def __init__(self, params: GeometryParams) -> None:
        self.start_mm = params.deployment_start_mm
        self.release_s = params.deployment_release_s
        self.started = False
        self._stent_valid_s = -math.inf  # last time the stent block was valid [s]
        self._gaps_s = 0.0  # time without frames since then [s] (not invalid time)

    def resume_after_gap(self, gap_s: float) -> None:
        """Frames resume after ``gap_s`` [s] without images: that time does not count towards the release."""
        self._gaps_s += gap_s

    def update(self, t_s: float, est: GuidanceEstimate) -> None:
        """Release a false latch (noting it in ``est.stent_reason``), then latch on a measured start."""
        if est.stent_valid:
            self._stent_valid_s = t_s
            self._gaps_s = 0.0
        else:
            gone_s = t_s - self._stent_valid_s - self._gaps_s
            if self.started and gone_s > self.release_s:
                self.started = False
                est.stent_reason += f" (deployment latch released: stent invalid for {gone_s:.1f} s)"
        if est.stent_valid and est.extraction_valid and est.capsule_retraction_mm >= self.start_mm:
            self.started = True
