"""Packaging agrees with itself: licence, package.xml dependencies, requirements.txt pins and imports."""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("tavi_perception", "test", "bench", "scripts", "launch")

# rosdep keys of package.xml -> the PyPI distribution requirements.txt pins for them
ROSDEP_TO_PIP = {
    "python3-numpy": "numpy",
    "python3-opencv": "opencv-python-headless",
    "python3-scipy": "scipy",
    "python3-matplotlib": "matplotlib",
    "python3-pil": "pillow",
    "python3-tqdm": "tqdm",
    "python3-yaml": "pyyaml",
    "python3-pytest": "pytest",
}
# ROS packages without a PyPI wheel: built here (tavi_msgs) or used only when importable (documented
# in package.xml and the modules that import them)
ROS_WITHOUT_WHEEL = {"tavi_msgs", "tf2_msgs", "cv_bridge", "launch", "launch_ros"}
# pins no source imports: the tavi_msgs build (scripts/setup.sh), the DDS implementation rclpy loads,
# torch's ONNX exporter, nibabel's own dependency, pydicom's decoder plugins, the linter and pytest's
# two-process runner (scripts/test.sh)
NOT_IMPORTED = re.compile(
    r"^(catkin-pkg|ros-ament-(package|cmake.*)|ros-rosidl-.*|ros-fastrtps-cmake-module|"
    r"ros-python-cmake-module|ros-rmw-fastrtps-cpp|onnxscript|importlib-resources|pylibjpeg.*|ruff|"
    r"pytest-xdist|execnet|mujoco-core|mujoco-studio|glfw|pyopengl|websockets)$"
)
IMPORT_NAME = {"opencv-python-headless": "cv2", "pillow": "PIL", "pyyaml": "yaml"}


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[re.sub(r"\[.*\]", "", name).lower()] = version
    return pins


def _depends() -> list[str]:
    root = ET.parse(REPO / "package.xml").getroot()
    return [e.text for e in root if e.tag.endswith("depend") and e.tag != "buildtool_depend"]


def _imported_modules() -> set[str]:
    modules = set()
    for folder in SOURCES:
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    modules |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    modules.add(node.module.split(".")[0])
    return modules


def test_the_licence_is_the_full_apache_2_text_and_every_manifest_says_so() -> None:
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text and len(text) > 10_000
    license_tag = ET.parse(REPO / "package.xml").getroot().find("license")
    assert license_tag is not None and license_tag.text == "Apache-2.0"
    assert 'license="Apache-2.0"' in (REPO / "setup.py").read_text()


def test_every_package_xml_dependency_is_pinned_in_requirements() -> None:
    pins = _pins()
    for key in _depends():
        if key.startswith("python3-"):
            assert key in ROSDEP_TO_PIP, f"{key}: no known rosdep key (pip-only packages belong in a comment)"
            assert ROSDEP_TO_PIP[key] in pins, f"{key}: {ROSDEP_TO_PIP[key]} is not pinned"
        elif key not in ROS_WITHOUT_WHEEL and key != "ament_python":
            assert "ros-" + key.replace("_", "-") in pins, f"{key}: its ROS wheel is not pinned"


def test_every_pinned_requirement_is_imported_or_a_documented_build_dependency() -> None:
    imported = _imported_modules()
    for name in _pins():
        if NOT_IMPORTED.match(name):
            continue
        module = IMPORT_NAME.get(name, name.removeprefix("ros-").replace("-", "_"))
        assert module in imported, f"requirements.txt pins {name} but nothing imports {module}"


def test_the_onnxruntime_build_is_the_same_in_package_xml_and_requirements() -> None:
    assert "onnxruntime" in _pins() and "onnxruntime-gpu" not in _pins()
    assert not any("onnxruntime" in key for key in _depends()), "onnxruntime has no rosdep key"
    assert "onnxruntime-gpu" in (REPO / "requirements.txt").read_text()  # the documented GPU alternative
