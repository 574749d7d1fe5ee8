"""sensor_msgs/Image and sensor_msgs/CompressedImage <-> numpy with cv_bridge's semantics.

``cv_bridge`` is used for the decoding itself when it is importable (a ROS 2 installation); otherwise our
own conversion does the same: the encoding picks dtype and channels, rows are read ``step`` bytes apart
(row padding dropped), ``is_bigendian`` is honoured and the result is in native byte order, and 16-bit
data stays ``uint16``. Every malformed message raises :class:`ImageConversionError` with the reason,
before any decoding, so both paths reject the same inputs.

Frame grabbers send colour or YUV 4:2:2 video: ``bgr8``/``rgb8`` become grey by the luma weights,
``yuv422`` (ROS's name for UYVY: U Y0 V Y1), ``yuv422_yuy2`` (YUYV: Y0 U Y1 V) and the aliases
``uyvy``/``yuyv`` by their Y bytes. :func:`compressed_to_grey` decodes a CompressedImage (JPEG, PNG
8 or 16 bit, anything OpenCV reads; the ``format`` field is not trusted) to one grey channel.
"""

from __future__ import annotations

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

try:  # a ROS 2 installation's cv_bridge, when present
    from cv_bridge import CvBridge as _CvBridge
except ImportError:  # pragma: no cover - depends on the installation
    _CvBridge = None

# encoding -> (numpy dtype, channels)
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "mono8": (np.dtype(np.uint8), 1),
    "8UC1": (np.dtype(np.uint8), 1),
    "mono16": (np.dtype(np.uint16), 1),
    "16UC1": (np.dtype(np.uint16), 1),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgb8": (np.dtype(np.uint8), 3),
    "32FC1": (np.dtype(np.float32), 1),
    "yuv422": (np.dtype(np.uint8), 2),
    "uyvy": (np.dtype(np.uint8), 2),
    "yuv422_yuy2": (np.dtype(np.uint8), 2),
    "yuyv": (np.dtype(np.uint8), 2),
}
_GREY_FROM_COLOUR = {"bgr8": (0.114, 0.587, 0.299), "rgb8": (0.299, 0.587, 0.114)}
_LUMA_BYTE = {"yuv422": 1, "uyvy": 1, "yuv422_yuy2": 0, "yuyv": 0}  # which byte of each pair is Y
_CV_BRIDGE_ENCODINGS = frozenset(ENCODINGS) - {"uyvy", "yuyv"}  # the aliases are ours


class ImageConversionError(ValueError):
    """A sensor_msgs/Image that cannot be converted; the message says why."""


def _layout(msg: Image) -> tuple[np.dtype, int, int]:
    """Validate ``msg`` and return (dtype, channels, bytes per row of pixels)."""
    if msg.encoding not in ENCODINGS:
        raise ImageConversionError(
            f"unsupported encoding {msg.encoding!r}; supported: {', '.join(ENCODINGS)}"
        )
    dtype, channels = ENCODINGS[msg.encoding]
    if msg.width == 0 or msg.height == 0:
        raise ImageConversionError(f"zero-size image ({msg.width}x{msg.height})")
    row_bytes = msg.width * channels * dtype.itemsize
    if msg.step < row_bytes:
        raise ImageConversionError(
            f"step {msg.step} < width x bytes per pixel = {row_bytes} ({msg.encoding}, width {msg.width})"
        )
    needed = msg.step * (msg.height - 1) + row_bytes
    if len(msg.data) < needed:
        raise ImageConversionError(
            f"data has {len(msg.data)} bytes, {msg.encoding} {msg.width}x{msg.height} "
            f"with step {msg.step} needs {msg.step * msg.height}"
        )
    return dtype, channels, row_bytes


def image_to_numpy(msg: Image) -> np.ndarray:
    """The image as an array in its own encoding: (H, W) or (H, W, 3), native byte order, a copy.

    mono8/8UC1 -> uint8, mono16/16UC1 -> uint16, bgr8/rgb8 -> uint8 (H, W, 3) in the message's channel
    order, 32FC1 -> float32, the YUV 4:2:2 encodings -> uint8 (H, W, 2) byte pairs as sent.
    """
    dtype, channels, row_bytes = _layout(msg)
    if (
        _CvBridge is not None and not msg.is_bigendian and msg.encoding in _CV_BRIDGE_ENCODINGS
    ):  # pragma: no cover - needs a ROS installation
        return np.array(_CvBridge().imgmsg_to_cv2(msg, desired_encoding="passthrough"), copy=True)
    buf = np.frombuffer(bytes(msg.data), dtype=np.uint8, count=msg.step * (msg.height - 1) + row_bytes)
    if msg.step * msg.height <= len(buf):
        rows = buf.reshape(msg.height, msg.step)[:, :row_bytes]
    else:  # the last row may omit its padding
        rows = np.stack([buf[r * msg.step : r * msg.step + row_bytes] for r in range(msg.height)])
    wire = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    pixels = np.ascontiguousarray(rows).view(wire).astype(dtype, copy=False)
    shape = (msg.height, msg.width) if channels == 1 else (msg.height, msg.width, channels)
    return np.array(pixels.reshape(shape), copy=True)


def image_to_grey(msg: Image) -> np.ndarray:
    """The image as one grey channel: colour weighted to luma, YUV its Y bytes (uint8); others as is."""
    pixels = image_to_numpy(msg)
    if msg.encoding in _LUMA_BYTE:
        return np.ascontiguousarray(pixels[:, :, _LUMA_BYTE[msg.encoding]])
    if pixels.ndim == 3:
        weights = np.asarray(_GREY_FROM_COLOUR[msg.encoding], dtype=np.float32)
        return np.clip(pixels.astype(np.float32) @ weights + 0.5, 0, 255).astype(np.uint8)
    return pixels


def numpy_to_image(array: np.ndarray, encoding: str, header: Header | None = None) -> Image:
    """Build a sensor_msgs/Image (little-endian, no row padding) from an array in ``encoding``."""
    if encoding not in ENCODINGS:
        raise ImageConversionError(f"unsupported encoding {encoding!r}; supported: {', '.join(ENCODINGS)}")
    dtype, channels = ENCODINGS[encoding]
    arr = np.asarray(array)
    expected_ndim = 2 if channels == 1 else 3
    if arr.ndim != expected_ndim or (channels > 1 and arr.shape[2] != channels):
        raise ImageConversionError(
            f"{encoding} needs shape {'(H, W)' if channels == 1 else f'(H, W, {channels})'}"
        )
    if arr.dtype != dtype:
        raise ImageConversionError(f"{encoding} needs dtype {dtype}, got {arr.dtype}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageConversionError(f"zero-size image {arr.shape}")
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = msg.width * channels * dtype.itemsize
    msg.data = np.ascontiguousarray(arr, dtype=dtype.newbyteorder("<")).tobytes()
    return msg


def compressed_to_grey(msg: CompressedImage) -> np.ndarray:
    """A CompressedImage decoded to one grey channel: 8-bit data -> uint8, 16-bit PNG -> uint16.

    Colour is weighted to luma. Raises :class:`ImageConversionError` for empty or undecodable data.
    """
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    if data.size == 0:
        raise ImageConversionError(f"compressed image ({msg.format or 'no format'}) has no data")
    pixels = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise ImageConversionError(
            f"cannot decode the compressed image ({msg.format or 'no format'}, {data.size} bytes)"
        )
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGRA2GRAY)
    elif pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY)
    if pixels.dtype not in (np.uint8, np.uint16):
        raise ImageConversionError(f"compressed image decodes to {pixels.dtype}; expected 8 or 16 bit")
    return pixels


def grey_to_compressed(image: np.ndarray, fmt: str, header: Header | None = None) -> CompressedImage:
    """Encode an (H, W) uint8/uint16 grey frame as ``fmt`` "png" or "jpeg" (8 bit only), the way
    compressed_image_transport names it."""
    if fmt not in ("png", "jpeg"):
        raise ImageConversionError(f"unsupported compressed format {fmt!r}; supported: png, jpeg")
    ok, buffer = cv2.imencode(".png" if fmt == "png" else ".jpg", np.asarray(image))
    if not ok:
        raise ImageConversionError(f"cannot encode a {image.dtype} {image.shape} image as {fmt}")
    encoding = "mono16" if image.dtype == np.uint16 else "mono8"
    msg = CompressedImage(format=f"{encoding}; {fmt} compressed")
    if header is not None:
        msg.header = header
    msg.data = buffer.tobytes()
    return msg
