"""The full simulated loop: simulator_node -> perception_node -> controller_node -> simulator_node.

The simulator publishes fluoro/image and its ground truth, perception turns frames into guidance, the
reference controller answers with manipulator/command, which drives the simulated delivery system
(``drive: command``). perception_node needs the C-arm calibration of the simulated case, as it would
from the DICOM header: ``mm_per_px`` defaults to that of case seed 0 at 512² (simulator.yaml's
defaults); `tavi-perception demo` computes it for any seed.

    ros2 launch tavi_perception simulated_loop.launch.py
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription


def _config(name: str) -> str:
    return os.path.join(get_package_share_directory("tavi_perception"), "config", name)


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument("use_sim_time", default_value="false", description="follow /clock"),
            DeclareLaunchArgument(
                "mm_per_px", default_value="0.312", description="[mm/px] calibration of the simulated case"
            ),
            Node(
                package="tavi_perception",
                executable="simulator_node",
                name="simulator_node",
                output="screen",
                parameters=[
                    _config("simulator.yaml"),
                    {"drive": "command", "use_sim_time": LaunchConfiguration("use_sim_time")},
                ],
            ),
            Node(
                package="tavi_perception",
                executable="perception_node",
                name="perception_node",
                output="screen",
                parameters=[
                    _config("perception.yaml"),
                    {"use_sim_time": LaunchConfiguration("use_sim_time")},
                ],
                remappings=[("image", "fluoro/image")],
            ),
            Node(
                package="tavi_perception",
                executable="controller_node",
                name="controller_node",
                output="screen",
                parameters=[
                    _config("controller.yaml"),
                    {"use_sim_time": LaunchConfiguration("use_sim_time")},
                ],
            ),
        ]
    )
