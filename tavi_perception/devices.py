"""Device presets by name (``config/devices.yaml``): valve frame height and delivery-system facts (no ROS).

A preset sets the geometry parameters it knows (``valve_frame_height_mm``, ``cp_cd_length_mm``) and
leaves the others, and every parameter whose value it does not know, as configured; what was left is
listed, so a caller can say so.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from tavi_perception.geometry.params import GeometryParams
from tavi_perception.share import SOURCE_ROOT, first_file, installed

DEVICES_FILE = "devices.yaml"


def devices_path() -> Path:
    """``config/devices.yaml``: the source tree's, else an installed share folder's (AMENT_PREFIX_PATH, this
    prefix). Raises ``FileNotFoundError`` listing where it looked."""
    return first_file(
        [SOURCE_ROOT / "config" / DEVICES_FILE, *installed("config", DEVICES_FILE)], DEVICES_FILE
    )


@dataclass(frozen=True)
class DevicePreset:
    """One entry of config/devices.yaml (its header documents each field)."""

    name: str
    label: str
    expansion: str
    valve_size_mm: float
    frame_height_mm: float | None
    cp_cd_closed_length_mm: float | None
    catheter_fr: float | None
    source: str
    notes: str

    def geometry_params(self, base: GeometryParams | None = None) -> tuple[GeometryParams, list[str]]:
        """``base`` with the preset's known values, and the parameters left as they were (unknown)."""
        base = base or GeometryParams()
        changes, unknown = {}, []
        for field, param in (
            ("frame_height_mm", "valve_frame_height_mm"),
            ("cp_cd_closed_length_mm", "cp_cd_length_mm"),
        ):
            value = getattr(self, field)
            if value is None:
                unknown.append(param)
            else:
                changes[param] = float(value)
        return dataclasses.replace(base, **changes), unknown


@cache
def load_presets(path: Path | None = None) -> dict[str, DevicePreset]:
    """Every preset of ``path`` (default :func:`devices_path`) by name."""
    data = yaml.safe_load((path or devices_path()).read_text())
    fields = {f.name for f in dataclasses.fields(DevicePreset)} - {"name"}
    presets = {}
    for name, entry in data["devices"].items():
        missing = fields - set(entry)
        if missing:
            raise ValueError(f"device preset {name}: missing keys {sorted(missing)}")
        presets[name] = DevicePreset(name=name, **{k: entry[k] for k in fields})
    return presets


def preset(name: str) -> DevicePreset:
    """The preset ``name``; raises ``ValueError`` with the known names."""
    presets = load_presets()
    if name not in presets:
        raise ValueError(f"unknown device preset {name!r}; known: {', '.join(sorted(presets))}")
    return presets[name]


def device_geometry(preset_name: str, base: GeometryParams) -> tuple[GeometryParams, str, list[str]]:
    """The geometry parameters for a device, where their values came from, and warnings to show.

    ``preset_name`` "" keeps ``base`` and says whether its device values are the built-in defaults (never
    silent: an 18 mm frame height is a 23 mm SAPIEN 3's, not a self-expanding valve's); a name applies
    that preset's known values (:meth:`DevicePreset.geometry_params`). Raises ``ValueError`` for an unknown
    name (the message lists the known ones).
    """
    if not preset_name:
        defaults = GeometryParams()
        if (base.valve_frame_height_mm, base.cp_cd_length_mm) == (
            defaults.valve_frame_height_mm,
            defaults.cp_cd_length_mm,
        ):
            source = (
                f"default valve_frame_height_mm {base.valve_frame_height_mm:g} mm, cp_cd_length_mm unknown "
                "(no device_preset, not given)"
            )
            return base, source, [f"device values not given: {source}"]
        return base, "parameters", []
    device = preset(preset_name)
    params, unknown = device.geometry_params(base)
    warnings = [
        f"device preset {device.name}: {name} unknown here, left at its configured value" for name in unknown
    ]
    if device.expansion != "self-expanding":
        warnings.append(f"device preset {device.name}: {device.notes}")
    return params, f"preset {device.name}", warnings
