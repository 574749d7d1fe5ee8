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
exec .venv/bin/python -m pytest "$@"
