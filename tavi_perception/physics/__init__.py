"""Physics of the delivery system (MuJoCo, no ROS): friction, compliance, backlash, the release jump.

``DeliveryPhysics(params, rail, motion, start, frame_height_mm, limits).step(speeds, dt_s)`` gives the
``DeliveryState`` the simulator renders (``ProcedureSimulator(..., physics="mujoco")``);
``sample_physics(seed)`` draws a case's parameters within the ranges of docs/physics.md.
"""

from tavi_perception.physics.delivery import DeliveryPhysics
from tavi_perception.physics.params import PHYSICS, RANGES, HandleState, PhysicsParams, sample_physics

__all__ = ["PHYSICS", "RANGES", "DeliveryPhysics", "HandleState", "PhysicsParams", "sample_physics"]
