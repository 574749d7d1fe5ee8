"""Reference catheter-manipulator controller: Guidance in, bounded velocity commands out (no ROS).

Phases of a valve implantation:

1. ``ADVANCE``: move the delivery system along its axis until the controlled depth is within the
   tolerance band around the target (proportional speed, bounded, acceleration-limited).
2. ``SETTLE``: keep correcting depth and tilt; once the depth error has stayed inside the band, and the
   delivery tilt (when measured) within ``max_deploy_tilt_deg``, for ``settle_time_s`` (guidance time,
   i.e. image stamps), start deploying.
3. ``DEPLOY``: retract the capsule at a bounded speed while holding depth; retraction pauses whenever
   the depth error exceeds ``deploy_band_mm`` (tighter than the band: a frame that jumps as it engages
   the annulus is corrected before more of it is released) or the extraction measurement is invalid.
4. ``DONE``: the deployment fraction reached ``done_fraction``; every axis holds.

Steering runs beside the phases until ``DONE``: the steer rate turns the delivery axis against its
measured tilt (``delivery_tilt_deg``), proportional outside a ``tilt_deadband_deg``, so the frame edges
end level with the annulus (asymmetry ~ inflow diameter x |sin(tilt)|). No steer without a finite tilt;
the levelling is done before deployment because the partly released frame is where the detector is
least sure of the tip and the frame edges.

Whatever the phase, the command is a hold (every speed zero at once, no ramp) when no guidance has
arrived, when the last one is older than ``guidance_timeout_s`` (receipt time), when it is invalid,
or when its depth error is implausibly large.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import StrEnum

from tavi_perception.guidance import GuidanceEstimate


class Phase(StrEnum):
    """Where the controller is in the implantation."""

    ADVANCE = "advance"
    SETTLE = "settle"
    DEPLOY = "deploy"
    DONE = "done"


@dataclass(frozen=True)
class ControllerParams:
    """Limits and gains; every speed command stays inside the limits whatever the guidance says."""

    max_advance_speed_mm_s: float = 2.0  # [mm/s] |advance speed| bound
    max_retraction_speed_mm_s: float = 1.0  # [mm/s] capsule retraction speed bound (and cruise speed)
    max_accel_mm_s2: float = 4.0  # [mm/s²] bound on the change of either speed between commands
    depth_gain_per_s: float = 0.8  # [1/s] advance speed per mm of depth error
    guidance_timeout_s: float = 0.5  # [s] older guidance (by receipt time) makes the controller hold
    settle_time_s: float = 1.0  # [s] depth must stay in the band this long before deployment starts
    done_fraction: float = 0.98  # [1] deployment fraction at which the implantation is complete
    max_abs_depth_error_mm: float = 25.0  # [mm] a larger depth error is implausible: hold
    max_steer_rate_deg_s: float = 2.0  # [deg/s] |steer rate| bound
    max_steer_accel_deg_s2: float = 4.0  # [deg/s²] bound on the change of the steer rate between commands
    steer_gain_per_s: float = 0.6  # [1/s] steer rate per degree of tilt outside the deadband
    tilt_deadband_deg: float = 0.5  # [deg] no steering while |tilt| is within this
    max_deploy_tilt_deg: float = 2.0  # [deg] deployment starts only with |tilt| within this
    deploy_band_mm: float = 0.6  # [mm] the capsule retraction runs only while |depth error| <= this

    def __post_init__(self) -> None:
        problems = [
            f"{f.name} must be finite and > 0" for f in fields(self) if not _positive(getattr(self, f.name))
        ]
        if not 0.0 < self.done_fraction <= 1.0:
            problems.append("done_fraction must be in (0, 1]")
        if problems:
            raise ValueError("invalid controller parameters: " + "; ".join(problems))


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0.0


@dataclass(kw_only=True)
class GuidanceSample(GuidanceEstimate):
    """A guidance as the controller received it: the contract with its stamp and receipt time.

    The controller acts on ``valid``, ``invalid_reason``, ``depth_error_mm``, ``depth_tolerance_mm``,
    ``extraction_valid``, ``deployment_fraction`` and ``delivery_tilt_deg`` (NaN = unknown: no steering).
    """

    received_s: float  # [s] receipt time on the controller's (monotonic) clock
    stamp_s: float  # [s] the guidance header stamp (image acquisition time)


@dataclass(frozen=True)
class Command:
    """One manipulator command; speeds are zero whenever ``hold`` is true."""

    advance_speed_mm_s: float
    retraction_speed_mm_s: float
    steer_rate_deg_s: float
    hold: bool
    reason: str
    phase: Phase
    stamp_s: float | None  # stamp of the guidance this command answers (None: no guidance)


class ReferenceController:
    """Turns the latest guidance into a command at each :meth:`step` (call it at a fixed rate)."""

    def __init__(self, params: ControllerParams | None = None) -> None:
        self.params = params or ControllerParams()
        self.phase = Phase.ADVANCE
        self._latest: GuidanceSample | None = None
        self._in_band_since_s: float | None = None  # guidance stamp when the error entered the band
        self._advance_mm_s = 0.0
        self._retraction_mm_s = 0.0
        self._steer_deg_s = 0.0
        self._last_step_s: float | None = None

    def on_guidance(self, sample: GuidanceSample) -> None:
        """Record a guidance message and advance the phase machine on its stamp."""
        previous = self._latest
        self._latest = sample
        if previous is not None and sample.stamp_s < previous.stamp_s:
            self._in_band_since_s = None  # time went backwards (replay loop): re-earn stability
        if not sample.valid:
            self._in_band_since_s = None
            return
        if self.phase is Phase.DEPLOY:
            if sample.extraction_valid and sample.deployment_fraction >= self.params.done_fraction:
                self.phase = Phase.DONE
            return
        if self.phase is Phase.DONE:
            return
        if abs(sample.depth_error_mm) > sample.depth_tolerance_mm:
            self.phase = Phase.ADVANCE
            self._in_band_since_s = None
            return
        tilt = sample.delivery_tilt_deg
        if math.isfinite(tilt) and abs(tilt) > self.params.max_deploy_tilt_deg:
            self.phase = Phase.SETTLE  # at depth, still levelling
            self._in_band_since_s = None
            return
        if self._in_band_since_s is None:
            self._in_band_since_s = sample.stamp_s
            self.phase = Phase.SETTLE
        elif sample.stamp_s - self._in_band_since_s >= self.params.settle_time_s:
            self.phase = Phase.DEPLOY

    def step(self, now_s: float) -> Command:
        """The command for time ``now_s`` (same clock as ``GuidanceSample.received_s``)."""
        dt_s = 0.0 if self._last_step_s is None else max(0.0, now_s - self._last_step_s)
        self._last_step_s = now_s
        g = self._latest
        if g is None:
            return self._hold("no guidance received", None)
        if now_s - g.received_s > self.params.guidance_timeout_s:
            age_ms = 1e3 * (now_s - g.received_s)
            return self._hold(f"guidance stale ({age_ms:.0f} ms old)", g.stamp_s)
        if not g.valid:
            return self._hold(f"guidance invalid: {g.invalid_reason or 'no reason given'}", g.stamp_s)
        if not math.isfinite(g.depth_error_mm) or abs(g.depth_error_mm) > self.params.max_abs_depth_error_mm:
            return self._hold(f"depth error {g.depth_error_mm:.1f} mm implausible", g.stamp_s)
        if self.phase is Phase.DONE:
            return self._hold("deployment complete", g.stamp_s)

        p = self.params
        advance_goal = _clip(-p.depth_gain_per_s * g.depth_error_mm, p.max_advance_speed_mm_s)
        in_band = abs(g.depth_error_mm) <= g.depth_tolerance_mm
        tilt = g.delivery_tilt_deg
        tilt_known = math.isfinite(tilt)
        retraction_goal = 0.0
        reason = f"{self.phase.value}: depth error {g.depth_error_mm:+.2f} mm"
        reason += f", tilt {tilt:+.1f} deg" if tilt_known else ", tilt unknown"
        if self.phase is Phase.DEPLOY:
            if not in_band or abs(g.depth_error_mm) > p.deploy_band_mm:
                reason += f", retraction paused: depth out of band (deploying within {p.deploy_band_mm:g} mm)"
            elif not g.extraction_valid:
                reason += ", retraction paused: extraction not measured"
            else:
                retraction_goal = p.max_retraction_speed_mm_s
                reason += f", deploying ({100 * g.deployment_fraction:.0f}%)"
        steer_goal = 0.0
        if tilt_known and abs(tilt) > p.tilt_deadband_deg:
            outside = tilt - math.copysign(p.tilt_deadband_deg, tilt)
            steer_goal = _clip(-p.steer_gain_per_s * outside, p.max_steer_rate_deg_s)
        step_mm_s = p.max_accel_mm_s2 * dt_s
        self._advance_mm_s = _toward(self._advance_mm_s, advance_goal, step_mm_s)
        self._retraction_mm_s = _toward(self._retraction_mm_s, retraction_goal, step_mm_s)
        self._steer_deg_s = _toward(self._steer_deg_s, steer_goal, p.max_steer_accel_deg_s2 * dt_s)
        return Command(
            self._advance_mm_s, self._retraction_mm_s, self._steer_deg_s, False, reason, self.phase, g.stamp_s
        )

    def _hold(self, reason: str, stamp_s: float | None) -> Command:
        self._advance_mm_s = 0.0
        self._retraction_mm_s = 0.0
        self._steer_deg_s = 0.0
        return Command(0.0, 0.0, 0.0, True, reason, self.phase, stamp_s)


def _clip(value: float, bound: float) -> float:
    return max(-bound, min(bound, value))


def _toward(current: float, goal: float, max_change: float) -> float:
    """``current`` moved towards ``goal`` by at most ``max_change``."""
    return current + _clip(goal - current, max_change)
