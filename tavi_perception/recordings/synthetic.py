"""DICOM files written with pydicom from frames in memory, for the tests and benchmarks (no ROS).

:func:`write_xa_cine` writes a multi-frame X-Ray Angiographic image with the tags a C-arm writes (timing,
imager pixel spacing, SID/SOD, positioner angles, optional window), in any transfer syntax pydicom can
encode here (uncompressed, RLE Lossless, JPEG 2000 through pylibjpeg-openjpeg) or, for 8-bit frames,
JPEG baseline encoded by OpenCV and encapsulated. :func:`simulated_frames` gives realistic content.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    JPEGBaseline8Bit,
    XRayAngiographicImageStorage,
    generate_uid,
)

IMPLEMENTATION_UID = "1.2.826.0.1.3680043.8.498.1"  # pydicom's UID root, for files written by tests


def simulated_frames(
    count: int, seed: int = 0, size_px: int = 512, bit_depth: int = 8
) -> tuple[np.ndarray, float]:
    """``count`` consecutive simulator frames ((count, H, W), uint8 or uint16) and their scale [mm/px]."""
    from tavi_perception.sim import ProcedureSimulator

    sim = ProcedureSimulator(seed, image_size=size_px, bit_depth=bit_depth)
    frames = [sim.step() for _ in range(count)]
    return np.stack([f.image for f in frames]), float(frames[0].mm_per_px)


def write_xa_cine(
    path: Path,
    frames: np.ndarray,
    *,
    bits_stored: int | None = None,
    photometric: str = "MONOCHROME2",
    frame_time_ms: float | None = 66.67,
    frame_time_vector_ms: Sequence[float] | None = None,
    cine_rate: float | None = None,
    imager_pixel_spacing_mm: float | None = 0.3,
    sid_mm: float | None = 1200.0,
    sod_mm: float | None = 800.0,
    magnification: float | None = None,
    pixel_spacing_mm: float | None = None,
    primary_angle_deg: float | None = 30.0,
    secondary_angle_deg: float | None = 15.0,
    window: tuple[float, float] | None = None,
    rescale: tuple[float, float] | None = None,
    transfer_syntax: str = "1.2.840.10008.1.2.1",
    modality: str = "XA",
) -> Path:
    """Write ``frames`` ((N, H, W) or (H, W), uint8 or uint16) as one DICOM file; None leaves a tag out.

    ``window`` is (centre, width), ``rescale`` (slope, intercept). Returns ``path``.
    """
    frames = np.asarray(frames)
    if frames.ndim == 2:
        frames = frames[None]
    count, rows, cols = frames.shape
    bits_allocated = 8 if frames.dtype == np.uint8 else 16
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = XRayAngiographicImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    meta.ImplementationClassUID = IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = XRayAngiographicImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.InstanceNumber = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored or bits_allocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    if count > 1 or frame_time_ms is not None:
        ds.NumberOfFrames = count
    optional = {
        "FrameTime": frame_time_ms,
        "FrameTimeVector": list(frame_time_vector_ms) if frame_time_vector_ms is not None else None,
        "CineRate": int(cine_rate) if cine_rate is not None else None,
        "ImagerPixelSpacing": [imager_pixel_spacing_mm] * 2 if imager_pixel_spacing_mm else None,
        "DistanceSourceToDetector": sid_mm,
        "DistanceSourceToPatient": sod_mm,
        "EstimatedRadiographicMagnificationFactor": magnification,
        "PixelSpacing": [pixel_spacing_mm] * 2 if pixel_spacing_mm else None,
        "PositionerPrimaryAngle": primary_angle_deg,
        "PositionerSecondaryAngle": secondary_angle_deg,
    }
    for keyword, value in optional.items():
        if value is not None:
            setattr(ds, keyword, value)
    if frame_time_vector_ms is not None:
        ds.FrameIncrementPointer = 0x00181065
    elif frame_time_ms is not None:
        ds.FrameIncrementPointer = 0x00181063
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
        ds.RescaleType = "US"
    if transfer_syntax == JPEGBaseline8Bit:
        if frames.dtype != np.uint8:
            raise ValueError("JPEG baseline holds 8-bit frames only")
        encoded = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes() for f in frames]
        ds.PixelData = encapsulate(encoded)
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.LossyImageCompression = "01"
    else:
        ds.PixelData = np.ascontiguousarray(frames).tobytes()
        ds["PixelData"].VR = "OW" if bits_allocated == 16 else "OB"
        if transfer_syntax != meta.TransferSyntaxUID:
            ds.compress(transfer_syntax, encoding_plugin="pylibjpeg" if "4.9" in transfer_syntax else "")
    ds.save_as(path, enforce_file_format=True)
    return path
