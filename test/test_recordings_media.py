"""Video files (written here by OpenCV) and image folders (PNG/TIFF, 8 and 16 bit) as recordings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tavi_perception.recordings import Overrides, RecordingError, open_recording


def _gradient(i: int, size: int = 64) -> np.ndarray:
    x = np.linspace(0, 200, size)
    return (np.add.outer(x, x) / 2 + 5 * i).astype(np.uint8)


def _write_video(path: Path, count: int, fps: float) -> list[np.ndarray]:
    frames = [_gradient(i) for i in range(count)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (64, 64))
    assert writer.isOpened()
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    return frames


def test_opencv_was_built_with_ffmpeg() -> None:
    assert any(
        line.strip().startswith("FFMPEG:") and "YES" in line
        for line in cv2.getBuildInformation().splitlines()
    )


def test_a_video_gives_grey_frames_at_its_container_rate_uncalibrated(tmp_path: Path) -> None:
    written = _write_video(tmp_path / "cine.mp4", 6, 12.5)
    recording = open_recording(tmp_path / "cine.mp4")
    info = recording.info
    assert (info.kind, info.frame_count, info.width_px, info.height_px) == ("video", 6, 64, 64)
    assert info.fps == pytest.approx(12.5) and info.fps_source.startswith("video container")
    assert info.mm_per_px is None and not info.calibration().calibrated
    assert any("--mm-per-px" in w for w in info.warnings)
    read = list(recording)
    assert len(read) == 6
    assert [f.t_s for f in read] == pytest.approx([i / 12.5 for i in range(6)])
    for frame, expected in zip(read, written, strict=True):
        assert frame.image.dtype == np.uint8 and frame.image.shape == (64, 64)
        assert np.abs(frame.image.astype(int) - expected).mean() < 3.0  # lossy codec


def test_options_override_a_videos_rate_and_scale(tmp_path: Path) -> None:
    _write_video(tmp_path / "cine.mp4", 3, 25.0)
    recording = open_recording(tmp_path / "cine.mp4", Overrides(mm_per_px=0.2, fps=10.0))
    assert recording.info.mm_per_px == 0.2 and recording.info.calibration().calibrated
    assert recording.info.fps == 10.0
    assert [f.t_s for f in recording] == pytest.approx([0.0, 0.1, 0.2])
    assert recording.info.warnings == ()


@pytest.mark.parametrize(("suffix", "dtype"), [(".png", np.uint8), (".png", np.uint16), (".tif", np.uint16)])
def test_an_image_folder_keeps_the_bit_depth_in_natural_name_order(
    tmp_path: Path, suffix: str, dtype: type
) -> None:
    rng = np.random.default_rng(1)
    top = np.iinfo(dtype).max
    frames = {n: rng.integers(0, top, size=(24, 32), dtype=dtype) for n in (1, 2, 10)}
    for n, image in frames.items():
        assert cv2.imwrite(str(tmp_path / f"frame{n}{suffix}"), image)
    recording = open_recording(tmp_path, Overrides(fps=5.0))
    assert recording.info.kind == "images" and recording.info.frame_count == 3
    assert recording.info.bits_stored == 8 * np.dtype(dtype).itemsize
    read = list(recording)
    assert [f.t_s for f in read] == pytest.approx([0.0, 0.2, 0.4])
    for frame, n in zip(read, (1, 2, 10), strict=True):  # frame10 after frame2
        assert frame.image.dtype == dtype
        np.testing.assert_array_equal(frame.image, frames[n])


def test_a_multi_page_tiff_is_a_recording_of_its_pages(tmp_path: Path) -> None:
    pages = [np.full((8, 9), 1000 * (i + 1), np.uint16) for i in range(3)]
    assert cv2.imwritemulti(str(tmp_path / "stack.tif"), pages)
    recording = open_recording(tmp_path / "stack.tif", Overrides(fps=10.0))
    assert (recording.info.frame_count, recording.info.encoding) == (3, "TIFF stack 16 bit")
    read = list(recording)
    assert [f.t_s for f in read] == pytest.approx([0.0, 0.1, 0.2])
    for frame, expected in zip(read, pages, strict=True):
        np.testing.assert_array_equal(frame.image, expected)


def test_colour_images_are_read_as_grey_and_a_single_image_is_a_recording(tmp_path: Path) -> None:
    colour = np.zeros((16, 16, 3), np.uint8)
    colour[..., 1] = 200  # green
    cv2.imwrite(str(tmp_path / "one.png"), colour)
    recording = open_recording(tmp_path / "one.png")
    (frame,) = list(recording)
    assert frame.image.shape == (16, 16)
    assert int(frame.image[0, 0]) == round(0.587 * 200)
    assert recording.info.fps_source == "default (single frame)"


def test_an_image_folder_without_a_rate_warns_that_15_fps_is_assumed(tmp_path: Path) -> None:
    for n in range(2):
        cv2.imwrite(str(tmp_path / f"{n}.png"), _gradient(n))
    info = open_recording(tmp_path).info
    assert info.fps == 15.0 and any("assuming 15 fps; give --fps" in w for w in info.warnings)


def _error(path: Path) -> str:
    with pytest.raises(RecordingError) as info:
        list(open_recording(path))
    assert "\n" not in str(info.value)
    return str(info.value)


def test_images_of_different_sizes_are_refused(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8), np.uint8))
    cv2.imwrite(str(tmp_path / "b.png"), np.zeros((8, 9), np.uint8))
    assert _error(tmp_path) == f"{tmp_path / 'b.png'}: size (9, 8) differs from the first image's (8, 8)"


def test_unreadable_inputs_are_one_line_errors(tmp_path: Path) -> None:
    assert _error(tmp_path / "missing.dcm") == f"{tmp_path / 'missing.dcm'}: no such file or folder"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no DICOM or image" in _error(empty)
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 1000)
    assert _error(tmp_path / "broken.mp4").startswith(f"{tmp_path / 'broken.mp4'}: ")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG nonsense")
    assert _error(tmp_path / "broken.png") == f"{tmp_path / 'broken.png'}: not an image OpenCV can decode"
    (tmp_path / "data.xyz").write_text("x")
    assert "unknown kind of file" in _error(tmp_path / "data.xyz")


def test_the_readers_and_the_run_outputs_need_no_ros() -> None:
    code = (
        "import sys, tavi_perception.recordings, tavi_perception.recordings.outputs, "
        "tavi_perception.devices; "
        "sys.exit(any(m.split('.')[0] in ('rclpy', 'rosbags', 'torch') for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
