"""The full simulated loop: simulator_node -> perception_node -> controller_node -> simulator_node.

The simulator publishes fluoro/image and its ground truth, perception turns frames into guidance, the
reference controller answers with manipulator/command, which drives the simulated delivery system
(``drive: command``). perception_node gets the simulated case's C-arm calibration and device values
(mm_per_px at this image size, valve frame height, closed CP-CD length) from
:func:`tavi_perception.runners.case_parameters`, the same function `tavi-perception demo` and `loop` use.

All three are lifecycle nodes started with their own ``autostart`` parameter (the ``autostart``
argument): they configure and activate themselves, exactly as under ``ros2 run`` and the runners.
``autostart:=false`` leaves them unconfigured for a lifecycle manager.

    ros2 launch tavi_perception simulated_loop.launch.py seed:=3 image_size:=512 renderer:=ct physics:=mujoco
"""

import os
from collections.abc import Sequence

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode

from launch import LaunchDescription
from tavi_perception.runners import case_parameters


def _config(name: str) -> str:
    return os.path.join(get_package_share_directory("tavi_perception"), "config", name)


def _nodes(context: object) -> list[LifecycleNode]:
    """The three nodes, for the case the ``seed``, ``image_size`` and ``renderer`` arguments name, with
    the manipulator model of ``physics``."""
    seed = int(LaunchConfiguration("seed").perform(context))
    image_size = int(LaunchConfiguration("image_size").perform(context))
    renderer = LaunchConfiguration("renderer").perform(context)
    perception = case_parameters(seed, image_size, renderer)
    common = {
        "use_sim_time": LaunchConfiguration("use_sim_time"),
        "autostart": LaunchConfiguration("autostart"),
    }
    simulator = {
        "drive": "command",
        "seed": seed,
        "image_size": image_size,
        "renderer": renderer,
        "physics": LaunchConfiguration("physics").perform(context),
    }
    return [
        _node("simulator_node", {**simulator, **common}),
        _node("perception_node", {**perception, **common}, remappings=[("image", "fluoro/image")]),
        _node("controller_node", common),
    ]


def _node(
    executable: str, parameters: dict[str, object], remappings: Sequence[tuple[str, str]] = ()
) -> LifecycleNode:
    """The lifecycle node ``executable`` under its own name, with its documented config file
    (config/<executable without _node>.yaml) and then ``parameters``."""
    return LifecycleNode(
        package="tavi_perception",
        executable=executable,
        name=executable,
        namespace="",
        output="screen",
        parameters=[_config(f"{executable.removesuffix('_node')}.yaml"), parameters],
        remappings=remappings,
    )


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument("use_sim_time", default_value="false", description="follow /clock"),
            DeclareLaunchArgument(
                "autostart",
                default_value="true",
                description="nodes configure and activate themselves (false: wait for a lifecycle manager)",
            ),
            DeclareLaunchArgument("seed", default_value="0", description="simulated case seed"),
            DeclareLaunchArgument("image_size", default_value="512", description="[px] square image side"),
            DeclareLaunchArgument(
                "renderer", default_value="stylised", description="X-ray renderer: stylised or ct (the CT)"
            ),
            DeclareLaunchArgument(
                "physics",
                default_value="kinematic",
                description="manipulator model: kinematic or mujoco (the delivery system's physics)",
            ),
            OpaqueFunction(function=_nodes),
        ]
    )
