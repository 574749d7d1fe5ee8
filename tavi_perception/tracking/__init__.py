"""Temporal keypoint tracking (no ROS): vectorised constant-velocity Kalman filters, gating, coasting,
group consistency. See :mod:`tavi_perception.tracking.tracker`."""

from tavi_perception.tracking.kalman import CvKalmanBank
from tavi_perception.tracking.tracker import KeypointState, KeypointTracker, TrackedKeypoints, TrackerParams

__all__ = ["CvKalmanBank", "KeypointState", "KeypointTracker", "TrackedKeypoints", "TrackerParams"]
