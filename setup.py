"""ament_python / setuptools build of tavi_perception (see README for the colcon workspace build)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "tavi_perception"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml", "LICENSE"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/rviz", glob("rviz/*.rviz")),
        (f"share/{PACKAGE}/foxglove", glob("foxglove/*.json")),
        (f"share/{PACKAGE}/models", glob("models/*.onnx") + glob("models/*.json") + glob("models/*.pt")),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="tavi_perception developers",
    maintainer_email="tavi-perception@example.org",
    description="Fluoroscopy keypoint perception and guidance for robotic TAVI (research software).",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "tavi-perception = tavi_perception.cli:main",
            "perception_node = tavi_perception.ros.perception_node:main",
            "simulator_node = tavi_perception.ros.simulator_node:main",
            "controller_node = tavi_perception.ros.controller_node:main",
        ],
    },
)
