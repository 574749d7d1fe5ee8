"""Real recordings in, without ROS: DICOM cine and series, video files, image folders.

``open_recording(path, Overrides(mm_per_px=..., fps=...))`` picks the reader from what ``path`` is (a
DICOM file or folder of them, a video, a folder of images, an image or a multi-page TIFF) and
returns a :class:`Recording`: an iterable of :class:`Frame` (``index``, ``t_s``, ``image`` (H, W)
uint8/uint16 grey, per-frame ``metadata``) with a :class:`RecordingInfo` (rate, scale at the isocentre
and where each came from, C-arm angles, size, frame count, warnings). Every failure to read is a
:class:`RecordingError` with a one-line message.
"""

from __future__ import annotations

from pathlib import Path

from tavi_perception.recordings.base import (
    DEFAULT_FPS,
    Frame,
    Overrides,
    Recording,
    RecordingError,
    RecordingInfo,
)
from tavi_perception.recordings.dicom import DicomRecording, DicomSeriesRecording, is_dicom_file
from tavi_perception.recordings.folder import (
    IMAGE_SUFFIXES,
    ImageFolderRecording,
    TiffStackRecording,
    tiff_pages,
)
from tavi_perception.recordings.video import VIDEO_SUFFIXES, VideoRecording

__all__ = [
    "DEFAULT_FPS",
    "Frame",
    "Overrides",
    "Recording",
    "RecordingError",
    "RecordingInfo",
    "open_recording",
]


def _is_dicom_name(path: Path) -> bool:
    return path.suffix.lower() in {".dcm", ".dicom"} or is_dicom_file(path)


def open_recording(path: Path | str, overrides: Overrides | None = None) -> Recording:
    """The reader for ``path``: a DICOM file, a folder of DICOM files or of images, a video or an image.

    Raises :class:`RecordingError` (one-line message) for anything that cannot be read.
    """
    path = Path(path)
    overrides = overrides or Overrides()
    if not path.exists():
        raise RecordingError(f"{path}: no such file or folder")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        dicom = [p for p in files if _is_dicom_name(p)]
        if dicom:
            if len(dicom) == 1:
                return DicomRecording(dicom[0], overrides)
            return DicomSeriesRecording(path, dicom, overrides)
        images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        if images:
            return ImageFolderRecording(path, images, overrides)
        raise RecordingError(f"{path}: no DICOM or image (PNG, TIFF, JPEG) files in the folder")
    suffix = path.suffix.lower()
    if suffix in {".tif", ".tiff"} and tiff_pages(path) > 1:
        return TiffStackRecording(path, tiff_pages(path), overrides)
    if suffix in IMAGE_SUFFIXES:
        return ImageFolderRecording(path, [path], overrides)
    if suffix in VIDEO_SUFFIXES:
        return VideoRecording(path, overrides)
    if _is_dicom_name(path) or suffix == "":
        return DicomRecording(path, overrides)
    raise RecordingError(
        f"{path}: unknown kind of file (expected DICOM, a video {sorted(VIDEO_SUFFIXES)} or an image)"
    )
