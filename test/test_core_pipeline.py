"""PerceptionPipeline (no ROS graph): the shipped ONNX model through tracker and geometry, frozen frames."""

from __future__ import annotations

import numpy as np
import pytest

from tavi_perception.core.pipeline import FrozenImageError, PerceptionPipeline, shipped_model_path
from tavi_perception.inference import create_engine
from tavi_perception.sim import ProcedureSimulator


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    sim = ProcedureSimulator(3, image_size=256)
    return [sim.step().image for _ in range(3)]


@pytest.fixture(scope="module")
def engine():
    return create_engine(shipped_model_path(), backend="onnxruntime", threads=1)


def test_a_bit_identical_repeat_of_the_previous_frame_is_refused_as_frozen(engine, frames) -> None:
    pipeline = PerceptionPipeline(engine)
    first = pipeline.process(0.0, frames[0], 0.5)
    with pytest.raises(FrozenImageError, match="identical"):
        pipeline.process(0.1, frames[0].copy(), 0.5)  # same pixels, new stamp: a stuck grabber
    with pytest.raises(FrozenImageError):
        pipeline.process(0.2, frames[0].copy(), 0.5)  # and again, for as long as it lasts
    assert first.tracked.t_s == 0.0
    fresh = pipeline.process(0.3, frames[1], 0.5)  # the stream moves again: processed
    assert fresh.t_s == 0.3 and fresh.tracked.t_s == pytest.approx(0.3)


def test_repeats_are_processed_when_the_check_is_off_or_after_a_reset(engine, frames) -> None:
    allowed = PerceptionPipeline(engine, reject_repeated=False)
    allowed.process(0.0, frames[2], 0.5)
    assert allowed.process(0.1, frames[2], 0.5).t_s == 0.1
    checked = PerceptionPipeline(engine)
    checked.process(0.0, frames[2], 0.5)
    checked.reset()  # a new sequence: the first frame has nothing to repeat
    assert checked.process(0.0, frames[2], 0.5).t_s == 0.0
