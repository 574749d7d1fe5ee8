"""Analytic geometry: known points give known depths, angles, tilts and fractions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tavi_perception.geometry.binding import PigtailBinding
from tavi_perception.geometry.deviations import (
    axis_tilt_deg,
    capsule_retraction_mm,
    catheter_deviation,
    deployment_fraction,
    signed_tilt_deg,
    stent_axis_px,
    stent_deviation,
)
from tavi_perception.geometry.frames import annulus_frame


def _rotation(deg: float) -> np.ndarray:
    a = math.radians(deg)
    return np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])


@pytest.mark.parametrize("rotation_deg", [0.0, 25.0, -140.0])
def test_tip_depth_lateral_and_coaxiality_of_known_points(rotation_deg: float) -> None:
    # Annulus along +x from (-30, 0) to (30, 0), STJ above (y < 0): depth grows with image y.
    rot = _rotation(rotation_deg)
    centre = np.array([256.0, 256.0])

    def place(x: float, y: float) -> np.ndarray:
        return centre + rot @ np.array([x, y])

    frame = annulus_frame(place(-30, 0), place(30, 0), place(0, -50))
    root_axis = rot @ np.array([0.0, 1.0])
    # tip 10 px deep and 5 px towards AA2; delivery axis tilted 45° from the root axis
    dev = catheter_deviation(frame, place(5, 10), place(-15, -10), root_axis, mm_per_px=0.4)
    assert dev.tip_depth_mm == pytest.approx(4.0)
    assert dev.tip_lateral_mm == pytest.approx(2.0)
    assert dev.coaxiality_deg == pytest.approx(45.0)
    assert frame.angle_deg == pytest.approx((rotation_deg + 180) % 360 - 180)


def test_point_above_the_annulus_has_negative_depth() -> None:
    frame = annulus_frame(np.array([100.0, 300.0]), np.array([160.0, 300.0]), np.array([130.0, 240.0]))
    dev = catheter_deviation(
        frame, np.array([130.0, 280.0]), np.array([130.0, 200.0]), np.array([0, 1.0]), 0.5
    )
    assert dev.tip_depth_mm == pytest.approx(-10.0)
    assert dev.coaxiality_deg == pytest.approx(0.0)


def test_stent_depths_asymmetry_and_signed_tilt() -> None:
    frame = annulus_frame(np.array([100.0, 300.0]), np.array([160.0, 300.0]), np.array([130.0, 240.0]))
    # FE1 8 px deep, FE2 12 px deep, 40 px apart along x: tilt atan(4/40)
    dev = stent_deviation(frame, np.array([110.0, 308.0]), np.array([150.0, 312.0]), mm_per_px=0.5)
    assert dev.fe1_depth_mm == pytest.approx(4.0)
    assert dev.fe2_depth_mm == pytest.approx(6.0)
    assert dev.mean_depth_mm == pytest.approx(5.0)
    assert dev.asymmetry_mm == pytest.approx(2.0)
    assert dev.tilt_deg == pytest.approx(math.degrees(math.atan2(4, 40)))


def test_tilt_does_not_depend_on_which_edge_is_labelled_one() -> None:
    frame = annulus_frame(np.array([100.0, 300.0]), np.array([160.0, 300.0]), np.array([130.0, 240.0]))
    a, b = np.array([110.0, 308.0]), np.array([150.0, 312.0])
    assert signed_tilt_deg(frame, a, b) == pytest.approx(signed_tilt_deg(frame, b, a))
    assert -90.0 < signed_tilt_deg(frame, np.array([130.0, 300.0]), np.array([130.0, 320.0])) <= 90.0


def test_capsule_retraction_and_deployment_fraction() -> None:
    cp, cd = np.array([100.0, 100.0]), np.array([100.0, 130.0])  # 30 px = 15 mm at 0.5 mm/px
    retraction = capsule_retraction_mm(cp, cd, mm_per_px=0.5, closed_mm=24.0)
    assert retraction == pytest.approx(9.0)
    assert deployment_fraction(retraction, frame_height_mm=18.0) == pytest.approx(0.5)
    assert deployment_fraction(-2.0, 18.0) == 0.0
    assert deployment_fraction(25.0, 18.0) == 1.0
    with pytest.raises(ValueError, match="frame height"):
        deployment_fraction(1.0, 0.0)


def test_binding_carries_the_annulus_under_pure_translation() -> None:
    frame = annulus_frame(np.array([100.0, 300.0]), np.array([160.0, 290.0]), np.array([125.0, 240.0]))
    pt = np.array([120.0, 320.0])
    binding = PigtailBinding(average_s=0.5)
    binding.bind(0.0, frame, np.array([0.0, 1.0]), 24.0, pt)
    shift = np.array([7.5, -12.0])
    carried, root = binding.carry(pt + shift)
    np.testing.assert_allclose(carried.origin_px, frame.origin_px + shift)
    np.testing.assert_allclose(carried.x_axis, frame.x_axis)
    np.testing.assert_allclose(carried.y_axis, frame.y_axis)
    np.testing.assert_allclose(root, [0.0, 1.0])
    tip = np.array([135.0, 310.0])
    assert carried.to_annulus_mm(tip + shift, 0.4) == pytest.approx(frame.to_annulus_mm(tip, 0.4))


def test_binding_averages_contrast_frames_and_follows_a_new_injection() -> None:
    aa1, aa2, stj = np.array([100.0, 300.0]), np.array([160.0, 300.0]), np.array([130.0, 240.0])
    binding = PigtailBinding(average_s=0.5)
    pt = np.array([120.0, 320.0])
    binding.bind(0.0, annulus_frame(aa1, aa2, stj), np.array([0.0, 1.0]), 24.0, pt)
    binding.bind(0.1, annulus_frame(aa1 + 2.0, aa2 + 2.0, stj + 2.0), np.array([0.0, 1.0]), 24.0, pt)
    origin_after_noise = binding.carry(pt)[0].origin_px
    assert 130.0 < origin_after_noise[0] < 132.0  # between the two samples, nearer the first
    binding.bind(60.0, annulus_frame(aa1 + 20.0, aa2 + 20.0, stj + 20.0), np.array([0.0, 1.0]), 24.0, pt)
    np.testing.assert_allclose(binding.carry(pt)[0].origin_px, [150.0, 320.0], atol=1e-6)


def test_unbound_binding_cannot_carry() -> None:
    with pytest.raises(RuntimeError, match="before any contrast"):
        PigtailBinding(0.5).carry(np.zeros(2))


def test_retraction_from_the_device_length_is_free_of_foreshortening() -> None:
    # a 50 mm closed CP-CD segment seen at 60 degrees out of plane: projected 25 mm closed, 15 mm now
    cp, cd = np.array([0.0, 0.0]), np.array([0.0, 15.0])
    assert capsule_retraction_mm(cp, cd, 1.0, closed_mm=25.0) == pytest.approx(10.0)  # foreshortened
    assert capsule_retraction_mm(cp, cd, 1.0, closed_mm=25.0, length_mm=50.0) == pytest.approx(20.0)


def test_axis_tilt_is_signed_in_the_image_rotation_sense_whichever_way_the_annulus_frame_points() -> None:
    down = annulus_frame(np.array([0.0, 0.0]), np.array([10.0, 0.0]), np.array([5.0, -8.0]))  # ventricle +y
    up = annulus_frame(np.array([0.0, 0.0]), np.array([10.0, 0.0]), np.array([5.0, 8.0]))  # ventricle -y
    a = math.radians(4.0)
    assert axis_tilt_deg(down, np.array([-math.sin(a), math.cos(a)])) == pytest.approx(4.0)
    assert axis_tilt_deg(up, np.array([math.sin(a), -math.cos(a)])) == pytest.approx(4.0)
    with pytest.raises(ValueError):
        axis_tilt_deg(down, np.zeros(2))


def test_stent_axis_is_perpendicular_to_the_frame_edges_towards_the_ventricle() -> None:
    frame = annulus_frame(np.array([0.0, 0.0]), np.array([10.0, 0.0]), np.array([5.0, -8.0]))
    axis = stent_axis_px(frame, np.array([0.0, 5.0]), np.array([10.0, 6.0]))
    assert float(axis @ np.array([10.0, 1.0])) == pytest.approx(0.0) and axis[1] > 0
    assert axis_tilt_deg(frame, axis) == pytest.approx(math.degrees(math.atan2(1.0, 10.0)))
