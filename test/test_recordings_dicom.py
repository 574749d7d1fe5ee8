"""DICOM readers on files written by pydicom here and on pydicom's own bundled test files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.pixels import apply_voi_lut
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit, JPEGLosslessSV1, RLELossless

from tavi_perception.recordings import Overrides, RecordingError, open_recording
from tavi_perception.recordings.dicom import DicomSeriesRecording
from tavi_perception.recordings.synthetic import write_xa_cine


def _frames(count: int = 4, size: int = 32, bits: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 1 << bits, size=(count, size, size), dtype=np.uint16)


def _jpeg_lossless_sv1(image: np.ndarray, precision: int) -> bytes:
    """A JPEG lossless (process 14, predictor 1) codestream of a grey image: ITU-T T.81 H.1, one
    Huffman table giving every difference category a 5-bit code. No encoder for it is installable here,
    so the test writes its own (the decoder under test is pylibjpeg-libjpeg's)."""
    rows, cols = image.shape
    x = image.astype(np.int64)
    pred = np.empty_like(x)
    pred[0, 0] = 1 << (precision - 1)
    pred[0, 1:] = x[0, :-1]
    pred[1:, 0] = x[:-1, 0]
    pred[1:, 1:] = x[1:, :-1]
    diff = (x - pred) % 65536
    diff = np.where(diff >= 32768, diff - 65536, diff).ravel()
    bits, count, out = 0, 0, bytearray()
    for d in diff.tolist():
        ssss = 16 if d == -32768 else abs(d).bit_length()
        extra = 0 if ssss in (0, 16) else ssss
        value = d if d >= 0 else d + (1 << ssss) - 1
        bits = (bits << (5 + extra)) | (ssss << extra) | (value & ((1 << extra) - 1))
        count += 5 + extra
        while count >= 8:
            count -= 8
            byte = (bits >> count) & 0xFF
            out += b"\xff\x00" if byte == 0xFF else bytes([byte])
        bits &= (1 << count) - 1
    if count:
        byte = ((bits << (8 - count)) | ((1 << (8 - count)) - 1)) & 0xFF  # pad with 1 bits
        out += b"\xff\x00" if byte == 0xFF else bytes([byte])
    sof = b"\xff\xc3" + (11).to_bytes(2, "big") + bytes([precision]) + rows.to_bytes(2, "big")
    sof += cols.to_bytes(2, "big") + bytes([1, 1, 0x11, 0])
    dht = (
        b"\xff\xc4"
        + (36).to_bytes(2, "big")
        + bytes([0])
        + bytes([0, 0, 0, 0, 17] + [0] * 11)
        + bytes(range(17))
    )
    sos = b"\xff\xda" + (8).to_bytes(2, "big") + bytes([1, 1, 0x00, 1, 0, 0])
    return b"\xff\xd8" + sof + dht + sos + bytes(out) + b"\xff\xd9"


def _bundled(name: str) -> str:
    path = get_testdata_file(name, download=False)
    assert path is not None, f"{name} is not bundled with the installed pydicom"
    return path


@pytest.mark.parametrize("modality", ["XA", "RF"])
def test_a_cine_gives_its_frames_times_scale_and_angles_from_the_tags(tmp_path: Path, modality: str) -> None:
    frames = _frames()
    path = write_xa_cine(
        tmp_path / "xa.dcm",
        frames,
        modality=modality,
        bits_stored=12,
        frame_time_ms=None,
        frame_time_vector_ms=[0.0, 66.0, 67.0, 133.0],
        imager_pixel_spacing_mm=0.3,
        sid_mm=1200.0,
        sod_mm=800.0,
        primary_angle_deg=-25.5,
        secondary_angle_deg=12.0,
    )
    recording = open_recording(path)
    info = recording.info
    assert (info.kind, info.modality, info.frame_count) == ("dicom", modality, 4)
    assert (info.width_px, info.height_px, info.bits_stored) == (32, 32, 12)
    assert info.mm_per_px == pytest.approx(0.3 * 800 / 1200)
    assert "ImagerPixelSpacing" in info.calibration_source and "SID" in info.calibration_source
    assert (info.primary_angle_deg, info.secondary_angle_deg) == (-25.5, 12.0)
    assert info.fps_source == "DICOM FrameTimeVector"
    assert info.warnings == ()
    read = list(recording)
    assert [f.t_s for f in read] == pytest.approx([0.0, 0.066, 0.133, 0.266])
    for frame, expected in zip(read, frames, strict=True):
        assert frame.image.dtype == np.uint16
        np.testing.assert_array_equal(frame.image, expected)
    assert info.calibration().calibrated


@pytest.mark.parametrize("window", [None, (2048.0, 4096.0)])
def test_bits_above_bits_stored_are_not_part_of_the_value(tmp_path: Path, window: tuple | None) -> None:
    frames = _frames(count=1)
    clean = next(
        iter(open_recording(write_xa_cine(tmp_path / "a.dcm", frames, bits_stored=12, window=window)))
    )
    dirty = write_xa_cine(tmp_path / "b.dcm", frames | np.uint16(0xA000), bits_stored=12, window=window)
    np.testing.assert_array_equal(next(iter(open_recording(dirty))).image, clean.image)


def test_monochrome1_is_inverted_over_the_stored_range(tmp_path: Path) -> None:
    frames = _frames(count=2)
    path = write_xa_cine(tmp_path / "m1.dcm", frames, bits_stored=12, photometric="MONOCHROME1")
    read = [f.image for f in open_recording(path)]
    np.testing.assert_array_equal(read[0], 4095 - frames[0])


def test_the_voi_window_is_applied_as_pydicom_applies_it_over_the_16_bit_range(tmp_path: Path) -> None:
    frames = _frames(count=2)
    path = write_xa_cine(tmp_path / "win.dcm", frames, bits_stored=12, window=(1500.0, 1000.0))
    image = next(iter(open_recording(path))).image
    windowed = apply_voi_lut(frames[0], pydicom.dcmread(path))  # fractional values in 0..4095
    assert image.dtype == np.uint16
    np.testing.assert_allclose(image, windowed * (65535 / 4095), atol=0.51)


def test_a_rescale_to_negative_values_is_stretched_keeping_the_order(tmp_path: Path) -> None:
    frames = _frames(count=1)
    path = write_xa_cine(tmp_path / "rescale.dcm", frames, bits_stored=12, rescale=(1.0, -1024.0))
    image = next(iter(open_recording(path))).image
    assert image.dtype == np.uint16
    order = np.argsort(frames[0].ravel(), kind="stable")
    assert np.all(np.diff(image.ravel()[order].astype(int)) >= 0)
    assert image.ravel()[order][0] < image.ravel()[order][-1]


@pytest.mark.parametrize(
    ("tags", "fps", "source"),
    [
        ({"frame_time_ms": 40.0}, 25.0, "DICOM FrameTime 40 ms"),
        ({"frame_time_ms": None, "cine_rate": 30}, 30.0, "DICOM CineRate 30"),
    ],
)
def test_frame_time_or_cine_rate_sets_the_rate(tmp_path: Path, tags: dict, fps: float, source: str) -> None:
    recording = open_recording(write_xa_cine(tmp_path / "t.dcm", _frames(count=3), bits_stored=12, **tags))
    assert recording.info.fps == pytest.approx(fps)
    assert recording.info.fps_source == source
    assert [f.t_s for f in recording] == pytest.approx([0.0, 1 / fps, 2 / fps])


def test_without_timing_tags_the_rate_is_15_fps_with_a_warning_and_fps_overrides_it(tmp_path: Path) -> None:
    path = write_xa_cine(tmp_path / "t.dcm", _frames(count=3), bits_stored=12, frame_time_ms=None)
    info = open_recording(path).info
    assert info.fps == 15.0 and info.fps_source.startswith("default")
    assert any("no frame rate" in w and "--fps" in w for w in info.warnings)
    overridden = open_recording(path, Overrides(fps=7.5))
    assert overridden.info.fps == 7.5 and overridden.info.fps_source == "option --fps 7.5"
    assert not any("no frame rate" in w for w in overridden.info.warnings)
    assert [f.t_s for f in overridden] == pytest.approx([0.0, 1 / 7.5, 2 / 7.5])


def test_mm_per_px_option_overrides_the_file_and_says_what_it_replaced(tmp_path: Path) -> None:
    path = write_xa_cine(tmp_path / "c.dcm", _frames(count=2), bits_stored=12)
    info = open_recording(path, Overrides(mm_per_px=0.25)).info
    assert info.mm_per_px == 0.25
    assert info.calibration_source.startswith("option --mm-per-px 0.25 (overrides DICOM ImagerPixelSpacing")


@pytest.mark.parametrize(
    ("tags", "mm_per_px", "source_start"),
    [
        (
            {"sid_mm": None, "sod_mm": None, "magnification": 1.5},
            0.2,
            "DICOM ImagerPixelSpacing 0.3 mm / Estimated",
        ),
        ({"imager_pixel_spacing_mm": None, "pixel_spacing_mm": 0.22}, 0.22, "DICOM PixelSpacing 0.22 mm"),
        (
            {"sid_mm": None, "sod_mm": None},
            None,
            "uncalibrated: DICOM ImagerPixelSpacing 0.3 mm is at the detector",
        ),
        ({"imager_pixel_spacing_mm": None}, None, "uncalibrated: no ImagerPixelSpacing or PixelSpacing"),
    ],
)
def test_the_scale_comes_from_magnification_or_pixel_spacing_or_is_reported_unknown(
    tmp_path: Path, tags: dict, mm_per_px: float | None, source_start: str
) -> None:
    info = open_recording(write_xa_cine(tmp_path / "c.dcm", _frames(count=2), bits_stored=12, **tags)).info
    assert info.mm_per_px == (pytest.approx(mm_per_px) if mm_per_px else None)
    assert info.calibration_source.startswith(source_start)
    calibration = info.calibration()
    assert calibration.calibrated == (mm_per_px is not None)
    if mm_per_px is None:
        assert any(w.startswith("uncalibrated") and "--mm-per-px" in w for w in info.warnings)


def test_an_enhanced_cine_takes_scale_angles_and_window_from_its_functional_groups(tmp_path: Path) -> None:
    frames = _frames(count=2)
    path = write_xa_cine(
        tmp_path / "enhanced.dcm",
        frames,
        bits_stored=12,
        imager_pixel_spacing_mm=None,
        sid_mm=None,
        sod_mm=None,
        primary_angle_deg=None,
        secondary_angle_deg=None,
    )
    ds = pydicom.dcmread(path)
    geometry, positioner, pixels, window = Dataset(), Dataset(), Dataset(), Dataset()
    pixels.ImagerPixelSpacing = [0.3, 0.3]
    geometry.DistanceSourceToDetector, geometry.DistanceSourceToIsocenter = 1200.0, 750.0
    positioner.PositionerPrimaryAngle, positioner.PositionerSecondaryAngle = 20.0, -10.0
    window.WindowCenter, window.WindowWidth = 2048.0, 4096.0
    shared = Dataset()
    shared.XRayGeometrySequence = [geometry]
    shared.PositionerPositionSequence = [positioner]
    shared.FrameVOILUTSequence = [window]
    shared.PixelMeasuresSequence = [pixels]  # (an odd place for ImagerPixelSpacing; any macro is searched)
    ds.SharedFunctionalGroupsSequence = [shared]
    ds.save_as(path)
    recording = open_recording(path)
    info = recording.info
    assert info.mm_per_px == pytest.approx(0.3 * 750 / 1200)
    assert (info.primary_angle_deg, info.secondary_angle_deg) == (20.0, -10.0)
    image = next(iter(recording)).image
    windowed = apply_voi_lut(
        frames[0],
        pydicom.dcmread(write_xa_cine(tmp_path / "w.dcm", frames, bits_stored=12, window=(2048.0, 4096.0))),
    )
    np.testing.assert_allclose(image, windowed * (65535 / 4095), atol=0.51)


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless])
def test_lossless_compressed_cines_decode_to_the_written_frames(tmp_path: Path, syntax: str) -> None:
    frames = _frames(count=3)
    recording = open_recording(
        write_xa_cine(tmp_path / "c.dcm", frames, bits_stored=12, transfer_syntax=syntax)
    )
    assert recording.info.encoding == pydicom.uid.UID(syntax).name
    for frame, expected in zip(recording, frames, strict=True):
        np.testing.assert_array_equal(frame.image, expected)


def test_jpeg_baseline_cine_decodes_close_to_the_written_8_bit_frames(tmp_path: Path) -> None:
    x = np.linspace(0, 255, 64)
    frames = np.stack([np.add.outer(x, x) / 2 + 10 * i for i in range(2)]).clip(0, 255).astype(np.uint8)
    path = write_xa_cine(tmp_path / "jpeg.dcm", frames, transfer_syntax=JPEGBaseline8Bit)
    read = list(open_recording(path))
    assert read[0].image.dtype == np.uint8
    for frame, expected in zip(read, frames, strict=True):
        assert np.abs(frame.image.astype(int) - expected).mean() < 2.0


@pytest.mark.parametrize("bits", [8, 12, 16])
def test_jpeg_lossless_cines_decode_to_the_written_frames(tmp_path: Path, bits: int) -> None:
    frames = _frames(count=2, bits=bits).astype(np.uint8 if bits == 8 else np.uint16)
    path = write_xa_cine(tmp_path / "ll.dcm", frames, bits_stored=bits)
    ds = pydicom.dcmread(path)
    ds.PixelData = encapsulate([_jpeg_lossless_sv1(f, bits) for f in frames])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1
    ds.save_as(path)
    recording = open_recording(path)
    assert recording.info.encoding.startswith("JPEG Lossless, Non-Hierarchical, First-Order Prediction")
    for frame, expected in zip(recording, frames, strict=True):
        np.testing.assert_array_equal(frame.image, expected)


@pytest.mark.parametrize(
    "name", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm"]
)
def test_pydicom_bundled_compressed_files_decode_equal_to_the_uncompressed_one(name: str) -> None:
    reference = next(iter(open_recording(_bundled("MR_small.dcm")))).image
    image = next(iter(open_recording(_bundled(name)))).image
    np.testing.assert_array_equal(image, reference)


def test_pydicom_bundled_12_bit_jpeg_extended_file_keeps_16_bit_output() -> None:
    recording = open_recording(_bundled("JPGExtended.dcm"))
    image = next(iter(recording)).image
    assert recording.info.bits_stored == 12 and image.dtype == np.uint16


def test_a_folder_of_single_frame_files_is_ordered_by_instance_number_with_their_times(
    tmp_path: Path,
) -> None:
    frames = _frames(count=3)
    for number, (name, moment) in enumerate(
        [("c.dcm", "101500.000"), ("a.dcm", "101500.100"), ("b.dcm", "101500.250")]
    ):
        path = write_xa_cine(tmp_path / name, frames[number], bits_stored=12, frame_time_ms=None)
        ds = pydicom.dcmread(path)
        ds.InstanceNumber, ds.AcquisitionTime = number + 1, moment
        ds.save_as(path)
    recording = open_recording(tmp_path)
    assert isinstance(recording, DicomSeriesRecording)
    assert recording.info.kind == "dicom-series" and recording.info.frame_count == 3
    assert recording.info.fps_source == "DICOM acquisition times of the files"
    read = list(recording)
    assert [f.t_s for f in read] == pytest.approx([0.0, 0.1, 0.25])
    for frame, expected in zip(read, frames, strict=True):
        np.testing.assert_array_equal(frame.image, expected)
    assert read[0].metadata == {"primary_angle_deg": 30.0, "secondary_angle_deg": 15.0}


# ----------------------------------------------------------------------------------------- bad files


def _error(path: Path | str) -> str:
    with pytest.raises(RecordingError) as info:
        list(open_recording(path))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_file_that_is_not_dicom_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "notes.dcm"
    path.write_text("not an image at all\n" * 20)
    assert _error(path) == f"{path}: not a DICOM file"


def test_a_truncated_cine_is_reported_with_the_bytes_missing(tmp_path: Path) -> None:
    path = write_xa_cine(tmp_path / "t.dcm", _frames(count=3), bits_stored=12)
    path.write_bytes(path.read_bytes()[:-100])
    assert "truncated pixel data" in _error(path)
    assert "truncated pixel data (8130 of 8192 bytes" in _error(_bundled("MR_truncated.dcm"))


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless])
def test_a_truncated_compressed_cine_is_reported_as_truncated(tmp_path: Path, syntax: str) -> None:
    path = write_xa_cine(tmp_path / "t.dcm", _frames(count=3), bits_stored=12, transfer_syntax=syntax)
    path.write_bytes(path.read_bytes()[:-1000])
    assert _error(path).startswith(f"{path}: truncated file (End of file reached")


def test_a_dicom_file_without_pixel_data_is_refused(tmp_path: Path) -> None:
    path = write_xa_cine(tmp_path / "p.dcm", _frames(count=1), bits_stored=12)
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    assert _error(path) == f"{path}: no pixel data (0x7FE0,0010) in the file"


def test_a_transfer_syntax_without_a_decoder_names_it(tmp_path: Path) -> None:
    path = write_xa_cine(tmp_path / "x.dcm", _frames(count=1), bits_stored=12)
    ds = pydicom.dcmread(path)
    ds.PixelData = encapsulate([b"\x00" * 64])
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.102"  # H.264 inside DICOM: pydicom has no decoder
    ds.save_as(path)
    message = _error(path)
    assert message.startswith(f"{path}: no pixel decoder for transfer syntax MPEG-4 AVC/H.264")


def test_undecodable_compressed_frames_are_one_line_errors() -> None:
    message = _error(_bundled("JPEG-lossy.dcm"))
    assert "frame 0 cannot be decoded" in message


def test_more_than_16_stored_bits_are_refused() -> None:
    assert "BitsStored 32 not supported" in _error(_bundled("rtdose.dcm"))


def test_per_frame_angle_increments_go_into_each_frames_metadata(tmp_path: Path) -> None:
    path = write_xa_cine(tmp_path / "rot.dcm", _frames(count=3), bits_stored=12)
    ds = pydicom.dcmread(path)
    ds.PositionerPrimaryAngleIncrement = [0.0, 1.5, 3.0]
    ds.PositionerSecondaryAngleIncrement = [0.0, -0.5, -1.0]
    ds.save_as(path)
    metadata = [f.metadata for f in open_recording(path)]
    assert [m["primary_angle_increment_deg"] for m in metadata] == [0.0, 1.5, 3.0]
    assert [m["secondary_angle_increment_deg"] for m in metadata] == [0.0, -0.5, -1.0]


def test_a_frame_time_vector_of_the_wrong_length_is_ignored_with_a_warning(tmp_path: Path) -> None:
    path = write_xa_cine(
        tmp_path / "ftv.dcm",
        _frames(count=3),
        bits_stored=12,
        frame_time_ms=50.0,
        frame_time_vector_ms=[0, 40],
    )
    info = open_recording(path).info
    assert info.fps_source == "DICOM FrameTime 50 ms"
    assert "FrameTimeVector ignored: 2 values for 3 frames" in info.warnings


def test_a_colour_dicom_image_is_read_as_grey() -> None:
    recording = open_recording(_bundled("SC_rgb_jpeg_dcmtk.dcm"))
    image = next(iter(recording)).image
    assert image.ndim == 2 and image.dtype == np.uint8
    assert image.shape == (recording.info.height_px, recording.info.width_px)
