"""Aortogram contrast: fill of the aortic root (0..1) over time (bolus rise, plateau, washout).

Timing (docs/simulator.md): injection ~0.4-1 s, root opacified ~1-3 s, then washout. A schedule is a set of
one-off injections plus optionally one that repeats with a period; overlapping injections take the larger
fill. An empty
schedule is the "no contrast injected yet" scenario (a fault-injection hook for loop tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from tavi_perception.sim.motion import smoothstep


@dataclass(frozen=True)
class Injection:
    """One contrast injection through the pigtail."""

    start_s: float  # [s] injection start
    plateau_s: float = 2.0  # [s] time at full opacification (1-3 s clinically)
    rise_s: float = 0.3  # [s] bolus arrival, 0 -> full
    washout_s: float = 1.2  # [s] full -> 0
    peak: float = 1.0  # [1] fill at the plateau (a weak puff is < 1)

    def __post_init__(self) -> None:
        if self.plateau_s < 0 or self.rise_s <= 0 or self.washout_s <= 0:
            raise ValueError("injection rise and washout must be > 0 s and the plateau >= 0 s")
        if not 0.0 <= self.peak <= 1.0:
            raise ValueError(f"injection peak must be within 0..1, got {self.peak}")

    @property
    def duration_s(self) -> float:
        """From start to the end of the washout."""
        return self.rise_s + self.plateau_s + self.washout_s

    def fill(self, t_s: float) -> float:
        """Root fill 0..1 caused by this injection at ``t_s``."""
        dt = t_s - self.start_s
        if dt <= 0.0 or dt >= self.duration_s:
            return 0.0
        if dt < self.rise_s:
            return self.peak * float(smoothstep(dt / self.rise_s))
        dt -= self.rise_s + self.plateau_s
        if dt <= 0.0:
            return self.peak
        return self.peak * (1.0 - float(smoothstep(dt / self.washout_s)))


@dataclass(frozen=True)
class ContrastSchedule:
    """One-off injections plus, optionally, one injection repeating every ``period_s`` from its start."""

    injections: tuple[Injection, ...] = ()
    repeating: Injection | None = None
    period_s: float = 0.0

    def __post_init__(self) -> None:
        if self.repeating is not None and self.period_s < self.repeating.duration_s:
            raise ValueError(
                f"a repeating injection needs a period >= its duration ({self.repeating.duration_s:.2f} s), "
                f"got {self.period_s} s"
            )

    def fill(self, t_s: float) -> float:
        """Root fill 0..1 at ``t_s``."""
        best = max((inj.fill(t_s) for inj in self.injections), default=0.0)
        rep = self.repeating
        if rep is not None and t_s > rep.start_s:
            k = math.floor((t_s - rep.start_s) / self.period_s)
            best = max(best, rep.fill(t_s - k * self.period_s))
        return best

    def with_injection(self, injection: Injection) -> ContrastSchedule:
        """This schedule plus one more one-off injection."""
        return replace(self, injections=(*self.injections, injection))
