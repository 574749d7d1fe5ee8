"""Which tracked keypoints a valid block may use this frame, and why not (computed once per frame).

A keypoint is *usable* when MEASURED, or PREDICTED for at most ``max_predicted_s``, its track has
accepted at least ``min_track_hits`` detections (a track born on one outlier is not trusted) and its
1-sigma uncertainty is at most ``max_keypoint_std_mm``; LOST (coasted-out) keypoints are never used.
Some blocks need a keypoint *measured* this frame (PREDICTED is not enough).
"""

from __future__ import annotations

from tavi_perception.geometry.params import GeometryParams
from tavi_perception.keypoints import NUM_KEYPOINTS, Kp
from tavi_perception.tracking.tracker import KeypointState, TrackedKeypoints

_OK, _LOST, _COASTING, _YOUNG, _UNCERTAIN = range(5)


class KeypointUsability:
    """The usability of every keypoint of one frame: ``problem(kp)`` is None or why it is unusable.

    The checks run once per frame for all keypoints; the reason text is written only when asked for.
    """

    def __init__(self, tracked: TrackedKeypoints, mm_per_px: float, params: GeometryParams) -> None:
        self.tracked = tracked
        self.mm_per_px = mm_per_px
        self._params = params
        state = tracked.state.tolist()
        since_s = tracked.since_measured_s.tolist()
        hits = tracked.hits.tolist()
        std_mm = (tracked.std_px * mm_per_px).tolist()
        self._predicted = [s == KeypointState.PREDICTED for s in state]
        self._check: list[int] = []
        for i in range(NUM_KEYPOINTS):
            if state[i] == KeypointState.LOST:
                check = _LOST
            elif self._predicted[i] and since_s[i] > params.max_predicted_s:
                check = _COASTING
            elif hits[i] < params.min_track_hits:
                check = _YOUNG
            elif std_mm[i] > params.max_keypoint_std_mm:
                check = _UNCERTAIN
            else:
                check = _OK
            self._check.append(check)

    def problem(self, kp: Kp, measured: bool = False) -> str | None:
        """Why keypoint ``kp`` cannot be used this frame, or None (``measured``: PREDICTED is not enough)."""
        check = self._check[kp]
        if measured and self._predicted[kp]:
            return f"{kp.name} not measured"
        if check == _OK:
            return None
        t, p = self.tracked, self._params
        if check == _LOST:
            return f"{kp.name} lost"
        if check == _COASTING:
            return f"{kp.name} coasting for {t.since_measured_s[kp]:.2f} s"
        if check == _YOUNG:
            return f"{kp.name} track not confirmed ({t.hits[kp]}/{p.min_track_hits} detections)"
        return f"{kp.name} uncertain ({float(t.std_px[kp]) * self.mm_per_px:.1f} mm 1-sigma)"

    def first_problem(self, kps: tuple[Kp, ...], measured: bool = False) -> str | None:
        """The first of ``kps`` that cannot be used, or None when all can."""
        for kp in kps:
            problem = self.problem(kp, measured)
            if problem is not None:
                return problem
        return None
