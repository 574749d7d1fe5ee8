"""Image conversion keeps cv_bridge's semantics and rejects every malformed message with a reason."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from tavi_perception.ros.imaging import (
    ENCODINGS,
    ImageConversionError,
    compressed_to_grey,
    grey_to_compressed,
    image_to_grey,
    image_to_numpy,
    numpy_to_image,
)

RNG = np.random.default_rng(7)


def _sample(encoding: str, height: int = 5, width: int = 7) -> np.ndarray:
    dtype, channels = ENCODINGS[encoding]
    shape = (height, width) if channels == 1 else (height, width, channels)
    if dtype == np.float32:
        return RNG.normal(size=shape).astype(np.float32)
    return RNG.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)


def _raw_message(array: np.ndarray, encoding: str, *, pad: int = 0, big_endian: bool = False) -> Image:
    """Build a message by hand (independent of numpy_to_image) with optional row padding."""
    wire = array.astype(array.dtype.newbyteorder(">" if big_endian else "<"))
    rows = wire.reshape(array.shape[0], -1).view(np.uint8)
    padded = np.concatenate([rows, np.full((rows.shape[0], pad), 0xAB, np.uint8)], axis=1)
    msg = Image()
    msg.height, msg.width = array.shape[0], array.shape[1]
    msg.encoding = encoding
    msg.is_bigendian = int(big_endian)
    msg.step = padded.shape[1]
    msg.data = padded.tobytes()
    return msg


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_every_encoding_round_trips_with_dtype_and_shape(encoding: str) -> None:
    original = _sample(encoding)
    header = Header(frame_id="fluoro")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    msg = numpy_to_image(original, encoding, header)
    back = image_to_numpy(msg)
    assert back.dtype == ENCODINGS[encoding][0]
    assert back.shape == original.shape
    np.testing.assert_array_equal(back, original)
    assert msg.header.frame_id == "fluoro" and msg.header.stamp.nanosec == 345
    assert msg.step == original.shape[1] * original.itemsize * ENCODINGS[encoding][1]


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_row_padding_in_step_is_dropped(encoding: str) -> None:
    original = _sample(encoding)
    msg = _raw_message(original, encoding, pad=5)
    np.testing.assert_array_equal(image_to_numpy(msg), original)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1", "32FC1"])
def test_big_endian_data_is_read_in_native_order(encoding: str) -> None:
    original = _sample(encoding)
    msg = _raw_message(original, encoding, big_endian=True, pad=2)
    back = image_to_numpy(msg)
    np.testing.assert_array_equal(back, original)
    assert back.dtype.isnative


def test_mono16_stays_uint16_with_full_range() -> None:
    original = np.array([[0, 1, 4095, 65535]], dtype=np.uint16)
    back = image_to_grey(numpy_to_image(original, "mono16"))
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, original)


@pytest.mark.parametrize(("encoding", "channel_order"), [("bgr8", (2, 1, 0)), ("rgb8", (0, 1, 2))])
def test_colour_converts_to_luma_grey(encoding: str, channel_order: tuple[int, int, int]) -> None:
    rgb = np.zeros((1, 3, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[0, 1] = (0, 255, 0)
    rgb[0, 2] = (0, 0, 255)
    grey = image_to_grey(numpy_to_image(rgb[..., list(channel_order)], encoding))
    assert grey.dtype == np.uint8
    np.testing.assert_array_equal(grey[0], [76, 150, 29])  # 0.299, 0.587, 0.114 of 255


def test_last_row_without_padding_is_accepted() -> None:
    original = _sample("mono8")
    msg = _raw_message(original, "mono8", pad=3)
    msg.data = bytes(msg.data)[:-3]
    np.testing.assert_array_equal(image_to_numpy(msg), original)


def _malformed(kind: str) -> Image:
    msg = numpy_to_image(_sample("mono16"), "mono16")
    if kind == "unknown encoding":
        msg.encoding = "bayer_rggb8"
    elif kind == "zero width":
        msg.width = 0
    elif kind == "zero height":
        msg.height = 0
    elif kind == "step too small":
        msg.step = msg.width * 2 - 1
    elif kind == "data too short":
        msg.data = bytes(msg.data)[: msg.step * msg.height - 3]
    elif kind == "empty data":
        msg.data = b""
    return msg


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("unknown encoding", "unsupported encoding"),
        ("zero width", "zero-size"),
        ("zero height", "zero-size"),
        ("step too small", "step"),
        ("data too short", "bytes"),
        ("empty data", "bytes"),
    ],
)
def test_malformed_message_raises_one_error_type_with_reason(kind: str, reason: str) -> None:
    with pytest.raises(ImageConversionError, match=reason):
        image_to_numpy(_malformed(kind))


@pytest.mark.parametrize(
    ("array", "encoding", "reason"),
    [
        (np.zeros((4, 4), np.uint8), "mono16", "dtype"),
        (np.zeros((4, 4, 3), np.uint8), "mono8", "shape"),
        (np.zeros((0, 4), np.uint8), "mono8", "zero-size"),
        (np.zeros((4, 4), np.uint8), "jpeg", "unsupported"),
    ],
)
def test_reverse_conversion_rejects_mismatched_arrays(array: np.ndarray, encoding: str, reason: str) -> None:
    with pytest.raises(ImageConversionError, match=reason):
        numpy_to_image(array, encoding)


@pytest.mark.parametrize(
    ("encoding", "luma_byte"), [("yuv422", 1), ("uyvy", 1), ("yuv422_yuy2", 0), ("yuyv", 0)]
)
def test_yuv422_frame_grabber_encodings_convert_to_their_luma(encoding: str, luma_byte: int) -> None:
    luma = RNG.integers(0, 256, size=(6, 8), dtype=np.uint8)
    chroma = np.full((6, 8), 128, np.uint8)  # U and V alternate in the other byte; they must not leak in
    chroma[:, ::2] = 30
    pairs = np.stack([luma, chroma] if luma_byte == 0 else [chroma, luma], axis=2)
    grey = image_to_grey(_raw_message(pairs, encoding, pad=3))
    assert grey.dtype == np.uint8 and grey.shape == (6, 8)
    np.testing.assert_array_equal(grey, luma)


@pytest.mark.parametrize(
    ("fmt", "dtype"),
    [("png", np.uint8), ("png", np.uint16), ("jpeg", np.uint8)],
    ids=["png8", "png16", "jpeg"],
)
def test_compressed_images_decode_to_grey_keeping_16_bit(fmt: str, dtype: type) -> None:
    y, x = np.mgrid[0:48, 0:64]
    image = ((x * 3 + y * 2) * (np.iinfo(dtype).max / 250)).astype(dtype)
    grey = compressed_to_grey(grey_to_compressed(image, fmt))
    assert grey.dtype == dtype and grey.shape == image.shape
    tolerance = 0 if fmt == "png" else 8  # jpeg is lossy
    assert np.max(np.abs(grey.astype(np.int64) - image)) <= tolerance


def test_colour_compressed_images_convert_to_luma() -> None:
    bgr = np.zeros((16, 16, 3), np.uint8)
    bgr[..., 1] = 200  # pure green
    msg = CompressedImage(format="bgr8; png compressed", data=cv2.imencode(".png", bgr)[1].tobytes())
    assert int(compressed_to_grey(msg)[0, 0]) == round(0.587 * 200)


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"", "no data"), (b"\x89PNG\r\n\x1a\n truncated", "cannot decode")],
    ids=["empty", "corrupt"],
)
def test_undecodable_compressed_images_raise_with_the_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ImageConversionError, match=reason):
        compressed_to_grey(CompressedImage(format="png", data=data))
