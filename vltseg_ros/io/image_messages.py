"""sensor_msgs/Image and CompressedImage <-> numpy arrays, for the node and the bag tools
(no cv_bridge, no ROS import).

Decoding (:func:`image_to_array`, :func:`compressed_to_array`) only reads message fields, so it
works on rclpy messages and on rosbags' message objects alike; :func:`image_layout` gives the
fields of an output image that the rclpy and the rosbags serializers fill their messages with.
8-bit RGB/BGR(A) frames come back as zero-copy views of ``msg.data``; other encodings are
converted with OpenCV into whichever color order needs no extra pass. Every malformed message
raises :class:`~vltseg_ros.errors.InvalidImageError` naming the field that is wrong.
"""

from __future__ import annotations

import operator
import sys
from typing import Literal, NamedTuple

import cv2
import numpy as np

from vltseg_ros.errors import InvalidImageError
from vltseg_ros.io.image_files import MAX_IMAGE_PIXELS, decode_image

ColorOrder = Literal["rgb", "bgr"]

# 8-bit color: encoding -> (color order, bytes per pixel); a pixel's first 3 bytes are colors.
_COLOR8: dict[str, tuple[ColorOrder, int]] = {
    "rgb8": ("rgb", 3),
    "bgr8": ("bgr", 3),
    "rgba8": ("rgb", 4),
    "bgra8": ("bgr", 4),
}
# 16-bit color, reduced to 8 bits by keeping the high byte of each channel.
_COLOR16: dict[str, tuple[ColorOrder, int]] = {
    "rgb16": ("rgb", 6),
    "bgr16": ("bgr", 6),
    "rgba16": ("rgb", 8),
    "bgra16": ("bgr", 8),
}
_MONO = {"mono8": 1, "mono16": 2}
# Packed 4:2:2 YUV, 2 bytes per pixel: ROS "yuv422" is UYVY, "yuv422_yuy2" is YUYV.
_YUV422 = {
    "yuv422": cv2.COLOR_YUV2RGB_UYVY,
    "uyvy": cv2.COLOR_YUV2RGB_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2,
    "yuyv": cv2.COLOR_YUV2RGB_YUY2,
}
# OpenCV's classic Bayer codes name the 2x2 block that starts at pixel (1, 1), while ROS names
# the pattern from pixel (0, 0): ROS rggb is OpenCV "BG" (row 1 of RGGB reads G B G B ..., so
# (1, 1), (1, 2) are B, G). OpenCV 5 also has physical-name aliases with the same values
# (COLOR_BayerRGGB2RGB == COLOR_BayerBG2RGB); the classic names also exist in OpenCV 4.
_BAYER = {
    "bayer_rggb8": cv2.COLOR_BayerBG2RGB,
    "bayer_bggr8": cv2.COLOR_BayerRG2RGB,
    "bayer_gbrg8": cv2.COLOR_BayerGR2RGB,
    "bayer_grbg8": cv2.COLOR_BayerGB2RGB,
}
_BYTES_PER_PIXEL: dict[str, int] = {
    **{encoding: bpp for encoding, (_, bpp) in _COLOR8.items()},
    **{encoding: bpp for encoding, (_, bpp) in _COLOR16.items()},
    **_MONO,
    **dict.fromkeys(_YUV422, 2),
    **dict.fromkeys(_BAYER, 1),
}
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_BYTES_PER_PIXEL)
"""Input encodings of :func:`image_to_array` (sensor_msgs/image_encodings names)."""

# Output encodings: encoding -> (dtype, channels or 0 for (H, W), bytes per pixel).
_OUTPUT: dict[str, tuple[np.dtype, int, int]] = {
    "mono8": (np.dtype(np.uint8), 0, 1),
    "rgb8": (np.dtype(np.uint8), 3, 3),
    "bgr8": (np.dtype(np.uint8), 3, 3),
    "32FC1": (np.dtype(np.float32), 0, 4),
}
_UINT32_LIMIT = 2**32
OUTPUT_ENCODINGS: tuple[str, ...] = tuple(_OUTPUT)
"""Encodings of :func:`image_layout` (the outputs' mask, confidence and overlay)."""


class _Frame(NamedTuple):
    """Validated fields of an Image message; ``buffer`` is a zero-copy uint8 view of data."""

    encoding: str
    height: int
    width: int
    step: int
    big_endian: bool
    buffer: np.ndarray


def image_to_array(
    msg: object, max_pixels: int = MAX_IMAGE_PIXELS
) -> tuple[np.ndarray, ColorOrder]:
    """sensor_msgs/Image -> uint8 (H, W, 3) array, values 0-255, and its color order.

    ``msg`` is read only through height, width, encoding, is_bigendian, step and data (any
    contiguous bytes-like buffer), so rclpy messages and rosbags' message objects both work.

    - rgb8, bgr8, rgba8, bgra8: a zero-copy view of ``msg.data`` in the encoding's color order
      (alpha dropped). With row padding (step > width * bytes per pixel) or alpha the view is
      not C-contiguous. It shares memory with the message: copy it to keep or modify it.
    - rgb16, bgr16, rgba16, bgra16, mono16: 16 bits scaled to 8 by keeping the high byte
      (value >> 8, as most image viewers do), honouring is_bigendian; a new array.
    - mono8, mono16: the gray value copied into 3 channels, "rgb".
    - yuv422 (UYVY) and yuv422_yuy2 (YUYV), also named uyvy / yuyv: OpenCV's BT.601
      video-range (Y 16-235) conversion, "rgb"; the width must be even.
    - bayer_rggb8, bayer_bggr8, bayer_gbrg8, bayer_grbg8 (pattern from pixel (0, 0)): OpenCV's
      bilinear demosaicing, "rgb".

    Raises:
        InvalidImageError: unsupported encoding, a missing or non-integer field, height or
            width 0, more than ``max_pixels`` pixels, step < width * bytes per pixel, data
            length != height * step, odd width for YUV 4:2:2, data not a bytes-like buffer.
    """
    frame = _validated_frame(msg, max_pixels)
    encoding = frame.encoding
    if encoding in _COLOR8:
        order, bpp = _COLOR8[encoding]
        return _pixels(frame, bpp, channels=3), order
    if encoding in _COLOR16:
        order, bpp = _COLOR16[encoding]
        return np.ascontiguousarray(_high_bytes(frame, bpp, channels=3)), order
    if encoding == "mono8":
        return _cv_convert(_pixels(frame, 1, channels=1)[..., 0], cv2.COLOR_GRAY2RGB, frame), "rgb"
    if encoding == "mono16":
        gray = _high_bytes(frame, 2, channels=1)[..., 0]
        return _cv_convert(gray, cv2.COLOR_GRAY2RGB, frame), "rgb"
    if encoding in _YUV422:
        return _cv_convert(_pixels(frame, 2, channels=2), _YUV422[encoding], frame), "rgb"
    bayer = _pixels(frame, 1, channels=1)[..., 0]
    return _cv_convert(bayer, _BAYER[encoding], frame), "rgb"


def compressed_to_array(
    msg: object, max_pixels: int = MAX_IMAGE_PIXELS
) -> tuple[np.ndarray, ColorOrder]:
    """sensor_msgs/CompressedImage -> uint8 (H, W, 3) BGR array, values 0-255, and "bgr".

    ``msg`` is read through its format and data fields only. Whatever the format string says
    ("jpeg", "png", "rgb8; jpeg compressed bgr8", ...), the data's own header decides: its
    size is checked against ``max_pixels`` before anything is decoded (a few hundred bytes can
    declare gigapixels), then OpenCV decodes it (gray images come back as 3 equal channels,
    16-bit PNGs are reduced to 8 bits); see :func:`vltseg_ros.io.image_files.decode_image`.

    Raises:
        InvalidImageError: empty data, a compressedDepth image, an unsupported format, a
            header declaring more than ``max_pixels`` pixels, or data that is truncated or
            corrupt.
    """
    image_format = str(_field(msg, "format"))
    if "compresseddepth" in image_format.lower():
        raise InvalidImageError(
            f"CompressedImage format {image_format!r} is a compressed depth image, not a camera "
            "image; subscribe to the camera's color image topic instead"
        )
    buffer = _byte_buffer(_field(msg, "data"), "CompressedImage data")
    what = f"CompressedImage data (format {image_format!r})"
    return decode_image(buffer, max_pixels=max_pixels, what=what), "bgr"


class ImageLayout(NamedTuple):
    """The sensor_msgs/Image fields of an output array (``data``: a C-contiguous 1-D uint8
    view of it, or of its one contiguous copy)."""

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: np.ndarray


def image_layout(array: np.ndarray, encoding: str) -> ImageLayout:
    """The Image fields of ``array`` in an output encoding (rclpy and rosbags both fill their
    messages from it).

    ``array`` is uint8 (H, W) for mono8, uint8 (H, W, 3) for rgb8 or bgr8 (channels in that
    order), or float32 (H, W) in native byte order for 32FC1 (``is_bigendian`` says which);
    step is width x bytes per pixel.

    Raises:
        InvalidImageError: encoding not one of :data:`OUTPUT_ENCODINGS`, or an array whose
            dtype or shape does not fit it, or with height or width 0.
    """
    height, width, step = _validated_output(array, encoding)
    data = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    big_endian = int(sys.byteorder == "big" and array.dtype.itemsize > 1)
    return ImageLayout(height, width, encoding, big_endian, step, data)


def _validated_output(array: object, encoding: str) -> tuple[int, int, int]:
    """(height, width, step) of an array that fits output ``encoding``, else raises."""
    if not isinstance(encoding, str) or encoding not in _OUTPUT:
        raise InvalidImageError(
            f"output encoding {encoding!r} is not supported; use one of {', '.join(_OUTPUT)}"
        )
    dtype, channels, bpp = _OUTPUT[encoding]
    if not isinstance(array, np.ndarray):
        raise InvalidImageError(f"{encoding} image must be a numpy array, got {type(array)}")
    if array.dtype != dtype:
        raise InvalidImageError(
            f"{encoding} image must have dtype {dtype} (native byte order), got {array.dtype}"
        )
    expected = "(H, W)" if channels == 0 else f"(H, W, {channels})"
    if (channels == 0 and array.ndim != 2) or (
        channels and (array.ndim != 3 or array.shape[2] != channels)
    ):
        raise InvalidImageError(f"{encoding} image must have shape {expected}, got {array.shape}")
    height, width = array.shape[:2]
    if height == 0 or width == 0:
        raise InvalidImageError(f"{encoding} image is empty: shape {array.shape}")
    step = width * bpp
    if height >= _UINT32_LIMIT or step >= _UINT32_LIMIT:
        raise InvalidImageError(
            f"{encoding} image {height}x{width} does not fit sensor_msgs/Image's uint32 fields"
        )
    return height, width, step


def _validated_frame(msg: object, max_pixels: int) -> _Frame:
    """Read and check the fields of an Image message; the data is not copied."""
    encoding = _field(msg, "encoding")
    if not isinstance(encoding, str) or encoding not in _BYTES_PER_PIXEL:
        raise InvalidImageError(
            f"unsupported image encoding {encoding!r}; supported: "
            f"{', '.join(SUPPORTED_ENCODINGS)} (or use the camera's compressed topic)"
        )
    height = _uint_field(msg, "height")
    width = _uint_field(msg, "width")
    if height == 0 or width == 0:
        raise InvalidImageError(f"image is empty: height {height}, width {width}")
    if height * width > max_pixels:
        raise InvalidImageError(
            f"image height {height} x width {width} = {height * width} pixels is over the limit "
            f"of {max_pixels} (max_image_pixels); the size fields are probably corrupt"
        )
    bpp = _BYTES_PER_PIXEL[encoding]
    step = _uint_field(msg, "step")
    if step < width * bpp:
        raise InvalidImageError(
            f"image step {step} is smaller than width {width} x {bpp} bytes per pixel "
            f"({encoding}) = {width * bpp}"
        )
    if encoding in _YUV422 and width % 2:
        raise InvalidImageError(
            f"{encoding} image width must be even (2 pixels share U and V), got {width}"
        )
    big_endian = _uint_field(msg, "is_bigendian") != 0
    buffer = _byte_buffer(_field(msg, "data"), "image data")
    if buffer.size != height * step:
        problem = "too short (truncated?)" if buffer.size < height * step else "too long"
        raise InvalidImageError(
            f"image data is {problem}: {buffer.size} bytes, expected height {height} x step "
            f"{step} = {height * step} ({encoding}, {height}x{width})"
        )
    return _Frame(encoding, height, width, step, big_endian, buffer)


def _pixels(
    frame: _Frame, bpp: int, channels: int, offset: int = 0, channel_stride: int = 1
) -> np.ndarray:
    """Zero-copy uint8 (H, W, channels) view of the frame's rows, skipping row padding."""
    return np.ndarray(
        (frame.height, frame.width, channels),
        dtype=np.uint8,
        buffer=frame.buffer,
        offset=offset,
        strides=(frame.step, bpp, channel_stride),
    )


def _high_bytes(frame: _Frame, bpp: int, channels: int) -> np.ndarray:
    """Zero-copy uint8 view of the high bytes (value >> 8) of 16-bit channels."""
    return _pixels(frame, bpp, channels, offset=0 if frame.big_endian else 1, channel_stride=2)


def _cv_convert(image: np.ndarray, code: int, frame: _Frame) -> np.ndarray:
    """cv2.cvtColor, with OpenCV's errors turned into InvalidImageError."""
    try:
        return cv2.cvtColor(image, code)
    except cv2.error as err:
        raise InvalidImageError(
            f"OpenCV could not convert the {frame.encoding} image {frame.height}x{frame.width}: "
            f"{err}"
        ) from err


def _field(msg: object, name: str) -> object:
    try:
        return getattr(msg, name)
    except AttributeError:
        raise InvalidImageError(
            f"message has no field {name!r}: expected a sensor_msgs Image or CompressedImage, "
            f"got {type(msg).__name__}"
        ) from None


def _uint_field(msg: object, name: str) -> int:
    value = _field(msg, name)
    try:
        number = operator.index(value)
    except TypeError:
        raise InvalidImageError(
            f"image field {name!r} must be an integer, got {type(value).__name__}"
        ) from None
    if number < 0:
        raise InvalidImageError(f"image field {name!r} must be >= 0, got {number}")
    return number


def _byte_buffer(data: object, what: str) -> np.ndarray:
    """Zero-copy 1-D uint8 view of a bytes-like object."""
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError, BufferError) as err:
        raise InvalidImageError(
            f"{what} must be a contiguous bytes-like buffer (array.array('B'), bytes or a uint8 "
            f"numpy array), got {type(data).__name__}: {err}"
        ) from None
