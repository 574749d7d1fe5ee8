"""Image files: a folder of PNG/TIFF (8 or 16 bit, grey or colour) frames, a single image, or a multi-page
TIFF stack (one frame per page), all read by OpenCV (no ROS).

Frames are ordered by file name with numbers compared as numbers (``frame2`` before ``frame10``).
Neither the rate nor the scale is in the files: ``--fps`` (else 15 fps with a warning) and
``--mm-per-px`` (else uncalibrated) give them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from tavi_perception.recordings.base import (
    Frame,
    Overrides,
    Recording,
    RecordingError,
    RecordingInfo,
    check_grey,
    default_rate,
    unscaled_info,
)

IMAGE_SUFFIXES = frozenset({".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp"})


def natural_key(path: Path) -> tuple:
    """Sort key of a file name with its digit runs compared as numbers."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name))


def read_grey(path: Path) -> np.ndarray:
    """One image file as (H, W) uint8/uint16 grey; raises :class:`RecordingError` when unreadable."""
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise RecordingError(f"{path}: not an image OpenCV can decode")
    return _grey(image, str(path))


def _grey(image: np.ndarray, where: str) -> np.ndarray:
    if image.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        image = cv2.cvtColor(image, code) if image.shape[2] in (3, 4) else image[..., 0]
    return check_grey(image, where)


def _images_info(
    path: Path, first: np.ndarray, count: int, what: str, encoding: str, overrides: Overrides | None
) -> tuple[RecordingInfo, np.ndarray]:
    """Info and frame times of ``count`` frames of ``what``: image files carry neither a scale nor a rate
    (a single frame needs none)."""
    notes: list[str] = []
    rate = default_rate(what, notes, single_frame=count == 1)
    return unscaled_info(
        path,
        "images",
        first,
        count,
        rate,
        uncalibrated="uncalibrated: image files carry no scale; give --mm-per-px",
        encoding=encoding,
        notes=notes,
        overrides=overrides,
    )


class ImageFolderRecording(Recording):
    """Image files, one frame each, in natural name order."""

    def __init__(self, path: Path, files: list[Path], overrides: Overrides | None = None) -> None:
        self.path = path
        self._files = sorted(files, key=natural_key)
        first = read_grey(self._files[0])
        encoding = f"{self._files[0].suffix.lstrip('.').upper()} {first.dtype.itemsize * 8} bit"
        self.info, self._times_s = _images_info(
            path, first, len(self._files), "image files", encoding, overrides
        )

    def __iter__(self) -> Iterator[Frame]:
        shape = (self.info.height_px, self.info.width_px)
        for index, path in enumerate(self._files):
            image = read_grey(path)
            if image.shape != shape:
                raise RecordingError(
                    f"{path}: size {image.shape[::-1]} differs from the first image's {shape[::-1]}"
                )
            yield Frame(index, float(self._times_s[index]), image)


def tiff_pages(path: Path) -> int:
    """The number of pages of a TIFF file (0 when OpenCV cannot read it)."""
    try:
        return int(cv2.imcount(str(path)))
    except cv2.error:
        return 0


class TiffStackRecording(Recording):
    """A multi-page TIFF, one frame per page, read a page at a time."""

    def __init__(self, path: Path, pages: int, overrides: Overrides | None = None) -> None:
        self.path = path
        first = self._page(0)
        encoding = f"TIFF stack {first.dtype.itemsize * 8} bit"
        self.info, self._times_s = _images_info(path, first, pages, "the TIFF stack", encoding, overrides)

    def _page(self, index: int) -> np.ndarray:
        ok, pages = cv2.imreadmulti(str(self.path), start=index, count=1, flags=cv2.IMREAD_UNCHANGED)
        if not ok or not pages:
            raise RecordingError(f"{self.path}: page {index} cannot be decoded")
        return _grey(pages[0], f"{self.path} page {index}")

    def __iter__(self) -> Iterator[Frame]:
        shape = (self.info.height_px, self.info.width_px)
        for index in range(self.info.frame_count):
            image = self._page(index)
            if image.shape != shape:
                raise RecordingError(f"{self.path}: page {index} differs in size from the first page")
            yield Frame(index, float(self._times_s[index]), image)
