"""Video files through OpenCV's FFmpeg backend (no ROS): frames as 8-bit grey.

The rate is the container's (``CAP_PROP_FPS``) unless ``--fps`` is given; frame ``i`` is at ``i / fps``
(variable-rate containers are read at their nominal rate). A video carries no scale: without
``--mm-per-px`` the recording is uncalibrated.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from tavi_perception.recordings.base import (
    Frame,
    Overrides,
    Recording,
    RecordingError,
    default_rate,
    unscaled_info,
)

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv"})


def _grey(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return frame
    code = cv2.COLOR_BGRA2GRAY if frame.shape[2] == 4 else cv2.COLOR_BGR2GRAY
    return cv2.cvtColor(frame, code)


class VideoRecording(Recording):
    """A video file decoded by OpenCV (FFmpeg)."""

    def __init__(self, path: Path, overrides: Overrides | None = None) -> None:
        self.path = path
        capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        try:
            if not capture.isOpened():
                raise RecordingError(f"{path}: not a video OpenCV/FFmpeg can open")
            ok, first = capture.read()
            if not ok or first is None:
                raise RecordingError(f"{path}: no decodable frame in the video")
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            fps = float(capture.get(cv2.CAP_PROP_FPS))
            codec = int(capture.get(cv2.CAP_PROP_FOURCC))
        finally:
            capture.release()
        notes: list[str] = []
        if math.isfinite(fps) and 0 < fps < 1000:
            rate = fps, f"video container {fps:g} fps"
        else:
            rate = default_rate("the video container", notes)
        fourcc = "".join(chr((codec >> 8 * i) & 0xFF) for i in range(4)).strip("\x00 ")
        self.info, _ = unscaled_info(
            path,
            "video",
            first,
            max(count, 1),  # the container's estimate (0 when it does not say): the reader reads to the end
            rate,
            uncalibrated="uncalibrated: a video file carries no scale; give --mm-per-px",
            encoding=f"video {fourcc or 'unknown codec'}",
            notes=notes,
            overrides=overrides,
        )

    def __iter__(self) -> Iterator[Frame]:
        capture = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        try:
            index = 0
            while True:
                ok, frame = capture.read()
                if not ok or frame is None:
                    break
                yield Frame(index, index / self.info.fps, _grey(frame))
                index += 1
        finally:
            capture.release()
