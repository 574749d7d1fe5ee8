"""The full simulated loop: simulator_node -> perception_node -> controller_node -> simulator_node.

The simulator publishes fluoro/image and its ground truth, perception turns frames into guidance, the
reference controller answers with manipulator/command, which drives the simulated delivery system
(``drive: command``). perception_node gets the simulated case's C-arm calibration and device values
(mm_per_px at this image size, valve frame height, closed CP-CD length) from
:func:`tavi_perception.runners.case_parameters`, the same function `tavi-perception demo` and `loop` use.

All three are lifecycle nodes started with their own ``autostart`` parameter (the ``autostart``
argument): they configure and activate themselves, exactly as under ``ros2 run`` and the runners.
``autostart:=false`` leaves them unconfigured for a lifecycle manager.

    ros2 launch tavi_perception simulated_loop.launch.py seed:=3 image_size:=512
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode

from launch import LaunchDescription
from tavi_perception.runners import case_parameters


def _config(name: str) -> str:
    return os.path.join(get_package_share_directory("tavi_perception"), "config", name)


def _nodes(context: object) -> list[LifecycleNode]:
    """The three nodes, for the case the ``seed`` and ``image_size`` arguments name."""
    seed = int(LaunchConfiguration("seed").perform(context))
    image_size = int(LaunchConfiguration("image_size").perform(context))
    common = {
        "use_sim_time": LaunchConfiguration("use_sim_time"),
        "autostart": LaunchConfiguration("autostart"),
    }
    simulator = {"drive": "command", "seed": seed, "image_size": image_size}
    return [
        LifecycleNode(
            package="tavi_perception",
            executable="simulator_node",
            name="simulator_node",
            namespace="",
            output="screen",
            parameters=[_config("simulator.yaml"), {**simulator, **common}],
        ),
        LifecycleNode(
            package="tavi_perception",
            executable="perception_node",
            name="perception_node",
            namespace="",
            output="screen",
            parameters=[_config("perception.yaml"), {**case_parameters(seed, image_size), **common}],
            remappings=[("image", "fluoro/image")],
        ),
        LifecycleNode(
            package="tavi_perception",
            executable="controller_node",
            name="controller_node",
            namespace="",
            output="screen",
            parameters=[_config("controller.yaml"), common],
        ),
    ]


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
            OpaqueFunction(function=_nodes),
        ]
    )
