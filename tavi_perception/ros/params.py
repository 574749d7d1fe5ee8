"""Node parameters declared from one spec: descriptors with ranges, validation at start, run-time changes.

A node module lists its parameters once as a tuple of :class:`ParamSpec` (module-level ``PARAMETERS``);
:func:`declare_parameters` declares them with descriptors (description, range, read-only unless the
spec says ``dynamic``) and fails fast with one :class:`ParameterError` naming every bad value. The same
tuple lets tests check launch files and ``config/*.yaml`` statically.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node
from rclpy.parameter import Parameter

ParamValue = bool | int | float | str


class ParameterError(ValueError):
    """One or more node parameters are invalid; the message lists each with the accepted values."""


@dataclass(frozen=True)
class ParamSpec:
    """One node parameter: its type comes from ``default`` (write floats as ``1.0`` in YAML)."""

    name: str
    default: ParamValue
    description: str  # meaning, with the unit in brackets, e.g. "[mm] target implantation depth"
    min_value: float | None = None  # inclusive
    max_value: float | None = None  # inclusive
    choices: tuple[str, ...] = ()  # accepted values of a string parameter (empty: any)
    dynamic: bool = False  # may be changed at run time with `ros2 param set`

    def check(self, value: Any) -> str | None:
        """Why ``value`` is not acceptable for this parameter, or None when it is."""
        expected = type(self.default)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not expected:
            return f"{self.name}: expected {expected.__name__}, got {type(value).__name__} {value!r}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"{self.name}: must be finite, got {value!r}"
        if self.min_value is not None and value < self.min_value:
            return f"{self.name}: {value!r} is below the minimum {self.min_value} ({self.description})"
        if self.max_value is not None and value > self.max_value:
            return f"{self.name}: {value!r} is above the maximum {self.max_value} ({self.description})"
        if self.choices and value not in self.choices:
            return f"{self.name}: {value!r} is not one of {', '.join(self.choices)}"
        return None

    def descriptor(self) -> ParameterDescriptor:
        """The rclpy descriptor: description, range, read-only unless dynamic."""
        extra = f" (one of: {', '.join(self.choices)})" if self.choices else ""
        desc = ParameterDescriptor(description=self.description + extra, read_only=not self.dynamic)
        if isinstance(self.default, float) and (self.min_value is not None or self.max_value is not None):
            low = -math.inf if self.min_value is None else float(self.min_value)
            high = math.inf if self.max_value is None else float(self.max_value)
            desc.floating_point_range = [FloatingPointRange(from_value=low, to_value=high, step=0.0)]
        elif (
            isinstance(self.default, int)
            and not isinstance(self.default, bool)
            and self.min_value is not None
            and self.max_value is not None
        ):
            desc.integer_range = [
                IntegerRange(from_value=int(self.min_value), to_value=int(self.max_value), step=1)
            ]
        return desc


def spec_names(specs: Sequence[ParamSpec]) -> set[str]:
    """Names of the parameters in ``specs``."""
    return {s.name for s in specs}


def declare_parameters(node: Node, specs: Sequence[ParamSpec]) -> dict[str, ParamValue]:
    """Declare every parameter of ``specs`` on ``node`` and return their values by name.

    Raises :class:`ParameterError` listing every override with a wrong type or out of range.
    """
    errors: list[str] = []
    values: dict[str, ParamValue] = {}
    for spec in specs:
        try:
            value = node.declare_parameter(spec.name, spec.default, spec.descriptor()).value
        except InvalidParameterTypeException:
            wrong = _override_of(node, spec.name)
            errors.append(f"{spec.name}: expected {type(spec.default).__name__}, got {wrong!r}")
            continue
        except InvalidParameterValueException:
            wrong = _override_of(node, spec.name)
            errors.append(spec.check(wrong) or f"{spec.name}: invalid value {wrong!r}")
            continue
        problem = spec.check(value)
        if problem:
            errors.append(problem)
        else:
            values[spec.name] = value
    if errors:
        raise ParameterError(f"{node.get_name()}: invalid parameters:\n  " + "\n  ".join(errors))
    return values


def _override_of(node: Node, name: str) -> Any:
    override = node._parameter_overrides.get(name)  # the value rclpy rejected, for the message
    return None if override is None else override.value


def dynamic_parameter_guard(specs: Sequence[ParamSpec]) -> Callable[[list[Parameter]], SetParametersResult]:
    """An on-set-parameters callback: rejects unknown, read-only or invalid run-time changes with a reason."""
    by_name = {s.name: s for s in specs}

    def guard(params: list[Parameter]) -> SetParametersResult:
        for p in params:
            spec = by_name.get(p.name)
            if spec is None:
                continue  # parameters rclpy owns (use_sim_time, qos overrides)
            if not spec.dynamic:
                return SetParametersResult(successful=False, reason=f"{p.name} can only be set at start")
            problem = spec.check(p.value)
            if problem:
                return SetParametersResult(successful=False, reason=problem)
        return SetParametersResult(successful=True)

    return guard
