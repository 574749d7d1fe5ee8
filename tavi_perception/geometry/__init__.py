"""TAVI geometry in millimetres: annulus frame, pigtail binding, deviations, extraction (no ROS).

``frames`` holds the definitions shared with the simulator; ``estimator.GuidanceEstimator`` turns tracked
keypoints into a ``GuidanceEstimate`` mirroring ``tavi_msgs/msg/Guidance.msg``.
"""
