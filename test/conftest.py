"""Test-session set-up shared by every test.

Each pytest run gets its own ROS_DOMAIN_ID (derived from the process id) and keeps DDS discovery on
this host, so concurrent runs on one machine never see each other's nodes. Under pytest-xdist
(``-n 2``, scripts/test.sh) each worker process gets its own domain too: the run's id (the controlling
process) plus the worker's index, so two workers of one run never share a graph. Subprocess nodes inherit
it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... under pytest-xdist
_RUN_PID, _WORKER_INDEX = (os.getppid(), int(_WORKER[2:])) if _WORKER else (os.getpid(), 0)
os.environ["ROS_DOMAIN_ID"] = str(1 + (_RUN_PID * 8 + _WORKER_INDEX) % 100)
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"


@pytest.fixture
def perception_cine(tmp_path: Path) -> Path:
    """Six simulated 256² frames as an XA cine at 0.4 mm/px at the isocentre (0.6 mm detector spacing at the
    writer's magnification): a recording perception measures, for the tests that feed one through ROS."""
    from tavi_perception.recordings.synthetic import simulated_frames, write_xa_cine

    images, _ = simulated_frames(6, seed=1, size_px=256)
    return write_xa_cine(tmp_path / "xa.dcm", images, imager_pixel_spacing_mm=0.6)
