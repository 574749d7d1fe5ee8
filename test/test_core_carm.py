"""When a reported C-arm state is another view: angles, distances, unreported values."""

from __future__ import annotations

import math

from tavi_perception.core.carm import CArmPose, change_reason


def test_the_first_reported_state_is_no_change() -> None:
    assert change_reason(None, CArmPose(primary_angle_deg=30.0)) is None


def test_an_angle_beyond_the_read_out_tolerance_is_a_change_and_named() -> None:
    before = CArmPose(primary_angle_deg=30.0, secondary_angle_deg=10.0)
    assert change_reason(before, CArmPose(primary_angle_deg=30.4, secondary_angle_deg=10.0)) is None
    reason = change_reason(before, CArmPose(primary_angle_deg=30.0, secondary_angle_deg=12.0))
    assert reason == "C-arm moved: secondary_angle_deg 10 -> 12"


def test_table_field_size_and_sid_changes_compare_in_millimetres() -> None:
    before = CArmPose(sid_mm=1200.0, field_size_mm=250.0, table_x_mm=0.0, table_y_mm=0.0, table_z_mm=0.0)
    assert change_reason(before, CArmPose(sid_mm=1200.8, field_size_mm=250.0, table_x_mm=0.5)) is None
    assert "field_size_mm" in change_reason(before, CArmPose(field_size_mm=200.0))
    assert "table_z_mm" in change_reason(before, CArmPose(table_z_mm=-20.0))


def test_a_value_reported_on_one_side_only_is_no_change() -> None:
    before = CArmPose(primary_angle_deg=30.0)
    assert change_reason(before, CArmPose(primary_angle_deg=math.nan, secondary_angle_deg=40.0)) is None
