"""Test-session set-up shared by every test.

Each pytest run gets its own ROS_DOMAIN_ID (derived from the process id) and keeps DDS discovery on
this host, so concurrent runs on one machine never see each other's nodes. Subprocess nodes inherit it.
"""

from __future__ import annotations

import os

os.environ["ROS_DOMAIN_ID"] = str(1 + os.getpid() % 100)
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
