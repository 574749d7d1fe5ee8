#!/usr/bin/env bash
# The test command: set-up (idempotent), lint and format check, then the whole pytest suite.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
echo "[test] ruff check"
.venv/bin/ruff check .
echo "[test] ruff format --check"
.venv/bin/ruff format --check .
echo "[test] pytest"
# two worker processes (pytest-xdist): most ROS tests wait on real time, so two run side by side on the
# two cores; --dist loadfile keeps a test file (and its module-scoped node sessions) in one worker, and
# test/conftest.py gives each worker its own ROS_DOMAIN_ID
exec .venv/bin/python -m pytest -n 2 --dist loadfile "$@"
