"""DICOM cine (XA, RF, any grey multi-frame image) and single-frame series, through pydicom (no ROS).

Pixels: decoded by pydicom with the plugins installed for the transfer syntax (uncompressed, RLE;
JPEG baseline/extended/lossless, JPEG-LS and JPEG 2000 through pylibjpeg-libjpeg/-openjpeg/-rle, all
pinned in requirements.txt). Then, as a viewer shows them: the Modality LUT (rescale or LUT sequence),
the VOI LUT (window or LUT sequence; the first one when several are given), MONOCHROME1 inverted so
that more attenuation is darker, as in MONOCHROME2. The three are folded into one lookup table over
every stored value (``BitsStored``), built once, so a frame costs one table look-up. The output keeps
the dynamic range: integer results within 0..65535 are kept as they are (uint8 when they fit 8 stored
bits, else uint16); other results (negative or fractional) are mapped linearly onto 0..65535 (0..255
for 8-bit data).

Times: ``FrameTimeVector`` (0018,1065, increments in ms), else ``FrameTime`` (0018,1063, ms), else
``CineRate`` (0018,0040, frames/s); a series uses its files' acquisition (or content) times. Without any
of them the rate is the caller's ``--fps`` or 15 fps with a warning.

Scale at the isocentre (mm/px), the first that applies:

1. ``ImagerPixelSpacing`` (0018,1164) × ``DistanceSourceToPatient`` (0018,1111) / ``DistanceSourceToDetector``
   (0018,1110): the detector spacing divided by the geometric magnification;
2. ``ImagerPixelSpacing`` / ``EstimatedRadiographicMagnificationFactor`` (0018,1114);
3. ``PixelSpacing`` (0028,0030), which the modality has already calibrated in the patient.

Detector spacing alone is not a scale at the isocentre (it is 1.2-1.6 times too large): the recording is
then reported as uncalibrated, with the reason. Enhanced multi-frame objects keep these attributes in
functional group macros: an attribute missing at the top level is taken from the first item of the
shared, else of the first frame's, functional groups (``DistanceSourceToIsocenter`` (0018,9402) standing
in for the source-patient distance), the LUTs included; they apply to every frame.

C-arm angles ``PositionerPrimaryAngle`` (0018,1510, + = LAO) and ``PositionerSecondaryAngle`` (0018,1511,
+ = cranial) are recorded, with the per-frame increments (0018,1520 / 0018,1521) in each frame's
metadata when present.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut, get_decoder, iter_pixels

from tavi_perception.geometry.frames import mm_per_px as magnified_mm_per_px
from tavi_perception.recordings.base import (
    Frame,
    Overrides,
    Recording,
    RecordingError,
    RecordingInfo,
    apply_overrides,
    default_rate,
    times_from_rate,
)

DICOM_MAGIC = b"DICM"  # at byte 128 of a DICOM Part 10 file
DEFER_BYTES = 1 << 20  # [bytes] elements larger than this (the pixel data) stay on disk until read


def is_dicom_file(path: Path) -> bool:
    """Whether ``path`` is a DICOM Part 10 file (preamble + "DICM")."""
    try:
        with path.open("rb") as f:
            f.seek(128)
            return f.read(4) == DICOM_MAGIC
    except OSError:
        return False


FUNCTIONAL_GROUPS = ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence")
LUT_KEYWORDS = (
    "RescaleSlope",
    "RescaleIntercept",
    "RescaleType",
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
)


def lookup(ds: Dataset, keyword: str) -> object:
    """``keyword``'s value at the top level, else in a functional group macro (module docstring)."""
    if keyword in ds:
        return ds.get(keyword)
    for group in FUNCTIONAL_GROUPS:
        items = ds.get(group)
        if not items:
            continue
        for element in items[0]:
            if element.VR == "SQ" and element.value and keyword in element.value[0]:
                return element.value[0].get(keyword)
    return None


def _lut_dataset(ds: Dataset) -> Dataset:
    """``ds`` itself, or for an enhanced object a dataset with its pixel description and the LUT
    attributes of its functional groups (pydicom's LUT functions read the top level only)."""
    if any(k in ds for k in LUT_KEYWORDS) or not any(g in ds for g in FUNCTIONAL_GROUPS):
        return ds
    view = Dataset()
    for keyword in ("BitsStored", "BitsAllocated", "PixelRepresentation", "PhotometricInterpretation"):
        if keyword in ds:
            setattr(view, keyword, ds.get(keyword))
    for keyword in LUT_KEYWORDS:
        value = lookup(ds, keyword)
        if value is not None:
            setattr(view, keyword, value)
    return view


class PixelMap:
    """Modality LUT, VOI LUT and MONOCHROME1 inversion of one dataset as a single lookup table."""

    def __init__(self, ds: Dataset, where: str) -> None:
        ds = _lut_dataset(ds)
        bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 0)
        if not 1 <= bits <= 16:
            raise RecordingError(f"{where}: BitsStored {bits} not supported (1 to 16 bit grey only)")
        self.mask = (1 << bits) - 1
        if int(ds.get("SamplesPerPixel", 1)) == 3:  # colour: luminance as decoded, no grey-scale LUTs
            self.signed, self.low, self.identity = False, 0, True
            self.dtype = np.dtype(np.uint8) if bits <= 8 else np.dtype(np.uint16)
            self.bits = bits
            return
        self.signed = int(ds.get("PixelRepresentation", 0)) == 1
        self.low = -(1 << (bits - 1)) if self.signed else 0
        stored = np.arange(self.low, self.low + (1 << bits), dtype=np.int64)
        values = apply_voi_lut(apply_modality_lut(stored, ds), ds, index=0).astype(np.float64)
        if str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1":
            values = values.max() + values.min() - values
        low, high = float(values.min()), float(values.max())
        integral = bool(np.all(values == np.round(values)))
        if integral and low >= 0 and high <= 65535:
            self.dtype = np.dtype(np.uint8) if high <= 255 and bits <= 8 else np.dtype(np.uint16)
            self.bits = bits if self.dtype == np.uint16 else min(bits, 8)
        else:  # negative or fractional values after the LUTs: stretch onto the output range
            self.dtype = np.dtype(np.uint8) if bits <= 8 else np.dtype(np.uint16)
            self.bits = 8 if bits <= 8 else 16
            top = float(np.iinfo(self.dtype).max)
            values = np.round((values - low) * (top / max(high - low, 1e-12)))
        self.table = values.astype(self.dtype)
        self.identity = not self.signed and np.array_equal(self.table, stored)

    def __call__(self, stored: np.ndarray) -> np.ndarray:
        """The displayed grey values of a frame of stored values."""
        if self.identity:  # pydicom has already masked the bits above BitsStored
            return stored if stored.dtype == self.dtype else stored.astype(self.dtype)
        if self.signed:
            return np.take(self.table, stored.astype(np.int32) - self.low, mode="clip")
        return self.table[stored & self.mask]  # the mask keeps every index inside the table


def _float(ds: Dataset, keyword: str) -> float | None:
    """A finite number from ``keyword`` (first value of a multi-valued element), else None."""
    value = lookup(ds, keyword)
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        if not value:
            return None
        value = value[0]
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _spacing_mm(ds: Dataset, keyword: str, notes: list[str]) -> float | None:
    value = lookup(ds, keyword)
    if not value or len(value) < 2:
        return None
    row_mm, col_mm = float(value[0]), float(value[1])
    if row_mm <= 0 or col_mm <= 0:
        return None
    if abs(row_mm - col_mm) > 0.01 * max(row_mm, col_mm):
        notes.append(f"{keyword} {row_mm:g}/{col_mm:g} mm is not square: using the column spacing")
    return col_mm


def calibration(ds: Dataset, notes: list[str]) -> tuple[float | None, str]:
    """The scale at the isocentre [mm/px] and its source (module docstring), or None and why not."""
    spacing_mm = _spacing_mm(ds, "ImagerPixelSpacing", notes)
    if spacing_mm is not None:
        sid_mm = _float(ds, "DistanceSourceToDetector")
        sod_mm = _float(ds, "DistanceSourceToPatient") or _float(ds, "DistanceSourceToIsocenter")
        if sid_mm and sod_mm and 0 < sod_mm <= sid_mm:
            scale = magnified_mm_per_px(spacing_mm, sid_mm, sod_mm)
            return scale, (
                f"DICOM ImagerPixelSpacing {spacing_mm:g} mm x SOD {sod_mm:g} mm / SID {sid_mm:g} mm"
            )
        factor = _float(ds, "EstimatedRadiographicMagnificationFactor")
        if factor and factor > 0:
            return spacing_mm / factor, (
                f"DICOM ImagerPixelSpacing {spacing_mm:g} mm / "
                f"EstimatedRadiographicMagnificationFactor {factor:g}"
            )
    pixel_spacing_mm = _spacing_mm(ds, "PixelSpacing", notes)
    if pixel_spacing_mm is not None:
        return pixel_spacing_mm, f"DICOM PixelSpacing {pixel_spacing_mm:g} mm"
    if spacing_mm is not None:
        reason = (
            f"uncalibrated: DICOM ImagerPixelSpacing {spacing_mm:g} mm is at the detector and neither "
            "SID/SOD nor EstimatedRadiographicMagnificationFactor is given; give --mm-per-px"
        )
    else:
        reason = "uncalibrated: no ImagerPixelSpacing or PixelSpacing in the file; give --mm-per-px"
    notes.append(reason)
    return None, reason


def frame_times(ds: Dataset, count: int, notes: list[str]) -> tuple[np.ndarray, float, str]:
    """Times [s] of ``count`` frames, the mean rate [1/s] and its source (module docstring)."""
    vector = lookup(ds, "FrameTimeVector")
    if vector is not None and count > 1:
        increments_ms = np.asarray([float(v) for v in vector], dtype=float)
        if len(increments_ms) == count and np.all(increments_ms[1:] > 0):
            times_s = np.cumsum(increments_ms) * 1e-3
            times_s -= times_s[0]
            return times_s, (count - 1) / times_s[-1], "DICOM FrameTimeVector"
        notes.append(f"FrameTimeVector ignored: {len(increments_ms)} values for {count} frames")
    frame_time_ms = _float(ds, "FrameTime")
    if frame_time_ms is not None and frame_time_ms > 0:
        fps = 1e3 / frame_time_ms
        return times_from_rate(count, fps), fps, f"DICOM FrameTime {frame_time_ms:g} ms"
    cine_rate = _float(ds, "CineRate")
    if cine_rate is not None and cine_rate > 0:
        return times_from_rate(count, cine_rate), cine_rate, f"DICOM CineRate {cine_rate:g}"
    what = "the DICOM file (FrameTime, FrameTimeVector, CineRate)"
    fps, fps_source = default_rate(what, notes, single_frame=count == 1)
    return times_from_rate(count, fps), fps, fps_source


def _read(path: Path, stop_before_pixels: bool = False, notes: list[str] | None = None) -> Dataset:
    """The dataset of ``path`` with its pixel data left on disk (deferred: frames are read one at a time
    by :func:`iter_pixels` from the file); pydicom's warnings about it go into ``notes``, not stderr."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, defer_size=DEFER_BYTES)
        ended = [w for w in caught if "end of file" in str(w.message).lower()]
        if ended:
            raise RecordingError(f"{path}: truncated file ({_one_line(ended[0].message)})")  # type: ignore[arg-type]
        if notes is not None:
            notes += sorted({f"pydicom: {_one_line(w.message)}" for w in caught})  # type: ignore[arg-type]
        return ds
    except InvalidDicomError:
        raise RecordingError(f"{path}: not a DICOM file") from None
    except (EOFError, OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise RecordingError(f"{path}: unreadable DICOM file ({_one_line(err)})") from None


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _pixel_bytes(ds: Dataset) -> int:
    """Bytes of native pixel data present: the declared length, or less when the file ends before it."""
    element = ds.get_item("PixelData", keep_deferred=True)
    length, offset = getattr(element, "length", None), getattr(element, "value_tell", None)
    if element.value is not None or length is None or offset is None or not ds.filename:
        return len(ds.PixelData)
    return min(int(length), Path(ds.filename).stat().st_size - int(offset))


def check_pixels(ds: Dataset, where: str) -> None:
    """Raise :class:`RecordingError` for a dataset whose frames cannot be decoded here: no pixel data, an
    unsupported layout, no installed decoder for its transfer syntax, or fewer bytes than its frames need."""
    if "PixelData" not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise RecordingError(f"{where}: float pixel data not supported")
        raise RecordingError(f"{where}: no pixel data (0x7FE0,0010) in the file")
    samples = int(ds.get("SamplesPerPixel", 1))
    if samples not in (1, 3):
        raise RecordingError(f"{where}: {samples} samples per pixel not supported (grey or colour only)")
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax is None:
        raise RecordingError(f"{where}: no TransferSyntaxUID in the file meta information")
    try:
        decoder = get_decoder(syntax)
    except RuntimeError:  # pydicom has no decoder class for this transfer syntax (a RuntimeError subclass)
        raise RecordingError(
            f"{where}: no pixel decoder for transfer syntax {syntax.name} ({syntax}) in pydicom; "
            "export the cine uncompressed, or its video stream as a video file"
        ) from None
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies) or "a decoding plugin"
        raise RecordingError(
            f"{where}: transfer syntax {syntax.name} needs a decoder that is not installed: {missing}"
        )
    if not syntax.is_compressed:
        rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
        frames = int(ds.get("NumberOfFrames") or 1)
        bits = int(ds.get("BitsAllocated", 8))
        need = math.ceil(rows * cols * frames * samples * bits / 8)
        have = _pixel_bytes(ds)
        if have < need:
            raise RecordingError(
                f"{where}: truncated pixel data ({have} of {need} bytes for {frames} frames of {cols}x{rows})"
            )


def _grey(frame: np.ndarray) -> np.ndarray:
    """A decoded frame as one channel (colour frames, already RGB after pydicom, to luminance)."""
    if frame.ndim == 3:
        return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    return frame


def _angles(ds: Dataset) -> tuple[float | None, float | None]:
    return _float(ds, "PositionerPrimaryAngle"), _float(ds, "PositionerSecondaryAngle")


def _increments(ds: Dataset, count: int) -> dict[str, np.ndarray]:
    """Per-frame angle increments [deg] present for every frame."""
    out = {}
    for keyword, name in (
        ("PositionerPrimaryAngleIncrement", "primary_angle_increment_deg"),
        ("PositionerSecondaryAngleIncrement", "secondary_angle_increment_deg"),
    ):
        value = ds.get(keyword)
        if value is not None and not isinstance(value, (str, bytes)):
            values = np.asarray([float(v) for v in value], dtype=float)
            if len(values) == count:
                out[name] = values
    return out


class _DicomReader(Recording):
    """What a single file and a series share: the info from the first (or only) dataset."""

    path: Path
    _map: PixelMap
    _times_s: np.ndarray

    def _describe(
        self,
        first: Dataset,
        first_file: Path,
        kind: str,
        frame_count: int,
        timing: Callable[[list[str]], tuple[np.ndarray, float, str]],
        notes: list[str],
        overrides: Overrides | None,
    ) -> None:
        """Set ``info`` (of ``self.path``), the frame times and the pixel map from ``first``, read from
        ``first_file``; ``timing(notes)`` gives the times, the mean rate and its source (asked after the
        scale, so that the notes keep that order)."""
        scale, scale_source = calibration(first, notes)
        times_s, fps, fps_source = timing(notes)
        self._map = PixelMap(first, str(first_file))
        primary, secondary = _angles(first)
        info = RecordingInfo(
            path=str(self.path),
            kind=kind,
            frame_count=frame_count,
            width_px=int(first.Columns),
            height_px=int(first.Rows),
            fps=fps,
            fps_source=fps_source,
            mm_per_px=scale,
            calibration_source=scale_source,
            primary_angle_deg=primary,
            secondary_angle_deg=secondary,
            modality=str(first.get("Modality", "")) or None,
            encoding=first.file_meta.TransferSyntaxUID.name,
            bits_stored=self._map.bits,
            warnings=tuple(notes),
        )
        self.info, self._times_s = apply_overrides(info, times_s, overrides or Overrides())


class DicomRecording(_DicomReader):
    """One DICOM file: a multi-frame cine or a single image."""

    def __init__(self, path: Path, overrides: Overrides | None = None) -> None:
        self.path = path
        notes: list[str] = []
        ds = _read(path, notes=notes)
        check_pixels(ds, str(path))
        count = int(ds.get("NumberOfFrames") or 1)
        self._describe(
            ds, path, "dicom", count, lambda notes: frame_times(ds, count, notes), notes, overrides
        )
        self._increments = _increments(ds, count)

    def __iter__(self) -> Iterator[Frame]:
        frames = iter_pixels(self.path)
        for index in range(self.info.frame_count):
            try:
                stored = next(frames)
            except StopIteration:
                raise RecordingError(f"{self.path}: pixel data ends after {index} frames") from None
            except Exception as err:  # any decoder failure is a bad file, reported in one line
                raise RecordingError(
                    f"{self.path}: frame {index} cannot be decoded ({_one_line(err)})"
                ) from None
            metadata = {name: float(values[index]) for name, values in self._increments.items()}
            yield Frame(index, float(self._times_s[index]), self._map(_grey(stored)), metadata)


def _time_of_day_s(ds: Dataset) -> float | None:
    """Acquisition (else content) time of a single-frame file [s since midnight], None when absent."""
    for keyword in ("AcquisitionDateTime", "AcquisitionTime", "ContentTime"):
        text = str(ds.get(keyword, "") or "").strip()
        if keyword == "AcquisitionDateTime":
            text = text[8:].split("+")[0].split("-")[0] if len(text) > 8 else ""
        text = text.replace(":", "")
        if len(text) >= 6 and text[:6].isdigit():
            seconds = int(text[:2]) * 3600 + int(text[2:4]) * 60 + float(text[4:] or 0)
            return seconds
    return None


class DicomSeriesRecording(_DicomReader):
    """A folder of single-frame DICOM files, one frame each, ordered by InstanceNumber then time."""

    def __init__(self, folder: Path, files: list[Path], overrides: Overrides | None = None) -> None:
        self.path = folder
        headers = [(_read(f, stop_before_pixels=True), f) for f in files]
        multi = [f.name for ds, f in headers if int(ds.get("NumberOfFrames") or 1) > 1]
        if multi:
            raise RecordingError(
                f"{folder}: holds multi-frame DICOM files ({', '.join(multi[:3])}); give one file"
            )

        def order(item: tuple[Dataset, Path]) -> tuple[float, float, str]:
            ds, f = item
            number = ds.get("InstanceNumber")
            moment = _time_of_day_s(ds)
            return (
                float(number) if number not in (None, "") else math.inf,
                moment if moment is not None else math.inf,
                f.name,
            )

        headers.sort(key=order)
        notes: list[str] = []
        first = _read(headers[0][1], notes=notes)
        check_pixels(first, str(headers[0][1]))
        sizes = {(int(ds.Rows), int(ds.Columns)) for ds, _ in headers if "Rows" in ds}
        if len(sizes) > 1:
            raise RecordingError(f"{folder}: the DICOM files differ in size {sorted(sizes)}")
        self._files = [f for _, f in headers]
        datasets = [ds for ds, _ in headers]
        self._describe(
            first,
            headers[0][1],
            "dicom-series",
            len(self._files),
            lambda notes: self._times(datasets, notes),
            notes,
            overrides,
        )
        self._angles = [_angles(ds) for ds, _ in headers]

    @staticmethod
    def _times(headers: list[Dataset], notes: list[str]) -> tuple[np.ndarray, float, str]:
        moments = [_time_of_day_s(ds) for ds in headers]
        if len(headers) > 1 and all(m is not None for m in moments):
            times_s = np.asarray(moments, dtype=float)
            times_s -= times_s[0]
            if np.all(np.diff(times_s) > 0):
                return times_s, (len(times_s) - 1) / times_s[-1], "DICOM acquisition times of the files"
            notes.append("the files' acquisition times do not increase with InstanceNumber: ignored")
        return frame_times(headers[0], len(headers), notes)

    def __iter__(self) -> Iterator[Frame]:
        for index, path in enumerate(self._files):
            ds = _read(path)
            check_pixels(ds, str(path))
            try:
                stored = next(iter_pixels(path))
            except Exception as err:  # any decoder failure is a bad file, reported in one line
                raise RecordingError(f"{path}: cannot be decoded ({_one_line(err)})") from None
            primary, secondary = self._angles[index]
            metadata = {}
            if primary is not None:
                metadata["primary_angle_deg"] = primary
            if secondary is not None:
                metadata["secondary_angle_deg"] = secondary
            yield Frame(index, float(self._times_s[index]), self._map(_grey(stored)), metadata)
