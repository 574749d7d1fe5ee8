"""Perception alone: perception_node on a camera (or bag) image topic, parameters from config/perception.yaml.

ros2 launch tavi_perception perception.launch.py image_topic:=/fluoro/image
ros2 launch tavi_perception perception.launch.py use_sim_time:=true   # with `bag play --clock`
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
            DeclareLaunchArgument(
                "image_topic", default_value="/fluoro/image", description="input image topic"
            ),
            DeclareLaunchArgument(
                "params_file",
                default_value=_config("perception.yaml"),
                description="perception_node parameters",
            ),
            DeclareLaunchArgument("use_sim_time", default_value="false", description="follow /clock"),
            Node(
                package="tavi_perception",
                executable="perception_node",
                name="perception_node",
                output="screen",
                parameters=[
                    LaunchConfiguration("params_file"),
                    {"use_sim_time": LaunchConfiguration("use_sim_time")},
                ],
                remappings=[("image", LaunchConfiguration("image_topic"))],
            ),
        ]
    )
