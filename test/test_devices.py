"""Device values are never silent: a preset applies what it knows, defaults are named as such."""

from __future__ import annotations

import dataclasses

import pytest

from tavi_perception.devices import device_geometry, preset
from tavi_perception.geometry.params import GeometryParams


def test_without_a_preset_default_device_values_are_named_and_warned_about() -> None:
    params, source, warnings = device_geometry("", GeometryParams())
    assert params == GeometryParams()
    assert source.startswith("default valve_frame_height_mm 18 mm") and len(warnings) == 1


def test_device_values_given_as_parameters_are_used_without_a_warning() -> None:
    given = dataclasses.replace(GeometryParams(), valve_frame_height_mm=45.0)
    assert device_geometry("", given) == (given, "parameters", [])


def test_a_preset_sets_the_frame_height_it_knows_and_names_what_it_does_not() -> None:
    evolut = preset("evolut-r-26")
    params, source, warnings = device_geometry("evolut-r-26", GeometryParams(target_depth_mm=3.0))
    assert params.valve_frame_height_mm == evolut.frame_height_mm and params.target_depth_mm == 3.0
    assert source == "preset evolut-r-26"
    assert warnings == [
        "device preset evolut-r-26: cp_cd_length_mm unknown here, left at its configured value"
    ]


def test_an_unknown_preset_is_refused_with_the_known_names() -> None:
    with pytest.raises(ValueError, match="unknown device preset 'nope'; known: "):
        device_geometry("nope", GeometryParams())
