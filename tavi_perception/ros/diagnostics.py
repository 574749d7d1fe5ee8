"""Run-time statistics for ``/diagnostics``: event rates and latency percentiles over a sliding window."""

from __future__ import annotations

from collections import deque

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue


class RateMeter:
    """Events per second over the last ``window_s`` seconds (monotonic clock supplied by the caller)."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()
        self.total = 0

    def tick(self, now_s: float) -> None:
        self._times.append(now_s)
        self.total += 1
        self._trim(now_s)

    def rate_hz(self, now_s: float) -> float:
        self._trim(now_s)
        if len(self._times) < 2:
            return 0.0
        span_s = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span_s if span_s > 0 else 0.0

    def _trim(self, now_s: float) -> None:
        while self._times and now_s - self._times[0] > self.window_s:
            self._times.popleft()


class LatencyWindow:
    """The last ``size`` latencies [ms] and their percentiles."""

    def __init__(self, size: int = 300) -> None:
        self._values: deque[float] = deque(maxlen=size)

    def add(self, latency_ms: float) -> None:
        self._values.append(latency_ms)

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0..100), NaN before the first value."""
        return float(np.percentile(self._values, q)) if self._values else float("nan")

    def __len__(self) -> int:
        return len(self._values)


def status_name(node_name: str, component: str) -> str:
    """The status name of a node's ``component``: ``node_name`` is the node's fully qualified name, so
    nodes in different namespaces are told apart on the shared /diagnostics topic."""
    return f"{node_name}: {component}"


def status(
    node_name: str,
    component: str,
    hardware_id: str,
    level: bytes,
    message: str,
    values: dict[str, object],
) -> DiagnosticStatus:
    """A DiagnosticStatus named :func:`status_name` with ``values`` as key/value strings (floats with 3
    decimals)."""
    pairs = [KeyValue(key=k, value=f"{v:.3f}" if isinstance(v, float) else str(v)) for k, v in values.items()]
    name = status_name(node_name, component)
    return DiagnosticStatus(name=name, hardware_id=hardware_id, level=level, message=message, values=pairs)
