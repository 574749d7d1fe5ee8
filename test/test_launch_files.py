"""Launch files performed against a recording stand-in of launch/launch_ros (test/launch_standin.py).

Each launch file's ``generate_launch_description()`` runs as under ``ros2 launch`` (arguments, opaque
functions, parameter files, substitutions), and what it would start is checked: every node is a
lifecycle node of this package's console scripts, every parameter it receives is declared by the node
(its module's ``PARAMETERS``) with an accepted value, every launch argument changes what some node gets,
and the simulated loop's perception node gets the simulated case's calibration and device values. The
parameter files document every declared parameter at its default.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
from pathlib import Path

import pytest
import yaml
from launch_standin import LaunchedNode, perform

from tavi_perception.ros.messages import METRIC_FRAME_ID
from tavi_perception.ros.params import ParamSpec
from tavi_perception.runners import case_parameters
from tavi_perception.sim import ProcedureSimulator
from tavi_perception.sim.ct.simulator import simulation_case

REPO = Path(__file__).resolve().parent.parent
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))
PACKAGE = "tavi_perception"
ROS_OWNED = {"use_sim_time"}  # declared by rclpy itself on every node
NODE_CONFIGS = (
    ("perception.yaml", "perception_node", "tavi_perception.ros.perception_node"),
    ("controller.yaml", "controller_node", "tavi_perception.ros.controller_node"),
    ("simulator.yaml", "simulator_node", "tavi_perception.ros.simulator_node"),
)


@pytest.fixture(autouse=True)
def share_prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ament prefix whose share/tavi_perception is this repository (get_package_share_directory)."""
    prefix = tmp_path / "prefix"
    index = prefix / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True)
    (index / PACKAGE).touch()
    (prefix / "share" / PACKAGE).symlink_to(REPO)
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(prefix))
    return prefix


def _console_scripts() -> dict[str, str]:
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    entries = [ast.literal_eval(e) for e in value.elts]
                    return {e.split("=")[0].strip(): e.split("=")[1].strip() for e in entries}
    raise AssertionError("setup.py declares no console_scripts")


def _specs(entry_point: str) -> dict[str, ParamSpec]:
    module = importlib.import_module(entry_point.split(":")[0])
    assert hasattr(module, "PARAMETERS"), f"{module.__name__} exposes no PARAMETERS spec"
    return {s.name: s for s in module.PARAMETERS}


def _other_values(tmp_path: Path) -> dict[str, str]:
    """A non-default value for every launch argument of the package's launch files."""
    params = yaml.safe_load((REPO / "config" / "perception.yaml").read_text())
    params["perception_node"]["ros__parameters"]["inference_threads"] = 1
    params_file = tmp_path / "perception_other.yaml"
    params_file.write_text(yaml.safe_dump(params))
    return {
        "use_sim_time": "true",
        "autostart": "false",
        "seed": "3",
        "image_size": "256",
        "renderer": "ct",
        "physics": "mujoco",
        "image_topic": "/camera/image",
        "params_file": str(params_file),
    }


def _received(node: LaunchedNode) -> str:
    return repr((node.name, sorted(node.parameters.items()), sorted(node.remappings.items())))


def test_there_are_launch_files_for_perception_alone_and_the_simulated_loop() -> None:
    assert {p.name for p in LAUNCH_FILES} >= {"perception.launch.py", "simulated_loop.launch.py"}


@pytest.mark.parametrize("launch_file", LAUNCH_FILES, ids=lambda p: p.name)
def test_every_launched_node_is_a_lifecycle_node_given_only_parameters_it_declares(launch_file: Path) -> None:
    scripts = _console_scripts()
    performed = perform(launch_file)
    assert performed.nodes, f"{launch_file.name} launches no node"
    for node in performed.nodes:
        where = f"{launch_file.name}: {node.name}"
        assert node.package == PACKAGE and node.executable in scripts, where
        assert node.lifecycle, f"{where} is started as a plain node, not a LifecycleNode"
        assert node.parameters.get("autostart") is True, f"{where}: autostart by default"
        specs = _specs(scripts[node.executable])
        for key, value in node.parameters.items():
            assert key in specs or key in ROS_OWNED, f"{where}: parameter {key!r} is not declared by the node"
            if key in specs:
                assert specs[key].check(value) is None, f"{where}: {specs[key].check(value)}"


@pytest.mark.parametrize("launch_file", LAUNCH_FILES, ids=lambda p: p.name)
def test_every_launch_argument_changes_what_a_node_receives(launch_file: Path, tmp_path: Path) -> None:
    default = {_received(n) for n in perform(launch_file).nodes}
    arguments = perform(launch_file).arguments
    other = _other_values(tmp_path)
    assert arguments.keys() <= other.keys(), f"no test value for {arguments.keys() - other.keys()}"
    for name in arguments:
        changed = {_received(n) for n in perform(launch_file, **{name: other[name]}).nodes}
        assert changed != default, f"{launch_file.name}: argument {name!r} reaches no node"


@pytest.mark.parametrize(
    ("seed", "image_size", "renderer"), [(None, None, "stylised"), (3, 256, "stylised"), (3, 256, "ct")]
)
def test_simulated_loop_perception_gets_the_simulated_cases_calibration_and_device_values(
    seed: int | None, image_size: int | None, renderer: str
) -> None:
    overrides = {} if seed is None else {"seed": str(seed), "image_size": str(image_size)}
    overrides["renderer"] = renderer
    performed = perform(REPO / "launch" / "simulated_loop.launch.py", **overrides)
    simulator = performed.node("simulator_node").parameters
    perception = performed.node("perception_node")
    assert simulator["drive"] == "command"
    if seed is not None:
        assert (simulator["seed"], simulator["image_size"]) == (seed, image_size)
    assert simulator["renderer"] == renderer
    case = simulation_case(renderer, simulator["seed"])
    expected_mm_per_px = ProcedureSimulator(case, image_size=simulator["image_size"]).mm_per_px
    got = perception.parameters
    assert got["mm_per_px"] == pytest.approx(expected_mm_per_px, rel=1e-9)
    assert got["calibration_width_px"] == simulator["image_size"]
    assert got["valve_frame_height_mm"] == pytest.approx(case.devices.frame_height_mm)
    assert got["cp_cd_length_mm"] == pytest.approx(case.devices.cp_cd_closed_mm)
    assert {k: got[k] for k in case_parameters(0, 512)} == case_parameters(
        simulator["seed"], simulator["image_size"], renderer
    ), "the launch file and the runners disagree"
    assert got["target_depth_mm"] == simulator["target_depth_mm"]
    assert perception.remappings == {"image": "fluoro/image"}
    assert {n.name for n in performed.nodes} == {"simulator_node", "perception_node", "controller_node"}


@pytest.mark.parametrize(("config", "node_name", "module"), NODE_CONFIGS)
def test_every_declared_parameter_is_documented_at_its_default_in_its_yaml(
    config: str, node_name: str, module: str
) -> None:
    specs = importlib.import_module(module).PARAMETERS
    keys = yaml.safe_load((REPO / "config" / config).read_text())[node_name]["ros__parameters"]
    assert {s.name for s in specs} == set(keys), "YAML keys and declared parameters differ"
    lines = (REPO / "config" / config).read_text().splitlines()
    for spec in specs:
        index = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{spec.name}:"))
        assert lines[index - 1].strip().startswith("#"), f"{spec.name} has no comment above it in {config}"
        assert keys[spec.name] == spec.default, f"{spec.name}: the YAML value differs from the default"


def test_setup_installs_the_launch_config_and_visualisation_files() -> None:
    setup = (REPO / "setup.py").read_text()
    for pattern in ("launch/*.launch.py", "config/*.yaml", "rviz/*.rviz", "foxglove/*.json"):
        assert f'glob("{pattern}")' in setup and list(REPO.glob(pattern)), pattern


# what perception_node publishes (relative names, root namespace) and the simulator's image
VISUALISED = {"/fluoro/image", "/overlay", "/markers", "/annulus_pose", "/catheter_tip_pose"}


def test_the_rviz_config_shows_image_overlay_markers_poses_and_tf_in_the_metric_frame() -> None:
    config = yaml.safe_load((REPO / "rviz" / "tavi.rviz").read_text())["Visualization Manager"]
    assert config["Global Options"]["Fixed Frame"] == METRIC_FRAME_ID
    displays = config["Displays"]
    topics = {d["Topic"]["Value"] for d in displays if "Topic" in d}
    assert topics == VISUALISED
    classes = {d["Class"].split("/")[1] for d in displays}
    assert {"Image", "MarkerArray", "PoseWithCovariance", "TF"} <= classes


def test_the_foxglove_layout_shows_the_same_topics_in_the_metric_frame() -> None:
    layout = json.loads((REPO / "foxglove" / "tavi_layout.json").read_text())
    panels = layout["configById"]
    images = {p["imageMode"]["imageTopic"] for k, p in panels.items() if k.startswith("Image!")}
    scene = next(p for k, p in panels.items() if k.startswith("3D!"))
    assert scene["followTf"] == METRIC_FRAME_ID
    assert images | set(scene["topics"]) == VISUALISED
    placed = re.findall(r'"([A-Za-z0-9]+![a-z]+)"', json.dumps(layout["layout"]))
    assert set(placed) == set(panels), "every configured panel is placed in the layout, and only those"
