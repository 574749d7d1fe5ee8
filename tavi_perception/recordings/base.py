"""What every recording reader gives: frames with their times and one :class:`RecordingInfo` (no ROS).

A recording is a sequence of grey frames (uint8 or uint16, (H, W)) taken at known times, with what is
known of its scale and geometry. Readers never guess silently: a value that is not in the file and not
given by the caller is either a clear :class:`RecordingError` or a default that ``info.warnings`` names.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from tavi_perception.core.calibration import Calibration, calibration_from_parameters

# [px] width the default (uncalibrated) scale refers to: perception_node's calibration_width_px default,
# so an uncalibrated recording gets the scale the node would use
DEFAULT_CALIBRATION_WIDTH_PX = 512
DEFAULT_FPS = 15.0  # [1/s] standard fluoroscopy rate, used only when neither the file nor the caller says


class RecordingError(Exception):
    """A recording that cannot be read; the message is one line meant for the user."""


@dataclass(frozen=True)
class Frame:
    """One grey frame of a recording."""

    index: int  # 0-based position in the recording
    t_s: float  # [s] acquisition time since the first frame
    image: np.ndarray  # (H, W) uint8 or uint16
    metadata: Mapping[str, float] = field(default_factory=dict)  # per-frame values (e.g. angle increments)


@dataclass(frozen=True)
class RecordingInfo:
    """What is known of a recording before its frames are read."""

    path: str
    kind: str  # "dicom" (one file, any frame count), "dicom-series" (a folder), "video", "images"
    frame_count: int  # frames the reader will yield (a video's container count may be approximate)
    width_px: int
    height_px: int
    fps: float  # [1/s] acquisition rate (mean over the recording when the frame times vary)
    fps_source: str  # where the rate came from, e.g. "FrameTime 66.67 ms", "option --fps", "default"
    mm_per_px: float | None  # [mm/px] at the isocentre; None = unknown
    calibration_source: str  # where mm_per_px came from, or why it is unknown
    primary_angle_deg: float | None = None  # (0018,1510) PositionerPrimaryAngle: + = LAO
    secondary_angle_deg: float | None = None  # (0018,1511) PositionerSecondaryAngle: + = cranial
    modality: str | None = None  # DICOM Modality (XA, RF, ...)
    encoding: str = ""  # transfer syntax, codec or file format
    bits_stored: int = 8  # significant bits of the frames yielded
    warnings: tuple[str, ...] = ()  # defaults assumed, values ignored

    def calibration(self) -> Calibration:
        """The pipeline's calibration: this scale when known, else the typical C-arm default, marked
        uncalibrated (every guidance then says ``calibrated: false``).

        A known scale is per pixel of the recording, so it holds for any crop of it (width 0): a region of
        interest cuts pixels out, it does not resample them."""
        if self.mm_per_px is not None:
            return Calibration(self.mm_per_px, 0, True, self.calibration_source)
        return calibration_from_parameters(0.0, 0.0, 0.0, 0.0, DEFAULT_CALIBRATION_WIDTH_PX)

    def as_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "kind": self.kind,
            "frames": self.frame_count,
            "width_px": self.width_px,
            "height_px": self.height_px,
            "fps": self.fps,
            "fps_source": self.fps_source,
            "mm_per_px": self.mm_per_px,
            "calibration_source": self.calibration_source,
            "primary_angle_deg": self.primary_angle_deg,
            "secondary_angle_deg": self.secondary_angle_deg,
            "modality": self.modality,
            "encoding": self.encoding,
            "bits_stored": self.bits_stored,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class Overrides:
    """Values the caller gives, which win over the file's (``--mm-per-px``, ``--fps``)."""

    mm_per_px: float | None = None  # [mm/px] at the isocentre
    fps: float | None = None  # [1/s]; frame i is then at i / fps

    def __post_init__(self) -> None:
        for name in ("mm_per_px", "fps"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise RecordingError(f"--{name.replace('_', '-')} must be a positive number, got {value}")


class Recording(ABC):
    """Frames of one recording, read lazily in order (each pass opens what it reads)."""

    info: RecordingInfo

    @abstractmethod
    def __iter__(self) -> Iterator[Frame]:
        """The frames in acquisition order (a fresh pass each call)."""

    def __len__(self) -> int:
        return self.info.frame_count


def times_from_rate(count: int, fps: float) -> np.ndarray:
    """Frame times [s] of ``count`` frames at a constant ``fps``."""
    return np.arange(count, dtype=float) / fps


def apply_overrides(
    info: RecordingInfo, times_s: np.ndarray, overrides: Overrides
) -> tuple[RecordingInfo, np.ndarray]:
    """The info and frame times with the caller's values in place of the file's."""
    if overrides.mm_per_px is not None:
        source = f"option --mm-per-px {overrides.mm_per_px:g}"
        if info.mm_per_px is not None:
            source += f" (overrides {info.calibration_source})"
        warnings = tuple(w for w in info.warnings if not w.startswith("uncalibrated"))
        info = replace(info, mm_per_px=overrides.mm_per_px, calibration_source=source, warnings=warnings)
    if overrides.fps is not None:
        source = f"option --fps {overrides.fps:g}"
        if not info.fps_source.startswith("default"):
            source += f" (overrides {info.fps_source})"
        warnings = tuple(w for w in info.warnings if not w.startswith("no frame rate"))
        info = replace(info, fps=overrides.fps, fps_source=source, warnings=warnings)
        times_s = times_from_rate(len(times_s), overrides.fps)
    return info, times_s


def default_rate(what: str, notes: list[str], single_frame: bool = False) -> tuple[float, str]:
    """The rate [1/s] and its source when neither ``what`` nor the caller gives one: ``DEFAULT_FPS``,
    with a warning in ``notes`` (none for a single frame, whose time is 0 at any rate)."""
    if single_frame:
        return DEFAULT_FPS, "default (single frame)"
    notes.append(f"no frame rate in {what}: assuming {DEFAULT_FPS:g} fps; give --fps")
    return DEFAULT_FPS, f"default {DEFAULT_FPS:g} fps"


def unscaled_info(
    path: Path,
    kind: str,
    first: np.ndarray,
    frame_count: int,
    rate: tuple[float, str],
    *,
    uncalibrated: str,
    encoding: str,
    notes: list[str],
    overrides: Overrides | None,
) -> tuple[RecordingInfo, np.ndarray]:
    """The info and frame times of a recording whose files carry no scale (images, videos): the size and
    bits of its ``first`` frame, a constant ``rate`` (fps, source), ``uncalibrated`` (why there is no
    scale) as the calibration source and first warning, then ``notes``; the caller's values win."""
    fps, fps_source = rate
    info = RecordingInfo(
        path=str(path),
        kind=kind,
        frame_count=frame_count,
        width_px=int(first.shape[1]),
        height_px=int(first.shape[0]),
        fps=fps,
        fps_source=fps_source,
        mm_per_px=None,
        calibration_source=uncalibrated,
        encoding=encoding,
        bits_stored=first.dtype.itemsize * 8,
        warnings=(uncalibrated, *notes),
    )
    return apply_overrides(info, times_from_rate(frame_count, fps), overrides or Overrides())


def check_grey(image: np.ndarray, where: str) -> np.ndarray:
    """``image`` as a (H, W) uint8/uint16 frame; raises :class:`RecordingError` for other layouts."""
    if image.dtype not in (np.uint8, np.uint16):
        raise RecordingError(f"{where}: pixel type {image.dtype} not supported (8 or 16 bit grey only)")
    if image.ndim != 2:
        raise RecordingError(f"{where}: expected a grey image, got shape {image.shape}")
    return image
