"""Writing a rosbag2 of camera frames (and their labels) from image files or synthetic scenes.

Per frame, at one header stamp (also the log time; frames ``1 / rate`` s apart):

- the image: ``sensor_msgs/Image`` rgb8 on ``topic``, or with ``compressed`` a
  ``sensor_msgs/CompressedImage`` JPEG on ``<topic>/compressed`` (image_transport's names);
- its label, when it has one: ``sensor_msgs/Image`` mono8 train ids on ``label_topic``;
- ``sensor_msgs/CameraInfo`` on ``<topic's namespace>/camera_info`` (an undistorted pinhole
  with focal length = image width and the principal point at the center).

Given the frames' names, the bag's metadata.yaml maps each stamp to its frame's name
(:mod:`vltseg_ros.bag.frame_names`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vltseg_ros.bag.frame_names import FRAME_NAMES_KEY, encode_frame_names
from vltseg_ros.bag.frames import FramePair, load_frame
from vltseg_ros.bag.serialization import (
    JPEG_FORMAT,
    camera_info_cdr,
    compressed_image_cdr,
    image_cdr,
)
from vltseg_ros.bag.topics import output_namespace
from vltseg_ros.bag.typestore import CAMERA_INFO, COMPRESSED_IMAGE, IMAGE
from vltseg_ros.bag.writing import BagWriter, Storage
from vltseg_ros.data.scenes import synthetic_street_scene
from vltseg_ros.data.scenes_dataset import HELD_OUT_SEED, scene_base_name
from vltseg_ros.errors import ConfigError

LOG = logging.getLogger(__name__)

Frame = tuple[np.ndarray, np.ndarray | None]
"""(H, W, 3) uint8 RGB image and (H, W) uint8 train-id label (or None)."""


@dataclass(frozen=True)
class BagLayout:
    """Topics, frame id, timing and storage of a bag written by :func:`write_frames_bag`.

    Attributes:
        topic: raw image topic (absolute; a leading "/" is added when missing).
        label_topic: label topic.
        frame_id: header frame_id of every message.
        rate: frames per second (header stamps and log times are 1 / rate s apart).
        compressed: write JPEG CompressedImage on ``<topic>/compressed`` instead of rgb8.
        storage: "mcap" or "sqlite3".
        start_ns: stamp of the first frame, ns since the epoch (None: now).
        jpeg_quality: JPEG quality 0-100 with ``compressed``.
    """

    topic: str = "/camera/image_raw"
    label_topic: str = "/camera/labels"
    frame_id: str = "camera"
    rate: float = 10.0
    compressed: bool = False
    storage: Storage = "mcap"
    start_ns: int | None = None
    jpeg_quality: int = 95

    def validate(self) -> None:
        """Raise :class:`ConfigError` for a rate <= 0, empty topics or a bad JPEG quality."""
        if not self.rate > 0:
            raise ConfigError(f"rate must be > 0 frames per second, got {self.rate}")
        if not self.topic.strip("/") or not self.label_topic.strip("/"):
            raise ConfigError("image and label topic names must not be empty")
        if self.topic.strip("/") == self.label_topic.strip("/"):
            raise ConfigError(f"image and label topics must differ, both are {self.topic}")
        if not 0 <= self.jpeg_quality <= 100:
            raise ConfigError(f"jpeg_quality must be 0-100, got {self.jpeg_quality}")

    @property
    def image_topic(self) -> str:
        """The topic images are written to (``<topic>/compressed`` with ``compressed``)."""
        topic = _absolute(self.topic)
        return f"{topic}/compressed" if self.compressed else topic

    @property
    def camera_info_topic(self) -> str:
        """``<namespace of topic>/camera_info``, e.g. /camera/camera_info."""
        return f"{output_namespace(_absolute(self.topic))}/camera_info"


def folder_frames(pairs: Iterable[FramePair]) -> Iterator[Frame]:
    """Load each pair's image (RGB) and label (train ids) in turn."""
    for pair in pairs:
        yield load_frame(pair)


def synthetic_frames(count: int, height: int = 512, width: int = 1024) -> Iterator[Frame]:
    """``count`` generated street scenes with exact labels, seeds from
    :data:`~vltseg_ros.data.scenes_dataset.HELD_OUT_SEED` on: scenes the demo model never trained
    on, so that a bag of them evaluates it fairly."""
    if count < 1:
        raise ConfigError(f"the number of synthetic frames must be >= 1, got {count}")
    if height < 32 or width < 32:
        raise ConfigError(f"synthetic scenes need at least 32x32 pixels, got {height}x{width}")
    return (
        synthetic_street_scene(height, width, seed=seed)
        for seed in range(HELD_OUT_SEED, HELD_OUT_SEED + count)
    )


def synthetic_names(count: int) -> list[str]:
    """The names of the :func:`synthetic_frames` scenes (``vltseg make-scenes``'s names of the
    scenes of those seeds: ``scenes_100000_000000`` ...)."""
    return [scene_base_name(seed) for seed in range(HELD_OUT_SEED, HELD_OUT_SEED + count)]


def write_frames_bag(
    out: Path,
    frames: Iterable[Frame],
    layout: BagLayout,
    names: Sequence[str] | None = None,
) -> dict[str, int]:
    """Write ``frames`` into a new bag ``out``; on any error or interrupt nothing is left
    behind (:class:`~vltseg_ros.bag.writing.BagWriter`).

    Args:
        names: the frames' names, in order (plain file names, e.g. unique file stems), stored
            in the metadata as :mod:`vltseg_ros.bag.frame_names` says; None: no names.

    Returns:
        topic -> number of messages written.

    Raises:
        BagError: ``out`` exists or cannot be written, or a frame cannot be read (bad file,
            label size mismatch).
        ConfigError: invalid layout.
    """
    layout.validate()
    start = layout.start_ns if layout.start_ns is not None else time.time_ns() // 10**6 * 10**6
    step = round(1e9 / layout.rate)
    label_topic = _absolute(layout.label_topic)
    named: dict[int, str] = {}
    writer = BagWriter(out, layout.storage)
    try:
        writer.add_topic(layout.image_topic, COMPRESSED_IMAGE if layout.compressed else IMAGE)
        writer.add_topic(layout.camera_info_topic, CAMERA_INFO)
        for index, (image, label) in enumerate(frames):
            stamp = start + index * step
            if names is not None:
                named[stamp] = names[index]
            writer.write(layout.image_topic, stamp, _image_cdr(image, stamp, layout))
            if label is not None:
                writer.add_topic(label_topic, IMAGE)
                writer.write(label_topic, stamp, image_cdr(label, "mono8", stamp, layout.frame_id))
            height, width = image.shape[:2]
            writer.write(
                layout.camera_info_topic,
                stamp,
                camera_info_cdr(height, width, stamp, layout.frame_id),
            )
        if named:
            _store_names(writer, named)
    except BaseException:
        writer.discard()
        raise
    writer.close()
    counts = dict(writer.counts)
    LOG.info("wrote %s: %s", out, ", ".join(f"{t} {n}" for t, n in counts.items()))
    return counts


def _store_names(writer: BagWriter, names: dict[int, str]) -> None:
    try:
        writer.set_custom_data(FRAME_NAMES_KEY, encode_frame_names(names))
    except ValueError as exc:  # e.g. a file name with spaces
        LOG.warning("frame names not stored (%s): a replay names overlays by stamp", exc)


def _image_cdr(rgb: np.ndarray, stamp: int, layout: BagLayout) -> bytes:
    if not layout.compressed:
        return image_cdr(rgb, "rgb8", stamp, layout.frame_id)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, layout.jpeg_quality])
    if not ok:
        raise ConfigError(f"OpenCV could not JPEG-encode a {rgb.shape} frame")
    return compressed_image_cdr(jpeg.tobytes(), JPEG_FORMAT, stamp, layout.frame_id)


def _absolute(topic: str) -> str:
    return "/" + topic.strip("/")
