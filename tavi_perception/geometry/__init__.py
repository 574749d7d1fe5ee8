"""TAVI geometry in millimetres: annulus frame, pigtail binding, deviations, extraction (no ROS).

``frames`` holds the definitions shared with the simulator; ``estimator.GuidanceEstimator`` turns tracked
keypoints into the Guidance contract (:class:`tavi_perception.guidance.GuidanceEstimate`) over one
module per stateful block: ``annulus`` (contrast, pigtail binding, held over pedal gaps), ``anchor``
(CT-CP), ``extraction`` (closed-capsule reference), ``deployment`` (latch), with the keypoints' usability
computed once per frame (``usability``) and the parameters in ``params``.
"""
