"""The overlay draws the annulus frame and the target band from the Guidance contract alone."""

from __future__ import annotations

import numpy as np
import pytest
from guidance_data import level_annulus

from tavi_perception.core.overlay import OverlayRenderer
from tavi_perception.guidance import GuidanceEstimate
from tavi_perception.tracking import KeypointState, TrackedKeypoints


def _nothing_tracked() -> TrackedKeypoints:
    """No keypoint usable (no STJ either): whatever is drawn comes from the contract."""
    return TrackedKeypoints(
        t_s=0.0,
        xy_px=np.zeros((11, 2)),
        velocity_px_s=np.zeros((11, 2)),
        std_px=np.ones(11),
        state=np.full(11, KeypointState.LOST, dtype=np.uint8),
        visibility=np.zeros(11),
        since_measured_s=np.full(11, np.inf),
        rejected=np.zeros(11, dtype=bool),
        hits=np.zeros(11, dtype=int),
    )


@pytest.mark.parametrize("y_sign", [1, -1])
def test_the_target_band_is_drawn_on_the_ventricular_side_given_by_the_contract(y_sign: int) -> None:
    est = GuidanceEstimate(**level_annulus((64.0, 64.0), y_sign), target_depth_mm=8.0, depth_tolerance_mm=2.0)
    canvas = OverlayRenderer().render(np.zeros((128, 128), np.uint8), _nothing_tracked(), est)
    cyan = (canvas[..., 1] > 150) & (canvas[..., 2] < 10)  # BGR (230, 220, 0), anti-aliased
    rows = np.flatnonzero(cyan.any(axis=1))
    assert set(rows) == {64 + y_sign * 12, 64 + y_sign * 20}  # (8 ∓ 2) mm / 0.5 mm/px from the annulus
