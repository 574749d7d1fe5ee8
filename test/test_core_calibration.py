"""Calibration: never silent about where the scale came from (no ROS)."""

from __future__ import annotations

import pytest

from tavi_perception.core.calibration import Calibration, calibration_from_parameters


def test_an_explicit_scale_is_calibrated_and_named() -> None:
    cal = calibration_from_parameters(0.3, 0.0, 0.0, 0.0, 512)
    assert cal.calibrated and cal.mm_per_px == 0.3 and cal.source == "parameter mm_per_px 0.3"


def test_pixel_spacing_sid_and_sod_all_given_are_calibrated() -> None:
    cal = calibration_from_parameters(0.0, 0.3, 1000.0, 750.0, 512)
    assert cal.calibrated and cal.mm_per_px == pytest.approx(0.3 * 750 / 1000)
    assert "SID 1000 mm" in cal.source


def test_anything_missing_falls_back_to_the_default_and_says_so() -> None:
    nothing = calibration_from_parameters(0.0, 0.0, 0.0, 0.0, 512)
    assert not nothing.calibrated and nothing.mm_per_px == pytest.approx(0.4)
    assert nothing.source.startswith("default") and "sid_mm 1200" in nothing.source
    partial = calibration_from_parameters(0.0, 0.3, 0.0, 0.0, 512)
    assert not partial.calibrated and "imager_pixel_spacing_mm" not in partial.source


def test_the_scale_follows_the_frame_width_it_refers_to() -> None:
    assert Calibration(0.4, 512, True, "x").for_width(1024) == pytest.approx(0.2)
    assert Calibration(0.4, 0, True, "x").for_width(1024) == pytest.approx(0.4)


def test_impossible_values_are_refused() -> None:
    with pytest.raises(ValueError, match="SOD"):
        calibration_from_parameters(0.0, 0.3, 700.0, 800.0, 512)
    with pytest.raises(ValueError, match="positive"):
        Calibration(0.0, 512, True, "x")
