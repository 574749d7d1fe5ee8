"""Reference manipulator controller, free of ROS: Guidance fields -> bounded advance/retraction speeds.

``ReferenceController(ControllerParams)``: feed :class:`GuidanceSample` with ``on_guidance`` and call
``step(now_s)`` at a fixed rate for a :class:`Command`; it holds when guidance is absent, stale or invalid.
"""

from tavi_perception.controller.reference import (
    Command,
    ControllerParams,
    GuidanceSample,
    Phase,
    ReferenceController,
)

__all__ = ["Command", "ControllerParams", "GuidanceSample", "Phase", "ReferenceController"]
