"""Image message <-> numpy conversions, cross-checked against rosbags-image (independent code).

rosbags-image ignores ``step`` (it reads height * width * bpp bytes from the start of data), so
padded messages are compared with rosbags' result for the same frame without padding.
"""

from __future__ import annotations

import array
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from vltseg_ros.errors import InvalidImageError
from vltseg_ros.io.image_messages import (
    SUPPORTED_ENCODINGS,
    compressed_to_array,
    image_to_array,
)
from vltseg_ros.ros.node.messages import array_to_image

rosbags_image = pytest.importorskip("rosbags.image")
typesys = pytest.importorskip("rosbags.typesys")

STORE = typesys.get_typestore(typesys.Stores.ROS2_KILTED)
BagImage = STORE.types["sensor_msgs/msg/Image"]
BagCompressed = STORE.types["sensor_msgs/msg/CompressedImage"]
BagHeader = STORE.types["std_msgs/msg/Header"]
BagTime = STORE.types["builtin_interfaces/msg/Time"]

HEIGHT, WIDTH = 12, 16
PAD_BYTE = 0xAB  # row padding filler
BAYER = ("rggb", "bggr", "gbrg", "grbg")
BPP = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "mono16": 2}
BPP |= {"rgb16": 6, "bgr16": 6, "rgba16": 8, "bgra16": 8}
YUV422 = ("yuv422", "uyvy", "yuv422_yuy2", "yuyv")
UYVY = YUV422[:2]
BPP |= dict.fromkeys(YUV422, 2)
BPP |= {f"bayer_{pattern}8": 1 for pattern in BAYER}


def bag_image(encoding: str, rows: np.ndarray, big_endian: bool = False, pad: int = 0):
    """rosbags Image from uint8 rows (H, W * bpp), each row followed by ``pad`` filler bytes."""
    height, row_bytes = rows.shape
    padded = np.full((height, row_bytes + pad), PAD_BYTE, np.uint8)
    padded[:, :row_bytes] = rows
    return BagImage(
        header=BagHeader(stamp=BagTime(sec=1, nanosec=2), frame_id="camera"),
        height=height,
        width=row_bytes // BPP[encoding],
        encoding=encoding,
        is_bigendian=int(big_endian),
        step=row_bytes + pad,
        data=padded.reshape(-1),
    )


def mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """Bayer raw (H, W) uint8 of an RGB image; ``pattern`` names the 2x2 block at pixel (0, 0)."""
    raw = np.empty(rgb.shape[:2], np.uint8)
    for (dy, dx), color in zip(((0, 0), (0, 1), (1, 0), (1, 1)), pattern, strict=True):
        raw[dy::2, dx::2] = rgb[dy::2, dx::2, "rgb".index(color)]
    return raw


def pack_yuv422(y: np.ndarray, u: np.ndarray, v: np.ndarray, uyvy: bool) -> np.ndarray:
    """Rows (H, 2 W) of packed 4:2:2 from Y (H, W) and U, V (H, W / 2)."""
    y0, y1 = y[:, 0::2], y[:, 1::2]
    order = (u, y0, v, y1) if uyvy else (y0, u, y1, v)
    return np.stack(order, axis=-1).reshape(y.shape[0], -1)


def camera_rows(encoding: str, rng: np.random.Generator, big_endian: bool) -> np.ndarray:
    """Random frame packed the way a camera driver fills Image.data (rows without padding)."""
    rgb = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    if encoding.endswith("16"):
        channels = {"mono16": 1, "rgb16": 3, "bgr16": 3}.get(encoding, 4)
        values = rng.integers(0, 65536, (HEIGHT, WIDTH, channels), dtype=np.uint16)
        return values.astype(">u2" if big_endian else "<u2").view(np.uint8).reshape(HEIGHT, -1)
    if encoding.startswith("bayer_"):
        return mosaic(rgb, encoding[6:10])
    if encoding in YUV422:
        sizes = (WIDTH, WIDTH // 2, WIDTH // 2)
        y, u, v = (rng.integers(0, 256, (HEIGHT, n), dtype=np.uint8) for n in sizes)
        return pack_yuv422(y, u, v, uyvy=encoding in UYVY)
    alpha = rng.integers(0, 256, (HEIGHT, WIDTH, 1), dtype=np.uint8)
    pixels = {
        "rgb8": rgb,
        "bgr8": rgb[..., ::-1],
        "rgba8": np.concatenate([rgb, alpha], axis=2),
        "bgra8": np.concatenate([rgb[..., ::-1], alpha], axis=2),
        "mono8": rgb[..., :1],
    }[encoding]
    return np.ascontiguousarray(pixels).reshape(HEIGHT, -1)


CASES = [(encoding, False) for encoding in SUPPORTED_ENCODINGS]
CASES += [(encoding, True) for encoding in SUPPORTED_ENCODINGS if encoding.endswith("16")]


def test_supported_encodings_are_all_tested() -> None:
    assert set(SUPPORTED_ENCODINGS) == set(BPP)
    assert {"mono16", "yuv422", "yuv422_yuy2", "bayer_rggb8", "rgb16"} <= set(BPP)


@pytest.mark.parametrize("pad", [0, 5], ids=["compact", "padded"])
@pytest.mark.parametrize(("encoding", "big_endian"), CASES, ids=lambda v: str(v))
def test_matches_rosbags_image(encoding: str, big_endian: bool, pad: int, rng) -> None:
    rows = camera_rows(encoding, rng, big_endian)
    image, order = image_to_array(bag_image(encoding, rows, big_endian, pad))

    reference = rosbags_image.message_to_cvimage(
        bag_image(encoding, rows, big_endian), f"{order}8"
    )
    assert image.shape == (HEIGHT, WIDTH, 3)
    assert image.dtype == np.uint8
    if encoding.endswith("16"):
        # We keep the high byte (v >> 8); rosbags computes int(v * 255 / 65535) = floor(v / 257).
        # v / 256 - v / 257 < 1, so the two differ by at most 1.
        assert np.abs(image.astype(int) - reference.astype(int)).max() <= 1
        high = rows.view(">u2" if big_endian else "<u2").reshape(HEIGHT, WIDTH, -1) >> 8
        np.testing.assert_array_equal(image, np.broadcast_to(high[..., :3], image.shape))
    else:  # same OpenCV conversion (or none) in both implementations: exact
        np.testing.assert_array_equal(image, reference)


@pytest.mark.parametrize("pad", [0, 7])
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_8bit_color_is_a_zero_copy_view(encoding: str, pad: int, rng) -> None:
    sensor_msgs = pytest.importorskip("sensor_msgs.msg")
    rows = camera_rows(encoding, rng, big_endian=False)
    step = rows.shape[1] + pad
    padded = np.full((HEIGHT, step), PAD_BYTE, np.uint8)
    padded[:, : rows.shape[1]] = rows
    msg = sensor_msgs.Image(height=HEIGHT, width=WIDTH, encoding=encoding, step=step)
    msg.data = array.array("B", padded.tobytes())  # how rclpy subscriptions deliver data

    image, order = image_to_array(msg)

    assert order == encoding[:3]
    assert np.shares_memory(image, np.frombuffer(msg.data, np.uint8))
    pixels = rows.reshape(HEIGHT, WIDTH, -1)[..., :3]
    np.testing.assert_array_equal(image, pixels)
    bag_view, _ = image_to_array(bag_image(encoding, rows, pad=pad))  # rosbags: ndarray data
    np.testing.assert_array_equal(bag_view, pixels)


@pytest.mark.parametrize("pattern", BAYER)
def test_bayer_demosaics_the_physical_pattern(pattern: str) -> None:
    # Uniform color: bilinear demosaicing reproduces it exactly away from the border only if
    # OpenCV was given the right pattern (OpenCV's classic codes are shifted: rggb is "BG").
    rgb = np.empty((8, 10, 3), np.uint8)
    rgb[...] = (200, 100, 30)
    image, order = image_to_array(bag_image(f"bayer_{pattern}8", mosaic(rgb, pattern)))
    assert order == "rgb"
    np.testing.assert_array_equal(image[2:-2, 2:-2], rgb[2:-2, 2:-2])
    # A smooth gradient comes back close to the original (interpolation error only).
    yy, xx = np.mgrid[0:32, 0:32]
    gradient = np.stack([4 * xx, 4 * yy, 2 * (xx + yy)], axis=-1).astype(np.uint8)
    image, _ = image_to_array(bag_image(f"bayer_{pattern}8", mosaic(gradient, pattern)))
    assert np.abs(image[2:-2, 2:-2].astype(int) - gradient[2:-2, 2:-2]).max() <= 4
    physical = getattr(cv2, f"COLOR_Bayer{pattern.upper()}2RGB", None)  # alias in newer OpenCV
    shifted = {"rggb": "BG", "bggr": "RG", "gbrg": "GR", "grbg": "GB"}[pattern]
    assert physical in (None, getattr(cv2, f"COLOR_Bayer{shifted}2RGB"))


@pytest.mark.parametrize("encoding", ["yuv422", "yuv422_yuy2"])
def test_yuv422_is_bt601_video_range(encoding: str, rng) -> None:
    y = rng.integers(16, 236, (HEIGHT, WIDTH)).astype(np.uint8)
    u, v = (rng.integers(16, 241, (HEIGHT, WIDTH // 2)).astype(np.uint8) for _ in "uv")
    image, order = image_to_array(bag_image(encoding, pack_yuv422(y, u, v, encoding in UYVY)))
    luma = 1.164 * (y.astype(float) - 16)
    cb, cr = (np.repeat(c.astype(float) - 128, 2, axis=1) for c in (u, v))
    rgb = np.stack([luma + 1.596 * cr, luma - 0.391 * cb - 0.813 * cr, luma + 2.018 * cb], -1)
    # OpenCV uses fixed-point coefficients: at most 1-2 levels from the float formula.
    assert order == "rgb"
    assert np.abs(image - np.clip(rgb, 0, 255)).max() <= 2


def compressed(data: bytes, image_format: str):
    return BagCompressed(
        header=BagHeader(stamp=BagTime(sec=0, nanosec=0), frame_id="camera"),
        format=image_format,
        data=np.frombuffer(data, np.uint8).copy(),
    )


@pytest.mark.parametrize(
    ("extension", "image_format", "gray"),
    [
        (".jpg", "jpeg", False),
        (".jpg", "rgb8; jpeg compressed bgr8", False),
        (".png", "png", False),
        (".png", "bgr8; png compressed bgr8", False),
        (".jpg", "mono8; jpeg compressed mono8", True),
        (".png", "mono8; png compressed mono8", True),
    ],
)
def test_compressed_decodes_to_bgr(extension, image_format, gray, rng) -> None:
    yy, xx = np.mgrid[0:40, 0:56]
    bgr = np.stack([xx * 4, yy * 6, (xx + yy) * 2], -1).astype(np.uint8)  # smooth: JPEG-friendly
    source = bgr[..., 0] if gray else bgr
    ok, encoded = cv2.imencode(extension, source)
    assert ok
    msg = compressed(encoded.tobytes(), image_format)

    image, order = compressed_to_array(msg)

    assert order == "bgr"
    assert image.shape == (40, 56, 3)
    assert image.dtype == np.uint8
    expected = np.repeat(source[..., None], 3, axis=2) if gray else source
    if extension == ".png":
        np.testing.assert_array_equal(image, expected)
    else:  # lossy: a smooth image stays within a few levels on average
        assert np.abs(image.astype(int) - expected).mean() < 3
    reference = rosbags_image.message_to_cvimage(msg, "bgr8")  # gray stays 1 channel there
    if gray:
        reference = np.repeat(reference[..., None], 3, axis=2)
    np.testing.assert_array_equal(image, reference)


@pytest.mark.parametrize(
    ("encoding", "array_"),
    [
        ("mono8", np.arange(12 * 16, dtype=np.uint8).reshape(12, 16)),
        ("rgb8", np.random.default_rng(1).integers(0, 256, (12, 16, 3), dtype=np.uint8)),
        ("bgr8", np.random.default_rng(2).integers(0, 256, (12, 16, 3), dtype=np.uint8)),
        (
            "32FC1",
            np.array([[0.0, -0.0, 1e-40, np.inf], [-np.inf, np.nan, 3.14159, -1e38]], np.float32),
        ),
    ],
)
def test_array_to_image_round_trip(encoding: str, array_: np.ndarray) -> None:
    std_msgs = pytest.importorskip("std_msgs.msg")
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image

    header = std_msgs.Header(frame_id="camera")
    header.stamp.sec = 7
    msg = array_to_image(array_, encoding, header)

    assert msg.header is header
    assert (msg.height, msg.width, msg.encoding) == (*array_.shape[:2], encoding)
    assert msg.step == array_.shape[1] * array_.itemsize * (3 if array_.ndim == 3 else 1)
    assert msg.is_bigendian == (sys.byteorder == "big")
    # Bitwise equality: NaN, -0.0 and denormals of 32FC1 survive unchanged.
    assert np.frombuffer(msg.data, array_.dtype).tobytes() == array_.tobytes()
    again = deserialize_message(serialize_message(msg), Image)  # publishable as built
    assert bytes(again.data) == array_.tobytes()
    if encoding != "32FC1":
        image, order = image_to_array(msg)
        expected = np.repeat(array_[..., None], 3, axis=2) if encoding == "mono8" else array_
        np.testing.assert_array_equal(image, expected)
        assert order == ("bgr" if encoding == "bgr8" else "rgb")


def test_array_to_image_accepts_non_contiguous_arrays() -> None:
    pytest.importorskip("std_msgs.msg")
    from std_msgs.msg import Header

    rgb = np.random.default_rng(3).integers(0, 256, (10, 20, 3), dtype=np.uint8)
    msg = array_to_image(rgb[:, ::2], "rgb8", Header())
    np.testing.assert_array_equal(image_to_array(msg)[0], rgb[:, ::2])


def duck(**overrides) -> SimpleNamespace:
    """A valid 4x6 rgb8 message as a plain object, with some fields replaced."""
    fields = dict(height=4, width=6, encoding="rgb8", is_bigendian=0, step=18, data=bytes(72))
    return SimpleNamespace(**(fields | overrides))


@pytest.mark.parametrize(
    ("msg", "phrase"),
    [
        (duck(encoding="rgb10"), "unsupported image encoding 'rgb10'; supported: rgb8"),
        (duck(encoding="32FC1"), "bayer_grbg8"),
        (duck(encoding=None), "unsupported image encoding None"),
        (duck(height=0, data=b""), "image is empty: height 0"),
        (duck(width=0, step=0, data=b""), "width 0"),
        (duck(step=17, data=bytes(68)), "step 17 is smaller than width 6 x 3 bytes"),
        (duck(data=bytes(71)), "too short"),
        (duck(data=bytes(73)), "too long"),
        (duck(data=bytes(90)), "expected height 4 x step 18 = 72"),
        (duck(height=2**32 - 1, width=2**32 - 1), "over the limit of 33554432"),
        (duck(height=20_000, width=20_000), "max_image_pixels"),
        (duck(height=-4), "'height' must be >= 0"),
        (duck(step="18"), "'step' must be an integer"),
        (duck(width=6.0), "'width' must be an integer"),
        (duck(data=[0] * 72), "bytes-like"),
        (duck(data=np.zeros((72, 2), np.uint8)[:, 0]), "contiguous"),
        (duck(encoding="yuv422", width=5, step=10, data=bytes(40)), "width must be even"),
        (duck(encoding="mono16", step=11, data=bytes(44)), "smaller than width 6 x 2 bytes"),
        (SimpleNamespace(height=4, width=6), "no field 'encoding'"),
    ],
)
def test_bad_image_messages_raise_invalid_image_error(msg, phrase: str) -> None:
    with pytest.raises(InvalidImageError, match=phrase.replace("(", r"\(")):
        image_to_array(msg)


def test_max_pixels_is_configurable() -> None:
    assert image_to_array(duck(), max_pixels=24)[0].shape == (4, 6, 3)
    with pytest.raises(InvalidImageError, match="over the limit of 23"):
        image_to_array(duck(), max_pixels=23)


def test_random_fields_raise_only_invalid_image_error() -> None:
    rng = np.random.default_rng(4)
    encodings = [*SUPPORTED_ENCODINGS, "8UC3", "", "RGB8"]
    for _ in range(400):
        encoding = encodings[rng.integers(len(encodings))]
        height, width = (int(n) for n in rng.integers(0, 5, 2))
        step = int(rng.integers(0, 40))
        size = height * step + int(rng.choice([0, 0, -1, 1]))
        msg = duck(
            encoding=encoding,
            height=height,
            width=width,
            step=step,
            is_bigendian=int(rng.integers(2)),
            data=bytes(max(size, 0)),
        )
        try:
            image, order = image_to_array(msg)
        except InvalidImageError:
            continue
        assert image.shape == (height, width, 3)
        assert image.dtype == np.uint8
        assert order in ("rgb", "bgr")


def test_bad_compressed_messages_raise_invalid_image_error() -> None:
    ok, jpeg = cv2.imencode(".jpg", np.full((32, 32, 3), 90, np.uint8))
    assert ok
    jpeg = jpeg.tobytes()
    bad = [
        (compressed(b"", "jpeg"), "format 'jpeg'.*is empty"),
        (compressed(b"not an image at all", "png"), "format 'png'.* not an image in a supported"),
        (compressed(jpeg[: len(jpeg) // 2], "jpeg"), "JPEG header is corrupt or truncated"),
        (compressed(bytes(range(256)) * 4, "h264"), "format 'h264'"),
        (compressed(jpeg, "16UC1; compressedDepth png"), "compressed depth image"),
        (SimpleNamespace(format="jpeg", data=[1, 2, 3]), "bytes-like"),
        (SimpleNamespace(data=jpeg), "no field 'format'"),
    ]
    for msg, phrase in bad:
        with pytest.raises(InvalidImageError, match=phrase):
            compressed_to_array(msg)
    with pytest.raises(InvalidImageError, match="32x32 = 1024 pixels, over the limit of 1000"):
        compressed_to_array(compressed(jpeg, "jpeg"), max_pixels=1000)


@pytest.mark.parametrize(
    ("array_", "encoding", "phrase"),
    [
        (np.zeros((4, 6, 3), np.uint8), "rgba8", "output encoding 'rgba8' is not supported"),
        (np.zeros((4, 6), np.uint16), "mono8", "mono8 image must have dtype uint8"),
        (np.zeros((4, 6), np.float64), "32FC1", "dtype float32 .native byte order., got float64"),
        (np.zeros((4, 6), ">f4" if sys.byteorder == "little" else "<f4"), "32FC1", "got >f4|<f4"),
        (np.zeros((4, 6), np.uint8), "rgb8", r"shape \(H, W, 3\), got \(4, 6\)"),
        (np.zeros((4, 6, 4), np.uint8), "bgr8", r"shape \(H, W, 3\), got \(4, 6, 4\)"),
        (np.zeros((4, 6, 3), np.uint8), "mono8", r"shape \(H, W\), got \(4, 6, 3\)"),
        (np.zeros((4, 6, 1), np.float32), "32FC1", r"shape \(H, W\)"),
        (np.zeros((0, 6), np.uint8), "mono8", "empty"),
        ([[0, 1], [2, 3]], "mono8", "must be a numpy array"),
    ],
)
def test_array_to_image_rejects_bad_arrays(array_, encoding: str, phrase: str) -> None:
    pytest.importorskip("std_msgs.msg")
    from std_msgs.msg import Header

    with pytest.raises(InvalidImageError, match=phrase):
        array_to_image(array_, encoding, Header())


def test_array_to_image_rejects_a_foreign_header() -> None:
    pytest.importorskip("sensor_msgs.msg")
    with pytest.raises(TypeError, match=r"std_msgs\.msg\.Header"):
        array_to_image(np.zeros((2, 2), np.uint8), "mono8", BagHeader(BagTime(0, 0), "x"))
