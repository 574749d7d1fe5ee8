"""A recording stand-in for ``launch`` and ``launch_ros`` (not installable from the registries here).

:func:`perform` imports a launch file with fake ``launch``, ``launch.actions``, ``launch.substitutions``
and ``launch_ros.actions`` modules in ``sys.modules``, calls its ``generate_launch_description()`` and
performs it as ``ros2 launch`` would for the parts we use: declared arguments take their defaults or the
given overrides, ``OpaqueFunction`` functions are called with the context, ``LaunchConfiguration``
resolves (an undeclared one raises), and every ``Node``/``LifecycleNode`` is recorded with its
parameters resolved the way launch_ros does it (parameter files read for the node's name or ``/**``,
substituted strings parsed as YAML). ``ament_index_python`` stays the real one; the test points
``AMENT_PREFIX_PATH`` at a prefix whose share folder is this repository.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class Context:
    """The launch context: argument values by name, and which of them were read."""

    def __init__(self, overrides: dict[str, str]) -> None:
        self.launch_configurations: dict[str, str] = {}
        self.overrides = overrides
        self.read: set[str] = set()


class LaunchConfiguration:
    def __init__(self, name: str, default: str | None = None) -> None:
        self.name = name
        self.default = default

    def perform(self, context: Context) -> str:
        context.read.add(self.name)
        if self.name in context.launch_configurations:
            return context.launch_configurations[self.name]
        if self.default is not None:
            return self.default
        raise KeyError(f"launch configuration {self.name!r} is not declared")


class DeclareLaunchArgument:
    def __init__(self, name: str, default_value: str | None = None, description: str = "", **kw: Any) -> None:
        self.name = name
        self.default_value = default_value
        self.description = description


class OpaqueFunction:
    def __init__(self, function: Any, args: list | None = None, kwargs: dict | None = None) -> None:
        self.function = function
        self.args = args or []
        self.kwargs = kwargs or {}


class LaunchDescription:
    def __init__(self, entities: list | None = None) -> None:
        self.entities = list(entities or [])


class Node:
    lifecycle = False

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


class LifecycleNode(Node):
    lifecycle = True

    def __init__(self, *, name: str, namespace: str, **kwargs: Any) -> None:  # launch_ros' signature
        super().__init__(name=name, namespace=namespace, **kwargs)


@dataclass
class LaunchedNode:
    """One node as ``ros2 launch`` would start it."""

    package: str
    executable: str
    name: str
    lifecycle: bool
    parameters: dict[str, Any] = field(default_factory=dict)
    parameter_files: list[Path] = field(default_factory=list)
    remappings: dict[str, str] = field(default_factory=dict)
    namespace: str = ""


@dataclass
class Performed:
    arguments: dict[str, DeclareLaunchArgument]
    nodes: list[LaunchedNode]
    read: set[str]  # launch arguments read while performing

    def node(self, name: str) -> LaunchedNode:
        return next(n for n in self.nodes if n.name == name)


def _text(value: Any, context: Context) -> str:
    if isinstance(value, LaunchConfiguration):
        return value.perform(context)
    if isinstance(value, list | tuple):
        return "".join(_text(v, context) for v in value)
    return str(value)


def _parameter_value(value: Any, context: Context) -> Any:
    """launch_ros: a substituted value is parsed as YAML; a Python value is taken as is."""
    if isinstance(value, LaunchConfiguration) or (isinstance(value, list) and value and not _plain(value)):
        return yaml.safe_load(_text(value, context))
    return value


def _plain(values: list) -> bool:
    return all(not isinstance(v, LaunchConfiguration) for v in values)


def _launched(node: Node, context: Context) -> LaunchedNode:
    kw = node.kwargs
    name = _text(kw["name"], context)
    out = LaunchedNode(
        package=_text(kw["package"], context),
        executable=_text(kw["executable"], context),
        name=name,
        lifecycle=node.lifecycle,
        namespace=_text(kw.get("namespace", ""), context),
    )
    for entry in kw.get("parameters", []):
        if isinstance(entry, dict):
            out.parameters.update({k: _parameter_value(v, context) for k, v in entry.items()})
            continue
        path = Path(_text(entry, context))
        data = yaml.safe_load(path.read_text())
        section = data.get(name) or data.get(f"/{name}") or data.get("/**")
        if section is None:
            raise AssertionError(f"{path} has no section for node {name!r}")
        out.parameter_files.append(path)
        out.parameters.update(section["ros__parameters"])
    for src, dst in kw.get("remappings", []):
        out.remappings[_text(src, context)] = _text(dst, context)
    return out


def _perform(entities: list, context: Context, performed: Performed) -> None:
    for entity in entities:
        if isinstance(entity, DeclareLaunchArgument):
            performed.arguments[entity.name] = entity
            value = context.overrides.get(entity.name, entity.default_value)
            if value is None:
                raise AssertionError(f"launch argument {entity.name!r} has no default and no value")
            context.launch_configurations[entity.name] = _text(value, context)
        elif isinstance(entity, OpaqueFunction):
            _perform(entity.function(context, *entity.args, **entity.kwargs) or [], context, performed)
        elif isinstance(entity, Node):
            performed.nodes.append(_launched(entity, context))
        else:
            raise AssertionError(f"the stand-in does not know {type(entity).__name__}")


def _module(name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


@contextmanager
def _standin_modules() -> Iterator[None]:
    fakes = {
        "launch": _module("launch", LaunchDescription=LaunchDescription),
        "launch.actions": _module(
            "launch.actions", DeclareLaunchArgument=DeclareLaunchArgument, OpaqueFunction=OpaqueFunction
        ),
        "launch.substitutions": _module("launch.substitutions", LaunchConfiguration=LaunchConfiguration),
        "launch_ros": _module("launch_ros"),
        "launch_ros.actions": _module("launch_ros.actions", Node=Node, LifecycleNode=LifecycleNode),
    }
    saved = {name: sys.modules.get(name) for name in fakes}
    sys.modules.update(fakes)
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def perform(launch_file: Path, **overrides: str) -> Performed:
    """Run ``launch_file``'s description against the stand-in with the given launch arguments."""
    with _standin_modules():
        spec = importlib.util.spec_from_file_location(launch_file.stem.replace(".", "_"), launch_file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        description = module.generate_launch_description()
        context = Context(overrides)
        performed = Performed({}, [], context.read)
        _perform(description.entities, context, performed)
    unknown = overrides.keys() - performed.arguments.keys()
    if unknown:
        raise AssertionError(f"{launch_file.name} declares no argument {sorted(unknown)}")
    return performed
