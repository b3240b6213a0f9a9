"""Encoded images (JPEG, PNG, WebP, TIFF, BMP, PPM) to arrays, checked before they are decoded.

A few hundred bytes of JPEG or PNG can declare 20000 x 20000 pixels: decoding that first and
checking afterwards costs gigabytes and seconds (a decompression bomb). :func:`decode_image`
reads the dimensions from the header with Pillow's format plugins (no pixel is decoded),
refuses anything over ``max_pixels``, refuses a truncated JPEG (which OpenCV would decode
half grey without an error), and only then decodes with OpenCV. Files go through
:func:`read_image_file`, which also tells a missing file from a folder or an empty file. Every
problem raises :class:`~vltseg_ros.errors.InvalidImageError` with a message naming it. Nothing
here imports ROS. :func:`write_png` writes a PNG file all or nothing.
"""

from __future__ import annotations

import functools
import io
import struct
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from PIL import Image

from vltseg_ros.errors import InvalidImageError
from vltseg_ros.io.files import require_file, write_bytes

MAX_IMAGE_PIXELS = 1 << 25
"""Default largest height x width accepted: 33.5 megapixels (8K UHD, 7680 x 4320, fits).
Decoding that much takes about 0.6 s and 100 MB on one CPU core; raise it only for cameras
that need it."""

FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "PPM")
"""Pillow's names of the formats whose headers are read (and that OpenCV decodes)."""

DecodeMode = Literal["color", "unchanged"]
_CV_FLAGS = {"color": cv2.IMREAD_COLOR, "unchanged": cv2.IMREAD_UNCHANGED}
_EOI, _SOS = b"\xff\xd9", 0xDA


def encoded_image_size(data: bytes, what: str = "image") -> tuple[str, int, int]:
    """(format, height, width) declared by an encoded image's header; no pixel is decoded.

    Raises:
        InvalidImageError: the data is in none of :data:`FORMATS`, or its header is corrupt.
    """
    for name in FORMATS:
        factory, accept = _plugins()[name]
        accepted = accept(data[:16]) if accept is not None else True
        if not accepted or isinstance(accepted, str):  # a str is Pillow's "looks like, but"
            continue
        try:
            width, height = factory(io.BytesIO(data), "").size  # BytesIO shares bytes
        except (SyntaxError, OSError, ValueError, IndexError, TypeError, struct.error) as exc:
            raise InvalidImageError(
                f"{what}: its {name} header is corrupt or truncated ({exc})"
            ) from None
        return name, height, width
    raise InvalidImageError(
        f"{what} is not an image in a supported format ({', '.join(FORMATS)}): "
        f"{len(data)} bytes starting {bytes(data[:8])!r}"
    )


def check_encoded_image(
    data: bytes, *, max_pixels: int = MAX_IMAGE_PIXELS, what: str = "image"
) -> tuple[str, int, int]:
    """(format, height, width) of an encoded image that may be decoded: in a supported
    format, at most ``max_pixels`` pixels, not truncated. Nothing is decoded.

    Raises:
        InvalidImageError: empty data, an unsupported format, a corrupt header, more than
            ``max_pixels`` pixels, or a truncated JPEG or PNG.
    """
    if not data:
        raise InvalidImageError(f"{what} is empty (0 bytes)")
    image_format, height, width = encoded_image_size(data, what)
    if height * width > max_pixels:
        raise InvalidImageError(
            f"{what} is a {image_format} image of {width}x{height} = {height * width} pixels, "
            f"over the limit of {max_pixels} pixels; refused before decoding (a decompression "
            "bomb, or a camera far larger than configured: raise max_image_pixels if it is real)"
        )
    if _truncated(data, image_format):
        raise InvalidImageError(
            f"{what} is a truncated {image_format} image ({len(data)} bytes, {width}x{height}): "
            "its data ends before the image's end marker"
        )
    return image_format, height, width


def decode_image(
    data: bytes | bytearray | memoryview | np.ndarray,
    *,
    max_pixels: int = MAX_IMAGE_PIXELS,
    mode: DecodeMode = "color",
    what: str = "image",
) -> np.ndarray:
    """Decode an encoded image after :func:`check_encoded_image`.

    Args:
        data: the encoded file's bytes (any bytes-like object or a 1-D uint8 array).
        max_pixels: largest height x width accepted (checked on the header, before decoding).
        mode: "color": uint8 (H, W, 3) **BGR** (grey and palette images become 3 equal /
            looked-up channels, 16-bit ones are reduced to 8 bits, EXIF orientation is
            applied); "unchanged": the stored channels and depth, (H, W) or (H, W, C), BGR(A)
            channel order, uint8 or uint16.
        what: how messages name the data (a path, "CompressedImage data", ...).

    Raises:
        InvalidImageError: see :func:`check_encoded_image`, or data OpenCV cannot decode.
    """
    raw = _as_bytes(data, what)
    image_format, height, width = check_encoded_image(raw, max_pixels=max_pixels, what=what)
    try:
        image = cv2.imdecode(np.frombuffer(raw, np.uint8), _CV_FLAGS[mode])
    except cv2.error as exc:
        raise InvalidImageError(
            f"{what}: OpenCV could not decode the {image_format} data: {exc}"
        ) from None
    if image is None:
        raise InvalidImageError(
            f"{what}: the {image_format} data ({len(raw)} bytes, {width}x{height}) is corrupt or "
            "truncated; OpenCV could not decode it"
        )
    return image


def read_image_file(
    path: str | Path, *, max_pixels: int = MAX_IMAGE_PIXELS, mode: DecodeMode = "color"
) -> np.ndarray:
    """Read and decode an image file; see :func:`decode_image` for ``mode`` and the layout.

    Raises:
        InvalidImageError: the path is missing, a folder or unreadable, or the file is empty,
            not an image, too large, truncated or corrupt; the message names the file.
    """
    data, what = _file_bytes(path)
    return decode_image(data, max_pixels=max_pixels, mode=mode, what=what)


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Write a (H, W) or (H, W, 3) uint8 image (3 channels in BGR order, as OpenCV expects) as
    a PNG file, all or nothing (:func:`vltseg_ros.io.files.write_bytes`); returns ``path``.

    Raises:
        InvalidImageError: OpenCV cannot encode the array.
        OSError: the file cannot be written (naming ``path``).
    """
    ok, data = cv2.imencode(".png", np.ascontiguousarray(image))
    if not ok:
        raise InvalidImageError(f"OpenCV could not PNG-encode a {image.shape} {image.dtype} array")
    return write_bytes(path, data.tobytes())


def open_image_file(path: str | Path, *, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """A Pillow image of a file that passed :func:`check_encoded_image`, not yet decoded (for
    readers that need Pillow's modes, e.g. palette indices of label maps).

    Raises:
        InvalidImageError: as :func:`read_image_file`.
    """
    data, what = _file_bytes(path)
    check_encoded_image(data, max_pixels=max_pixels, what=what)
    try:
        return Image.open(io.BytesIO(data))
    except (OSError, ValueError) as exc:  # Pillow's own limits, unreadable data
        raise InvalidImageError(f"{what}: Pillow cannot open it: {exc}") from None


def _file_bytes(path: str | Path) -> tuple[bytes, str]:
    """The bytes of an image file and how messages name it."""
    path = require_file(path, "image", InvalidImageError)
    try:
        return path.read_bytes(), f"image {path}"
    except OSError as exc:
        raise InvalidImageError(f"cannot read image {path}: {exc.strerror or exc}") from None


@functools.cache
def _plugins() -> dict[str, tuple]:
    """Pillow's (factory, accept) pair of each of :data:`FORMATS` (plugins loaded once)."""
    Image.init()
    return {name: Image.OPEN[name] for name in FORMATS}


def _as_bytes(data: object, what: str) -> bytes:
    if isinstance(data, bytes):
        return data
    try:
        return memoryview(data).cast("B").tobytes()
    except (TypeError, ValueError) as exc:
        raise InvalidImageError(
            f"{what} must be bytes-like (bytes, array.array('B') or a uint8 array), got "
            f"{type(data).__name__}: {exc}"
        ) from None


def _truncated(data: bytes, image_format: str) -> bool:
    """True when a JPEG has no end-of-image marker after its first scan, or a PNG has no IEND
    chunk. (Data appended after the end, as some phones do, is fine.)"""
    if image_format == "PNG":
        return data.rfind(b"IEND") < 0
    if image_format != "JPEG":
        return False
    position = 2  # after SOI; walk the marker segments to the first scan (skips EXIF images)
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return False  # not a marker: leave the verdict to the decoder
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker == 0xD9:  # an end before any scan: the decoder will refuse it
            return False
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length field
            position += 2
            continue
        length = data[position + 2] << 8 | data[position + 3]
        if marker == _SOS:  # entropy-coded data never holds FF D9 (FF bytes are stuffed)
            return data.find(_EOI, position + 2 + length) < 0
        position += 2 + length
    return True
