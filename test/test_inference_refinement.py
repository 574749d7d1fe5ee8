"""The refinement crops: their window in millimetres, their pixels, and the mapping back to the frame."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tavi_perception.core.pipeline import shipped_model_path
from tavi_perception.inference import create_engine
from tavi_perception.inference.engines import Detections
from tavi_perception.inference.refinement import CROP_MM, ROOT, VALVE, Refinement, crop, crop_window, refine
from tavi_perception.keypoints import NUM_KEYPOINTS, Kp


def _gradient(h: int = 120, w: int = 160) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return (x + 1000 * y).astype(np.float64)


def test_window_side_is_the_crop_size_in_millimetres_around_the_centre():
    window = crop_window(np.array([100.4, 200.6]), mm_per_px=0.25)
    assert window.size_px == round(CROP_MM / 0.25)
    assert (window.x0_px, window.y0_px) == (
        round(100.4 - 0.5 * window.size_px),
        round(200.6 - 0.5 * window.size_px),
    )
    assert crop_window(np.array([0.0, 0.0]), mm_per_px=0.5).size_px == round(CROP_MM / 0.5)


@pytest.mark.parametrize("mm_per_px", [0.0, -0.2, float("nan")])
def test_window_rejects_a_pixel_size_that_is_not_positive(mm_per_px):
    with pytest.raises(ValueError, match="mm_per_px"):
        crop_window(np.array([10.0, 10.0]), mm_per_px)


def test_window_maps_points_both_ways_and_tells_inside_from_outside():
    window = crop_window(np.array([50.0, 60.0]), mm_per_px=CROP_MM / 40)
    points = np.array([[50.0, 60.0], [29.0, 60.0], [30.0, 40.0]])
    in_crop = window.to_crop(points)
    np.testing.assert_allclose(window.to_frame(in_crop), points)
    assert window.contains(in_crop).tolist() == [True, False, True]


def test_crop_inside_the_frame_is_the_frames_pixels():
    image = _gradient()
    window = crop_window(np.array([80.0, 60.0]), mm_per_px=CROP_MM / 30)
    out = crop(image, window)
    assert out.shape == (30, 30)
    np.testing.assert_array_equal(
        out, image[window.y0_px : window.y0_px + 30, window.x0_px : window.x0_px + 30]
    )


def test_crop_past_the_border_repeats_the_border_pixels():
    image = _gradient()
    window = crop_window(np.array([2.0, 118.0]), mm_per_px=CROP_MM / 20)  # past the left and bottom edges
    out = crop(image, window)
    assert out.shape == (20, 20)
    inside_x, inside_y = -window.x0_px, image.shape[0] - window.y0_px
    np.testing.assert_array_equal(out[:inside_y, inside_x:], image[window.y0_px :, : 20 - inside_x])
    np.testing.assert_array_equal(out[:inside_y, 0], image[window.y0_px :, 0])  # left border repeated
    np.testing.assert_array_equal(out[-1, inside_x:], image[-1, : 20 - inside_x])  # bottom row repeated


def test_crop_of_a_window_outside_the_frame_is_an_error():
    with pytest.raises(ValueError, match="outside"):
        crop(_gradient(), crop_window(np.array([500.0, 500.0]), mm_per_px=CROP_MM / 20))


@dataclasses.dataclass
class _FixedEngine:
    """An engine whose answer (in the pixels of the image it is given) is fixed: the mapping under test."""

    xy_px: np.ndarray
    visibility: np.ndarray
    input_size: int = 64
    backend: str = "fixed"
    seen_shapes: list = dataclasses.field(default_factory=list)

    def infer(self, image: np.ndarray) -> Detections:
        self.seen_shapes.append(image.shape)
        return Detections(self.xy_px.copy(), self.visibility.copy(), np.ones(3), self.backend)


def _first_stage(fe_visible: float = 0.9) -> Detections:
    xy = np.tile([[60.0, 50.0]], (NUM_KEYPOINTS, 1))
    xy[Kp.FE1], xy[Kp.FE2] = (50.0, 40.0), (70.0, 60.0)
    vis = np.full(NUM_KEYPOINTS, 0.9)
    vis[Kp.FE2] = fe_visible
    return Detections(xy, vis, np.ones(3), "first")


def test_refine_replaces_the_frame_edges_with_the_crops_reading_in_frame_pixels():
    second_xy = np.full((NUM_KEYPOINTS, 2), 5.0)
    second_xy[Kp.FE1], second_xy[Kp.FE2] = (3.0, 4.0), (17.0, 16.0)
    engine = _FixedEngine(second_xy, np.full(NUM_KEYPOINTS, 0.8))
    first = _first_stage()
    mm_per_px = CROP_MM / 20
    refined = refine(engine, _gradient(), first, mm_per_px, max_shift_mm=100.0)
    window = crop_window(np.array([60.0, 50.0]), mm_per_px)
    assert engine.seen_shapes == [(20, 20)]
    np.testing.assert_allclose(refined.xy_px[Kp.FE1], window.to_frame(second_xy[Kp.FE1]))
    np.testing.assert_allclose(refined.xy_px[Kp.FE2], window.to_frame(second_xy[Kp.FE2]))
    others = [k for k in range(NUM_KEYPOINTS) if k not in (Kp.FE1, Kp.FE2)]
    np.testing.assert_array_equal(refined.xy_px[others], first.xy_px[others])
    assert refined.visibility[Kp.FE1] == pytest.approx(0.8)  # the lower of the two stages


def test_refine_drops_a_frame_edge_the_crop_does_not_see_or_places_outside():
    second_xy = np.full((NUM_KEYPOINTS, 2), 5.0)
    second_xy[Kp.FE2] = (25.0, 5.0)  # outside a 20 px crop
    visibility = np.full(NUM_KEYPOINTS, 0.8)
    visibility[Kp.FE1] = 0.1
    first = _first_stage()
    refined = refine(
        _FixedEngine(second_xy, visibility), _gradient(), first, CROP_MM / 20, max_shift_mm=100.0
    )
    assert refined.visibility[Kp.FE1] == pytest.approx(0.1)
    assert refined.visibility[Kp.FE2] == 0.0


def test_refine_drops_a_frame_edge_read_too_far_from_the_first_reading():
    mm_per_px = CROP_MM / 20  # 2.2 mm per px; the window's corner is (50, 40)
    second_xy = np.full((NUM_KEYPOINTS, 2), 5.0)
    second_xy[Kp.FE1] = (1.0, 0.0)  # (51, 40): 2.2 mm from the first reading (50, 40)
    second_xy[Kp.FE2] = (18.0, 20.0 - 1e-3)  # (68, 60): 4.4 mm from (70, 60)
    engine = _FixedEngine(second_xy, np.full(NUM_KEYPOINTS, 0.8))
    refined = refine(engine, _gradient(), _first_stage(), mm_per_px, max_shift_mm=3.0)
    assert refined.visibility[Kp.FE1] == pytest.approx(0.8)
    assert refined.visibility[Kp.FE2] == 0.0


def test_refine_leaves_a_frame_without_both_frame_edges_alone():
    engine = _FixedEngine(np.zeros((NUM_KEYPOINTS, 2)), np.ones(NUM_KEYPOINTS))
    first = _first_stage(fe_visible=0.2)
    assert refine(engine, _gradient(), first, 0.3) is first
    assert engine.seen_shapes == []


def test_refine_with_a_real_onnx_session_reads_the_crop_of_the_frame():
    engine = create_engine(shipped_model_path(), threads=1)
    image = (_gradient(512, 512) % 251).astype(np.uint8)
    image[40:60, 50:70] = 0  # not a constant crop
    first = _first_stage()
    refined = refine(engine, image, first, mm_per_px=0.25, max_shift_mm=1e3)
    window = crop_window(np.array([60.0, 50.0]), 0.25)
    direct = engine.infer(crop(image, window))
    for k in (Kp.FE1, Kp.FE2):
        np.testing.assert_allclose(refined.xy_px[k], window.to_frame(direct.xy_px[k]))


def test_the_root_target_reads_the_annulus_landmarks_again_in_its_own_crop_size():
    first = _first_stage()
    first.xy_px[[Kp.AA1, Kp.AA2, Kp.STJ1, Kp.STJ2]] = [(40.0, 70.0), (80.0, 70.0), (44.0, 30.0), (76.0, 30.0)]
    second_xy = np.full((NUM_KEYPOINTS, 2), 5.0)
    second_xy[Kp.AA1] = (3.0, 7.0)
    engine = _FixedEngine(second_xy, np.full(NUM_KEYPOINTS, 0.8))
    mm_per_px = ROOT.crop_mm / 20
    refined = refine(engine, _gradient(), first, mm_per_px, max_shift_mm=1e3, target=ROOT)
    window = crop_window(np.array([60.0, 50.0]), mm_per_px, ROOT.crop_mm)  # the four points' mean
    assert engine.seen_shapes == [(20, 20)]
    np.testing.assert_allclose(refined.xy_px[Kp.AA1], window.to_frame(second_xy[Kp.AA1]))
    others = [k for k in range(NUM_KEYPOINTS) if k not in ROOT.points]
    np.testing.assert_array_equal(refined.xy_px[others], first.xy_px[others])  # the frame edges kept


def test_refinements_run_in_turn_each_on_its_own_points():
    first = _first_stage()
    second_xy = np.full((NUM_KEYPOINTS, 2), 5.0)
    engine = _FixedEngine(second_xy, np.full(NUM_KEYPOINTS, 0.8))
    refined = first
    for refinement in (Refinement(VALVE, engine), Refinement(ROOT, engine)):
        refined = refinement(_gradient(), refined, 0.5)
    assert [shape[0] for shape in engine.seen_shapes] == [
        round(VALVE.crop_mm / 0.5),
        round(ROOT.crop_mm / 0.5),
    ]
    moved = np.flatnonzero(np.any(refined.xy_px != first.xy_px, axis=1))
    assert set(moved) == set(VALVE.points) | set(ROOT.points)
