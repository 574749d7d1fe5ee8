"""Procedure timelines: delivery-system speeds per segment, phase names and contrast injections.

A :class:`Scenario` is a start state plus segments of constant (advance, retraction, steer) speed, each
with a phase name, and a contrast schedule. The state at any time is integrated in closed form segment by
segment (speeds clipped to the manipulator limits), so a timeline can be rendered at any time directly.

Phases: ``approach`` (the delivery system comes down the ascending aorta), ``positioning`` (fine
adjustment at the annulus, contrast-free stretches between puffs), ``deployment`` (capsule retraction,
frame edges appear; a pause to check), ``release`` (retraction to full release).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tavi_perception.sim.case import CaseParams
from tavi_perception.sim.contrast import ContrastSchedule, Injection
from tavi_perception.sim.delivery import (
    DeliveryCommand,
    DeliveryLimits,
    DeliveryState,
    clamp_command,
    integrate,
)

PHASES = ("approach", "positioning", "deployment", "release")
RELEASE_FRACTION = 0.7  # deployment fraction from which a commanded procedure counts as "release"
MAX_START_STEER_DEG = 18.0  # [deg] default scenarios start steered by up to this either way


def phase_for_state(state: DeliveryState, frame_height_mm: float) -> str:
    """Phase name of a manipulator-driven procedure from its state."""
    if state.retraction_mm <= 0.0:
        return "positioning"
    return "deployment" if state.retraction_mm < RELEASE_FRACTION * frame_height_mm else "release"


@dataclass(frozen=True)
class Segment:
    """A stretch of constant delivery-system speeds."""

    phase: str
    duration_s: float
    advance_speed_mm_s: float = 0.0
    retraction_speed_mm_s: float = 0.0
    steer_rate_deg_s: float = 0.0

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise ValueError(f"unknown phase {self.phase!r}; phases: {', '.join(PHASES)}")
        if self.duration_s <= 0:
            raise ValueError(f"segment duration must be positive, got {self.duration_s}")


@dataclass(frozen=True)
class Scenario:
    """A procedure timeline."""

    start: DeliveryState
    segments: tuple[Segment, ...]
    contrast: ContrastSchedule

    def __post_init__(self) -> None:
        if not self.segments:
            raise ValueError("a scenario needs at least one segment")

    @property
    def duration_s(self) -> float:
        return float(sum(s.duration_s for s in self.segments))

    def segment_at(self, t_s: float) -> tuple[int, float]:
        """(index of the segment at ``t_s``, time into it); past the end: the last segment."""
        t = max(t_s, 0.0)
        for i, seg in enumerate(self.segments):
            if t < seg.duration_s or i == len(self.segments) - 1:
                return i, min(t, seg.duration_s)
            t -= seg.duration_s
        raise AssertionError("unreachable")

    def phase_at(self, t_s: float) -> str:
        return self.segments[self.segment_at(t_s)[0]].phase

    def state_at(self, t_s: float, limits: DeliveryLimits, max_retraction_mm: float) -> DeliveryState:
        """Delivery state at ``t_s`` (held after the end)."""
        index, into = self.segment_at(t_s)
        state = self.start
        for i, seg in enumerate(self.segments[: index + 1]):
            dt = into if i == index else seg.duration_s
            command = DeliveryCommand(seg.advance_speed_mm_s, seg.retraction_speed_mm_s, seg.steer_rate_deg_s)
            speeds = clamp_command(command, limits)
            state = integrate(state, speeds, dt, limits, max_retraction_mm)
        return state


def _injection(rng: np.random.Generator, start_s: float) -> Injection:
    return Injection(
        start_s=max(start_s, 0.0),
        plateau_s=rng.uniform(1.0, 3.0),
        rise_s=rng.uniform(0.25, 0.4),
        washout_s=rng.uniform(0.8, 1.6),
    )


PHASE_SAMPLING_WEIGHTS = {"approach": 0.2, "positioning": 0.3, "deployment": 0.3, "release": 0.2}


def sampling_times(scenario: Scenario, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` sorted times spread over the whole timeline with a fair share of frames per phase.

    Time is warped so each phase present takes its :data:`PHASE_SAMPLING_WEIGHTS` share (renormalised
    over the phases present), then one time is drawn uniformly in each of ``count`` equal slices of the
    warped axis and mapped back.
    """
    durations = np.array([s.duration_s for s in scenario.segments])
    phase_total: dict[str, float] = {}
    for seg in scenario.segments:
        phase_total[seg.phase] = phase_total.get(seg.phase, 0.0) + seg.duration_s
    weights = np.array(
        [PHASE_SAMPLING_WEIGHTS[s.phase] * s.duration_s / phase_total[s.phase] for s in scenario.segments]
    )
    warped_edges = np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
    time_edges = np.concatenate([[0.0], np.cumsum(durations)])
    warped = (np.arange(count) + rng.uniform(0.0, 1.0, count)) / count
    return np.interp(warped, warped_edges, time_edges)


def default_scenario(case: CaseParams, *, contrast_at_start: bool = True) -> Scenario:
    """A complete procedure for ``case`` (deterministic per case seed), about 45-75 s long.

    Approach from 12-25 mm above the annulus to a 2-8 mm deep start position with overshoot and pull
    back and adjustments (one of them also steering by up to ±3 deg), from a steer of up to ±18 deg
    held otherwise (so frames cover what a steering controller does), then two-stage capsule
    retraction with a check pause, then release. Seven
    contrast puffs (1-3 s plateau) fill the root about 35 % of the time, with contrast-free stretches.
    ``contrast_at_start=False`` removes the first puff (no contrast has been injected when the delivery
    system comes into view).
    """
    rng = np.random.default_rng([case.seed, 0x5CE7])
    u = rng.uniform
    height = case.devices.frame_height_mm
    start_tip, target = -u(12, 25), u(2, 8)
    overshoot = u(1, 3)
    approach_speed = u(2.5, 4.5)
    segs: list[Segment] = [
        Segment("approach", (target + overshoot - start_tip) / approach_speed, approach_speed),
        Segment("positioning", u(0.5, 1.5)),
        Segment("positioning", overshoot / 1.0, -1.0),
        Segment("positioning", u(1.5, 3.0)),
        Segment("positioning", u(1.0, 2.0), u(-0.8, 0.8), 0.0, u(-1.5, 1.5)),
        Segment("positioning", u(2.0, 4.0)),
    ]
    stage1, stage2 = u(0.25, 0.4) * height, u(0.6, 0.8) * height
    r1, r2, r3 = u(0.8, 1.6), u(1.0, 2.0), u(1.5, 2.0)
    segs += [
        Segment("deployment", stage1 / r1, -u(0.0, 0.15), r1),
        Segment("deployment", u(1.0, 3.0)),
        Segment("deployment", (stage2 - stage1) / r2, -u(0.0, 0.1), r2),
        Segment("release", (height - stage2) / r3, 0.0, r3),
        Segment("release", u(1.0, 2.0)),
    ]
    bounds = np.cumsum([0.0] + [s.duration_s for s in segs])
    starts = [
        u(0.0, 0.8),  # approach
        bounds[3] - 0.3,  # positioning check after the pull-back
        bounds[5] + u(0.0, 1.0),  # positioning, final check
        bounds[6] + 0.3 * (bounds[7] - bounds[6]),  # during the first retraction stage
        bounds[7],  # deployment pause
        bounds[8] + 0.4 * (bounds[9] - bounds[8]),  # second retraction stage
        bounds[9] + 0.5 * (bounds[10] - bounds[9]),  # release
    ]
    if not contrast_at_start:
        starts = starts[1:]
    injections = tuple(_injection(rng, t) for t in starts)
    start_steer = u(-MAX_START_STEER_DEG, MAX_START_STEER_DEG)  # drawn last: earlier draws unchanged
    return Scenario(DeliveryState(start_tip, 0.0, start_steer), tuple(segs), ContrastSchedule(injections))
