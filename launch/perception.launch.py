"""Perception alone: perception_node on a camera (or bag) image topic, parameters from config/perception.yaml.

perception_node is a lifecycle node started with its own ``autostart`` parameter (the ``autostart``
argument): it configures and activates itself, as under ``ros2 run``; ``autostart:=false`` leaves it
unconfigured for a lifecycle manager.

ros2 launch tavi_perception perception.launch.py image_topic:=/fluoro/image
ros2 launch tavi_perception perception.launch.py use_sim_time:=true   # with `bag play --clock`
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode

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
            DeclareLaunchArgument(
                "autostart",
                default_value="true",
                description="configure and activate at start (false: wait for a lifecycle manager)",
            ),
            LifecycleNode(
                package="tavi_perception",
                executable="perception_node",
                name="perception_node",
                namespace="",
                output="screen",
                parameters=[
                    LaunchConfiguration("params_file"),
                    {
                        "use_sim_time": LaunchConfiguration("use_sim_time"),
                        "autostart": LaunchConfiguration("autostart"),
                    },
                ],
                remappings=[("image", LaunchConfiguration("image_topic"))],
            ),
        ]
    )
