"""Non-scene rules (no ROS): real simulator frames pass, black/saturated/uniform/noise frames do not."""

from __future__ import annotations

import numpy as np
import pytest

from tavi_perception.core.quality import QualityParams, non_scene_reason
from tavi_perception.sim import ProcedureSimulator


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_simulator_frames_of_every_phase_with_and_without_contrast_are_scene_frames(bit_depth: int) -> None:
    sim = ProcedureSimulator(5, image_size=128, bit_depth=bit_depth)
    frames = [sim.frame_at(t) for t in np.linspace(0.0, sim.scenario.duration_s, 9)]
    assert {f.phase for f in frames} >= {"approach", "deployment"}
    assert any(f.contrast > 0.5 for f in frames) and any(f.contrast == 0.0 for f in frames)
    assert [non_scene_reason(f.image) for f in frames] == [None] * len(frames)


@pytest.mark.parametrize(
    ("image", "word"),
    [
        (np.zeros((96, 128), np.uint8), "black"),
        (np.full((96, 128), 50, np.uint16), "black"),  # X-ray off on a 16-bit detector: dark current only
        (np.full((96, 128), 128, np.uint8), "uniform"),
        (np.full((96, 128), 65535, np.uint16), "uniform"),
        (
            np.where(np.arange(128) < 100, 255, np.arange(128)).astype(np.uint8)[None, :].repeat(96, 0),
            "saturated",
        ),
        (np.random.default_rng(0).integers(0, 256, (96, 128), dtype=np.uint8), "noise"),
        (np.random.default_rng(1).integers(0, 4096, (96, 128)).astype(np.uint16), "noise"),
    ],
    ids=["black8", "black16", "grey", "white16", "saturated", "noise8", "noise16"],
)
def test_frames_that_are_not_fluoroscopy_of_a_scene_are_named_with_the_reason(
    image: np.ndarray, word: str
) -> None:
    reason = non_scene_reason(image)
    assert reason is not None and reason.startswith("non-scene frame") and word in reason


def test_a_dim_10_bit_image_in_a_16_bit_container_is_not_black() -> None:
    frame = ProcedureSimulator(5, image_size=128, bit_depth=16).frame_at(3.0).image
    assert non_scene_reason((frame >> 6).astype(np.uint16)) is None  # 0..1023


def test_a_colour_or_empty_array_is_not_a_grey_frame() -> None:
    assert "not a grey frame" in non_scene_reason(np.zeros((8, 8, 3), np.uint8))


def test_thresholds_outside_their_range_are_refused() -> None:
    with pytest.raises(ValueError, match="black_level"):
        QualityParams(black_level=2.0)
