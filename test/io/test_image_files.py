"""Encoded images are checked from their header before decoding: bombs, truncation, files."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from vltseg_ros.errors import InvalidImageError
from vltseg_ros.io import image_files
from vltseg_ros.io.image_files import (
    MAX_IMAGE_PIXELS,
    decode_image,
    encoded_image_size,
    open_image_file,
    read_image_file,
)


def jpeg_bomb(height: int = 20_000, width: int = 20_000) -> bytes:
    """A valid 8x8 JPEG whose frame header (SOF0) declares ``height`` x ``width``."""
    ok, data = cv2.imencode(".jpg", np.full((8, 8, 3), 128, np.uint8))
    assert ok
    data = bytearray(data.tobytes())
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def png_bomb(side: int = 20_000) -> bytes:
    """A complete, valid 1-bit grey PNG of side x side zeros: a few hundred kB that decode to
    side^2 pixels (x3 bytes in color)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload))
            + kind
            + payload
            + struct.pack(">I", zlib.crc32(kind + payload))
        )

    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(1)
    idat = b"".join(compressor.compress(row * 1000) for _ in range(side // 1000))
    idat += compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def _encoded(extension: str, shape: tuple[int, int] = (48, 64)) -> bytes:
    image = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    ok, data = cv2.imencode(extension, image)
    assert ok
    return data.tobytes()


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if anything reaches OpenCV's decoder."""

    def refuse(*args, **kwargs):
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(image_files.cv2, "imdecode", refuse)


@pytest.mark.parametrize(("bomb", "kind"), [(jpeg_bomb, "JPEG"), (png_bomb, "PNG")])
def test_decompression_bombs_are_refused_from_the_header(bomb, kind, no_decoding) -> None:
    data = bomb()
    assert len(data) < 400_000
    with pytest.raises(InvalidImageError) as caught:
        decode_image(data, what="frame")
    message = str(caught.value)
    assert f"frame is a {kind} image of 20000x20000 = 400000000 pixels" in message
    assert f"over the limit of {MAX_IMAGE_PIXELS} pixels; refused before decoding" in message


def test_the_limit_is_inclusive_and_configurable() -> None:
    data = _encoded(".png", (48, 64))
    assert decode_image(data, max_pixels=48 * 64).shape == (48, 64, 3)
    with pytest.raises(InvalidImageError, match="64x48 = 3072 pixels, over the limit of 3071"):
        decode_image(data, max_pixels=48 * 64 - 1)
    assert encoded_image_size(jpeg_bomb(30, 50)) == ("JPEG", 30, 50)


@pytest.mark.parametrize("extension", [".jpg", ".png", ".webp", ".tif", ".bmp", ".ppm"])
def test_supported_formats_decode_as_opencv_does(extension: str) -> None:
    data = _encoded(extension)
    expected = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(decode_image(data), expected)
    np.testing.assert_array_equal(decode_image(bytearray(data)), expected)
    np.testing.assert_array_equal(decode_image(np.frombuffer(data, np.uint8)), expected)


@pytest.mark.parametrize(("extension", "kind"), [(".jpg", "JPEG"), (".png", "PNG")])
def test_truncated_images_are_named_truncated(extension: str, kind: str) -> None:
    data = _encoded(extension, (256, 256))
    with pytest.raises(InvalidImageError, match=f"is a truncated {kind} image"):
        decode_image(data[: int(len(data) * 0.9)])


def test_a_jpeg_with_an_exif_thumbnail_is_judged_by_its_own_scan() -> None:
    """The thumbnail inside APP1 has its own scan and end marker: they must not count."""
    thumbnail = _encoded(".jpg", (16, 16))
    main = _encoded(".jpg", (256, 256))
    payload = b"Exif\x00\x00" + thumbnail
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    with_thumbnail = main[:2] + app1 + main[2:]
    assert decode_image(with_thumbnail).shape == (256, 256, 3)
    with pytest.raises(InvalidImageError, match="truncated JPEG"):
        decode_image(with_thumbnail[: len(with_thumbnail) - 4000])


def test_data_after_the_end_marker_is_accepted() -> None:
    data = _encoded(".jpg") + b"appended video of a motion photo \xff\xda\x00"
    assert decode_image(data).shape == (48, 64, 3)


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        (b"", "is empty (0 bytes)"),
        (b"hello world\n", "not an image in a supported format"),
        (b"\xff\xd8\xffgarbage", "JPEG header is corrupt or truncated"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "PNG header is corrupt or truncated"),
        (b"GIF89a" + bytes(20), "not an image in a supported format (JPEG, PNG"),
    ],
)
def test_bad_data_says_what_is_wrong(data: bytes, phrase: str) -> None:
    with pytest.raises(InvalidImageError, match=re.escape(phrase)):
        decode_image(data)


def test_corrupt_pixel_data_is_reported_as_corrupt() -> None:
    data = bytearray(_encoded(".png", (64, 64)))
    data[60:200] = bytes(140)  # inside the compressed image data; IEND stays
    with pytest.raises(InvalidImageError, match=r"PNG data .* is corrupt or truncated"):
        decode_image(bytes(data))


def test_files_missing_folders_and_empty_files(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "bomb.png").write_bytes(jpeg_bomb())
    good = tmp_path / "good.png"
    good.write_bytes(_encoded(".png"))
    cases = {
        tmp_path / "missing.png": "does not exist",
        tmp_path: "is a folder, not a file",
        tmp_path / "empty.png": "is empty (0 bytes)",
        tmp_path / "bomb.png": "20000x20000 = 400000000 pixels, over the limit",
    }
    for path, phrase in cases.items():
        with pytest.raises(InvalidImageError, match=re.escape(phrase)) as caught:
            read_image_file(path)
        assert str(path) in str(caught.value)
    assert read_image_file(good).shape == (48, 64, 3)
    assert read_image_file(good, mode="unchanged").shape == (48, 64, 3)
    with open_image_file(good) as image:
        assert image.size == (64, 48)
    with pytest.raises(InvalidImageError, match="over the limit"):
        open_image_file(tmp_path / "bomb.png")
