"""One frame through engine -> tracker -> geometry, with per-stage timings (no ROS).

The perception node, the demo and the benchmarks run frames through :class:`PerceptionPipeline`;
the node adds only message conversion and publication around it.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tavi_perception.geometry.estimator import GeometryParams, GuidanceEstimate, GuidanceEstimator
from tavi_perception.inference.engines import Detections, InferenceEngine
from tavi_perception.tracking import KeypointTracker, TrackedKeypoints, TrackerParams

SHIPPED_MODEL = "tavi_keypoints.onnx"


def shipped_model_path() -> Path:
    """The shipped model: installed share folders (AMENT_PREFIX_PATH, this prefix), then the source tree.

    Raises ``FileNotFoundError`` listing where it looked.
    """
    prefixes = [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    prefixes.append(Path(sys.prefix))
    candidates = [prefix / "share" / "tavi_perception" / "models" / SHIPPED_MODEL for prefix in prefixes]
    candidates.append(Path(__file__).resolve().parents[2] / "models" / SHIPPED_MODEL)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"shipped model {SHIPPED_MODEL} not found; looked in: " + ", ".join(str(c.parent) for c in candidates)
    )


@dataclass(frozen=True)
class FrameResult:
    """Everything computed for one frame."""

    t_s: float  # [s] image stamp
    detections: Detections
    tracked: TrackedKeypoints
    estimate: GuidanceEstimate
    infer_ms: float  # [ms] engine (pre-processing, network, post-processing)
    track_ms: float  # [ms] tracker update
    geometry_ms: float  # [ms] geometry update


class FrozenImageError(ValueError):
    """The frame's pixels are bit-identical to the previous frame's: the source is frozen."""


class PerceptionPipeline:
    """Stateful per-frame perception: the engine is stateless, tracker and geometry carry time.

    With ``reject_repeated`` a frame whose pixels equal the previous frame's exactly is refused
    (:class:`FrozenImageError`) before it reaches the tracker. Real fluoroscopy carries quantum noise, so
    two acquisitions are never bit-identical; an identical frame is a stuck frame grabber or a
    last-image-hold re-sent with a new stamp, and treating it as a new measurement would make a stale
    position look current.
    """

    def __init__(
        self,
        engine: InferenceEngine,
        tracker_params: TrackerParams | None = None,
        geometry_params: GeometryParams | None = None,
        reject_repeated: bool = True,
    ) -> None:
        self.engine = engine
        self.tracker = KeypointTracker(tracker_params)
        self.estimator = GuidanceEstimator(geometry_params)
        self.reject_repeated = reject_repeated
        self._previous_image: np.ndarray | None = None

    @property
    def backend(self) -> str:
        return self.engine.backend

    def reset(self) -> None:
        """Forget every track and the geometry state (a new sequence starts)."""
        self.tracker.reset()
        self.estimator.reset()
        self._previous_image = None

    def process(self, t_s: float, image: np.ndarray, mm_per_px: float) -> FrameResult:
        """Run one (H, W) grey frame taken at ``t_s`` [s] with scale ``mm_per_px`` [mm/px].

        Raises ``ValueError`` for an image the engine cannot take (wrong shape, too small) and
        :class:`FrozenImageError` for a repeated image (see the class docstring).
        """
        if self.reject_repeated:
            previous, self._previous_image = self._previous_image, image
            if previous is not None and previous.shape == image.shape and np.array_equal(previous, image):
                raise FrozenImageError("pixels identical to the previous frame (frozen source)")
        t0 = time.perf_counter()
        detections = self.engine.infer(image)
        t1 = time.perf_counter()
        tracked = self.tracker.update(t_s, detections.xy_px, detections.visibility)
        t2 = time.perf_counter()
        estimate = self.estimator.update(t_s, tracked, mm_per_px)
        t3 = time.perf_counter()
        return FrameResult(
            t_s, detections, tracked, estimate, 1e3 * (t1 - t0), 1e3 * (t2 - t1), 1e3 * (t3 - t2)
        )
