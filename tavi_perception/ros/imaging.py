"""sensor_msgs/Image <-> numpy with cv_bridge's semantics.

``cv_bridge`` is used for the decoding itself when it is importable (a ROS 2 installation); otherwise our
own conversion does the same: the encoding picks dtype and channels, rows are read ``step`` bytes apart
(row padding dropped), ``is_bigendian`` is honoured and the result is in native byte order, and 16-bit
data stays ``uint16``. Every malformed message raises :class:`ImageConversionError` with the reason,
before any decoding, so both paths reject the same inputs.
"""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import Image
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
}
_GREY_FROM_COLOUR = {"bgr8": (0.114, 0.587, 0.299), "rgb8": (0.299, 0.587, 0.114)}


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
    order, 32FC1 -> float32.
    """
    dtype, channels, row_bytes = _layout(msg)
    if _CvBridge is not None and not msg.is_bigendian:  # pragma: no cover - needs a ROS installation
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
    """The image as one grey channel: colour encodings are weighted to luma (uint8); others as is."""
    pixels = image_to_numpy(msg)
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
    if arr.ndim != expected_ndim or (channels == 3 and arr.shape[2] != 3):
        raise ImageConversionError(f"{encoding} needs shape {'(H, W)' if channels == 1 else '(H, W, 3)'}")
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
