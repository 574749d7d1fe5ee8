"""Launch files and parameter files, checked statically (launch_ros is not installable here).

Each launch file is parsed (AST, never executed): every Node names an executable of setup.py's
console_scripts in this package, every parameter file exists and holds the node's name, and every
parameter key (YAML or inline dict) is declared by the node's PARAMETERS spec with the same type and
an accepted value. Every declared parameter is documented (a comment above its key) in the node's YAML.
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tavi_perception.ros.params import ParamSpec

REPO = Path(__file__).resolve().parent.parent
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))
PACKAGE = "tavi_perception"
ROS_OWNED = {"use_sim_time"}  # declared by rclpy itself on every node


def _console_scripts() -> dict[str, str]:
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    entries = [ast.literal_eval(e) for e in value.elts]
                    return {e.split("=")[0].strip(): e.split("=")[1].strip() for e in entries}
    raise AssertionError("setup.py declares no console_scripts")


@dataclass
class LaunchedNode:
    executable: str
    package: str
    name: str
    param_files: list[str] = field(default_factory=list)  # config file names
    inline_keys: list[str] = field(default_factory=list)
    line: int = 0


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _call_name(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        func = node.func
        return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    return ""


def _parse_launch(path: Path) -> tuple[list[LaunchedNode], dict[str, ast.expr | None], set[str]]:
    """Nodes, declared launch arguments (name -> default) and LaunchConfiguration names used."""
    tree = ast.parse(path.read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
    arguments: dict[str, ast.expr | None] = {}
    used: set[str] = set()
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    for call in calls:
        if _call_name(call) == "DeclareLaunchArgument":
            arguments[ast.literal_eval(call.args[0])] = _kw(call, "default_value")
        elif _call_name(call) == "LaunchConfiguration":
            used.add(ast.literal_eval(call.args[0]))
    nodes = []
    for call in calls:
        if _call_name(call) not in {"Node", "LifecycleNode"}:
            continue
        launched = LaunchedNode(
            executable=ast.literal_eval(_kw(call, "executable")),
            package=ast.literal_eval(_kw(call, "package")),
            name=ast.literal_eval(_kw(call, "name")),
            line=call.lineno,
        )
        params = _kw(call, "parameters")
        for item in params.elts if isinstance(params, ast.List) else []:
            if _call_name(item) == "LaunchConfiguration":
                item = arguments.get(ast.literal_eval(item.args[0]))
            if _call_name(item) == "_config":
                launched.param_files.append(ast.literal_eval(item.args[0]))
            elif isinstance(item, ast.Dict):
                launched.inline_keys += [ast.literal_eval(k) for k in item.keys]
            else:
                raise AssertionError(
                    f"{path.name}:{call.lineno}: cannot resolve parameters entry {ast.dump(item)}"
                )
        nodes.append(launched)
    return nodes, arguments, used


def _specs(entry_point: str) -> dict[str, ParamSpec]:
    module = importlib.import_module(entry_point.split(":")[0])
    assert hasattr(module, "PARAMETERS"), (
        f"{module.__name__} exposes no PARAMETERS spec (docs/ARCHITECTURE.md)"
    )
    return {s.name: s for s in module.PARAMETERS}


def _yaml_parameters(config: str, node_name: str) -> dict:
    data = yaml.safe_load((REPO / "config" / config).read_text())
    section = data.get(node_name) or data.get("/**")
    assert section is not None, f"config/{config} has no section for node {node_name!r}"
    return section["ros__parameters"]


def test_there_are_launch_files_for_perception_alone_and_the_simulated_loop() -> None:
    names = {p.name for p in LAUNCH_FILES}
    assert {"perception.launch.py", "simulated_loop.launch.py"} <= names


@pytest.mark.parametrize("launch_file", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_names_existing_executables_files_and_declared_parameters(launch_file: Path) -> None:
    scripts = _console_scripts()
    nodes, arguments, used = _parse_launch(launch_file)
    assert nodes, f"{launch_file.name} launches no node"
    assert used <= arguments.keys(), f"undeclared launch arguments: {used - arguments.keys()}"
    for node in nodes:
        where = f"{launch_file.name}:{node.line} ({node.executable})"
        assert node.package == PACKAGE, where
        assert node.executable in scripts, f"{where}: not a console script of setup.py"
        specs = _specs(scripts[node.executable])
        for key in node.inline_keys:
            assert key in specs or key in ROS_OWNED, f"{where}: inline parameter {key!r} not declared"
        for config in node.param_files:
            assert (REPO / "config" / config).is_file(), f"{where}: config/{config} does not exist"
            for key, value in _yaml_parameters(config, node.name).items():
                assert key in specs or key in ROS_OWNED, f"{where}: config/{config} key {key!r} not declared"
                if key in specs:
                    problem = specs[key].check(value)
                    assert problem is None, f"{where}: config/{config}: {problem}"


def test_setup_installs_the_launch_and_config_files() -> None:
    setup = (REPO / "setup.py").read_text()
    assert 'glob("launch/*.launch.py")' in setup
    assert 'glob("config/*.yaml")' in setup


@pytest.mark.parametrize(
    ("config", "node_name", "module"),
    [
        ("perception.yaml", "perception_node", "tavi_perception.ros.perception_node"),
        ("controller.yaml", "controller_node", "tavi_perception.ros.controller_node"),
    ],
)
def test_every_declared_parameter_is_documented_in_its_yaml(config: str, node_name: str, module: str) -> None:
    specs = importlib.import_module(module).PARAMETERS
    keys = _yaml_parameters(config, node_name)
    assert {s.name for s in specs} == set(keys), "YAML keys and declared parameters differ"
    lines = (REPO / "config" / config).read_text().splitlines()
    for spec in specs:
        index = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{spec.name}:"))
        assert lines[index - 1].strip().startswith("#"), (
            f"{spec.name} has no comment above it in config/{config}"
        )
        assert keys[spec.name] == spec.default, f"{spec.name}: the YAML value differs from the default"


def test_simulated_loop_calibration_matches_the_simulators_default_case() -> None:
    from tavi_perception.sim import ProcedureSimulator, sample_case

    _, arguments, _ = _parse_launch(REPO / "launch" / "simulated_loop.launch.py")
    sim_params = _yaml_parameters("simulator.yaml", "simulator_node")
    case = sample_case(sim_params["seed"])
    expected = ProcedureSimulator(case, image_size=sim_params["image_size"]).mm_per_px
    assert float(ast.literal_eval(arguments["mm_per_px"])) == pytest.approx(expected, abs=5e-4)
