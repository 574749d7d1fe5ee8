"""Where this package's data files (models, config) are found: the source tree or an installed share
folder (no ROS). Each caller decides which comes first."""

from __future__ import annotations

import os
import sys
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[1]  # the repository, when run from the source tree


def installed(folder: str, name: str) -> list[Path]:
    """``share/tavi_perception/<folder>/<name>`` under every AMENT_PREFIX_PATH entry, then this Python
    prefix (a pip or colcon install into a virtual environment)."""
    prefixes = [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    prefixes.append(Path(sys.prefix))
    return [prefix / "share" / "tavi_perception" / folder / name for prefix in prefixes]


def first_file(candidates: list[Path], what: str) -> Path:
    """The first of ``candidates`` that is a file; raises ``FileNotFoundError`` naming ``what`` and the
    folders it looked in."""
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{what} not found; looked in: " + ", ".join(str(c.parent) for c in candidates))
