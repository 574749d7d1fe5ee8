"""A running median for distances learned online (the closed-capsule CP-CD reference, the CT-CP anchor)."""

from __future__ import annotations

from collections import deque

import numpy as np


class RunningMedian:
    """Median [mm] of the ``window`` samples before the newest ``lag``, once ``min_samples`` are in it.

    For a distance that should be constant while it is learned but whose measurements may be wrong for
    a while: unlike a reference fixed from the first frames, it recovers once correct frames are the
    majority. The lag keeps the newest samples out, for a distance about to change unseen (the capsule
    starts retracting a little before the frame edges show).
    """

    def __init__(self, window: int, min_samples: int, lag: int = 0) -> None:
        self._samples: deque[float] = deque(maxlen=window + lag)
        self.min_samples = min_samples
        self._lag = lag

    @property
    def count(self) -> int:
        return max(0, len(self._samples) - self._lag)

    @property
    def value_mm(self) -> float | None:
        if self.count < self.min_samples:
            return None
        return float(np.median(list(self._samples)[: self.count]))

    def observe(self, distance_mm: float) -> None:
        self._samples.append(distance_mm)
