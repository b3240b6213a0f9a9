"""Reading camera frames and their ground-truth labels from a rosbag2.

A label belongs to the image whose header stamp equals its own (exactly, in ns): the bag's
order does not matter. Frames come in the bag's log-time order (an image whose label is stored
later waits for it, so the order is kept). The same pairing serves any number of such topics
beside the images (:func:`read_paired`): the semantic labels, and the anomaly truth (mono8: 0
in-distribution, 1 anomaly, 255 void).
"""

from __future__ import annotations

import logging
import struct
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vltseg_ros.bag.serialization import stamp_to_ns
from vltseg_ros.bag.topics import open_bag
from vltseg_ros.bag.typestore import COMPRESSED_IMAGE, IMAGE, typestore
from vltseg_ros.bag.writing import Storage
from vltseg_ros.errors import BagError, InvalidImageError
from vltseg_ros.io.image_messages import ColorOrder, compressed_to_array, image_to_array

LOG = logging.getLogger(__name__)
_LABEL_ENCODINGS = ("mono8", "8UC1")


@dataclass(frozen=True)
class BagMessage:
    """One stored message with its header.

    Attributes:
        topic, msgtype: where it was stored.
        log_time_ns: the bag's log (receive) time, ns since the epoch.
        stamp_ns: its header stamp, ns since the epoch.
        frame_id: its header frame_id.
        msg: the deserialized rosbags message object (its arrays are views of ``cdr``).
        cdr: the serialized bytes as stored (to copy the message into another bag); do not
            modify them or the message's arrays.
    """

    topic: str
    msgtype: str
    log_time_ns: int
    stamp_ns: int
    frame_id: str
    msg: object
    cdr: bytes | bytearray


@dataclass
class _Pending:
    """A message of :func:`read_paired` that may still wait for some of its paired messages."""

    message: BagMessage
    paired: list[BagMessage | None]
    missing: set[int] = field(default_factory=set)  # indices of the paired topics awaited


@dataclass(frozen=True)
class BagFrame:
    """A decoded camera frame and its label.

    Attributes:
        image: (H, W, 3) uint8 in ``color_order`` (may be a read-only view of the message).
        color_order: "rgb" or "bgr" (compressed images decode to BGR).
        label: (H, W) uint8 train ids of the same header stamp, or None.
        message: the image message (topic, stamps, frame_id, CDR bytes).
        label_message: the label's message, or None.
        anomaly: (H, W) uint8 anomaly truth of the same header stamp (0 in-distribution,
            1 anomaly, 255 void), or None (no anomaly topic, or none for this stamp).
        index: the image message's position among the image topic's messages, from 0.
    """

    image: np.ndarray
    color_order: ColorOrder
    label: np.ndarray | None
    message: BagMessage
    label_message: BagMessage | None = None
    anomaly: np.ndarray | None = None
    index: int = 0

    @property
    def stamp_ns(self) -> int:
        """Header stamp of the image, ns since the epoch."""
        return self.message.stamp_ns


def label_to_array(msg: object, where: str = "label") -> np.ndarray:
    """A mono8 sensor_msgs/Image (rosbags or rclpy message) -> (H, W) uint8 copy.

    Raises:
        BagError: another encoding, or size fields that do not match the data.
    """
    encoding = getattr(msg, "encoding", None)
    if encoding not in _LABEL_ENCODINGS:
        raise BagError(
            f"{where} has encoding {encoding!r}; label and mask images must be mono8 (one "
            "byte per pixel holding the train id)"
        )
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if height == 0 or width == 0 or step < width or data.size != height * step:
        raise BagError(
            f"{where} is malformed: {height}x{width}, step {step}, {data.size} bytes of data"
        )
    return data.reshape(height, step)[:, :width].copy()


def read_messages(
    bag: Path | str, topic: str, label_topic: str | None = None
) -> Iterator[tuple[BagMessage, BagMessage | None]]:
    """Every message of ``topic`` with the label message of the same header stamp (or None).

    Args:
        bag: the bag directory or file.
        topic: a topic whose messages start with a std_msgs/Header.
        label_topic: a mono8 sensor_msgs/Image topic of labels, or None.

    Yields:
        (message, label message or None), in the bag's order of ``topic``.

    Raises:
        BagError: unreadable bag, missing topic.
    """
    for message, (label,) in read_paired(bag, topic, (label_topic,)):
        yield message, label


def read_paired(
    bag: Path | str, topic: str, paired_topics: Sequence[str | None]
) -> Iterator[tuple[BagMessage, tuple[BagMessage | None, ...]]]:
    """Every message of ``topic`` with, per paired topic, its message of the same header stamp.

    A message whose paired message is stored later waits for it (the bag's order of ``topic``
    is kept); an image stamp seen before gets no second paired message.

    Args:
        bag: the bag directory or file.
        topic: a topic whose messages start with a std_msgs/Header.
        paired_topics: sensor_msgs/Image topics (labels, anomaly truth), all different from
            ``topic`` and from each other; a None entry pairs nothing (its slot stays None).

    Yields:
        (message, one paired message or None per entry of ``paired_topics``).

    Raises:
        BagError: unreadable bag, missing topic, a paired topic that is not an Image topic.
    """
    paired = tuple(paired_topics)
    stamps = [set(read_labels(bag, name, stamps_only=True)) if name else set() for name in paired]
    index_of = {name: index for index, name in enumerate(paired) if name}
    with open_bag(bag) as reader:
        wanted = [c for c in reader.connections if c.topic == topic or c.topic in index_of]
        if not any(c.topic == topic for c in wanted):
            raise BagError(f"bag {bag} has no topic {topic}")
        queue: deque[_Pending] = deque()  # in bag order; the head leaves once it is complete
        waiting: list[dict[int, _Pending]] = [{} for _ in paired]  # stamp -> awaiting message
        early: list[dict[int, BagMessage]] = [{} for _ in paired]  # stamp -> stored before
        seen: set[int] = set()
        for connection, log_time, data in reader.messages(connections=wanted):
            message = _message(connection.topic, connection.msgtype, log_time, data)
            stamp = message.stamp_ns
            index = index_of.get(connection.topic)
            if index is not None:
                pending = waiting[index].pop(stamp, None)
                if pending is None:
                    early[index][stamp] = message
                else:
                    pending.paired[index] = message
                    pending.missing.discard(index)
            else:
                pending = _Pending(message, [found.pop(stamp, None) for found in early])
                if stamp not in seen:  # a repeated stamp gets no second paired message
                    for i, found in enumerate(pending.paired):
                        if found is None and stamp in stamps[i]:
                            pending.missing.add(i)
                            waiting[i][stamp] = pending
                seen.add(stamp)
                queue.append(pending)
            while queue and not queue[0].missing:
                done = queue.popleft()
                yield done.message, tuple(done.paired)
        for pending in queue:
            yield pending.message, tuple(pending.paired)


def iter_frames(
    bag: Path | str,
    image_topic: str,
    label_topic: str | None = None,
    anomaly_topic: str | None = None,
    *,
    keep: Callable[[int], bool] | None = None,
) -> Iterator[BagFrame]:
    """Decoded frames of a raw (Image) or compressed (CompressedImage) topic, with labels and
    anomaly truth (both mono8 Image topics matched by header stamp).

    Args:
        keep: which frames to decode and yield, by :attr:`BagFrame.index` (e.g. a process's
            share); None: all.

    Raises:
        BagError: unreadable bag; an image that cannot be decoded; a label or anomaly truth
            that is not mono8 or whose size differs from its image.
    """
    pairs = read_paired(bag, image_topic, (label_topic, anomaly_topic))
    for index, (message, (label_message, anomaly_message)) in enumerate(pairs):
        if keep is not None and not keep(index):
            continue
        label = _mono8(label_message, "label", label_topic)
        anomaly = _mono8(anomaly_message, "anomaly truth", anomaly_topic)
        try:
            if message.msgtype == COMPRESSED_IMAGE:
                image, order = compressed_to_array(message.msg)
            elif message.msgtype == IMAGE:
                image, order = image_to_array(message.msg)
            else:
                raise BagError(f"topic {image_topic} has type {message.msgtype}, not an image")
        except InvalidImageError as exc:
            raise BagError(f"image on {image_topic} at {_at(message)}: {exc}") from exc
        for what, topic, array in (
            ("label", label_topic, label),
            ("anomaly truth", anomaly_topic, anomaly),
        ):
            if array is not None and array.shape != image.shape[:2]:
                raise BagError(
                    f"{what} on {topic} at {_at(message)} is {_size(array.shape)} but its image "
                    f"on {image_topic} is {_size(image.shape)}: {what} must have the image's size"
                )
        yield BagFrame(image, order, label, message, label_message, anomaly, index)


def _mono8(message: BagMessage | None, what: str, topic: str | None) -> np.ndarray | None:
    if message is None:
        return None
    return label_to_array(message.msg, f"{what} on {topic} at {_at(message)}")


def raw_messages(bag: Path | str) -> Iterator[tuple[str, str, int, bytes]]:
    """(topic, msgtype, log time ns, CDR bytes) of every message, in log-time order (for
    players and for copying a bag's topics unchanged)."""
    with open_bag(bag) as reader:
        for connection, log_time, data in reader.messages():
            yield connection.topic, connection.msgtype, int(log_time), bytes(data)


def read_labels(
    bag: Path | str, label_topic: str, *, stamps_only: bool = False
) -> dict[int, np.ndarray]:
    """All labels of a topic keyed by header stamp (ns since the epoch).

    Args:
        label_topic: a sensor_msgs/Image topic of mono8 train-id maps.
        stamps_only: skip decoding; the values are then empty arrays (to learn the stamps).

    Returns:
        stamp ns -> (H, W) uint8 label (a copy; a later duplicate stamp replaces an earlier).

    Raises:
        BagError: unreadable bag, no such topic, a label that is not a mono8 Image.
    """
    labels: dict[int, np.ndarray] = {}
    empty = np.zeros((0, 0), dtype=np.uint8)
    with open_bag(bag) as reader:
        connections = [c for c in reader.connections if c.topic == label_topic]
        if not connections:
            raise BagError(f"bag {bag} has no label topic {label_topic}")
        if any(c.msgtype != IMAGE for c in connections):
            raise BagError(f"label topic {label_topic} must be a sensor_msgs/msg/Image topic")
        for connection, log_time, data in reader.messages(connections=connections):
            if stamps_only:
                labels[header_stamp_ns(data)] = empty
                continue
            message = _message(label_topic, connection.msgtype, log_time, data)
            labels[message.stamp_ns] = label_to_array(
                message.msg, f"label on {label_topic} at {_at(message)}"
            )
    return labels


def storage_of(bag: Path | str) -> Storage:
    """ "mcap" or "sqlite3": the storage format of a bag directory or file."""
    path = Path(bag)
    files = [path] if path.is_file() else sorted(path.iterdir()) if path.is_dir() else []
    suffixes = {f.suffix for f in files}
    if ".db3" in suffixes:
        return "sqlite3"
    if ".mcap" in suffixes:
        return "mcap"
    raise BagError(f"{bag} holds neither a .mcap nor a .db3 file; is it a rosbag2?")


def _message(topic: str, msgtype: str, log_time: int, data: bytes | memoryview) -> BagMessage:
    raw = bytearray(data)  # one copy, writable: the arrays of ``msg`` are views of it
    msg = typestore().deserialize_cdr(raw, msgtype)
    header = msg.header
    return BagMessage(
        topic=topic,
        msgtype=msgtype,
        log_time_ns=int(log_time),
        stamp_ns=stamp_to_ns(header.stamp),
        frame_id=str(header.frame_id),
        msg=msg,
        cdr=raw,
    )


def header_stamp_ns(data: bytes | memoryview) -> int:
    """Header stamp [ns] of a serialized (CDR) message that starts with a std_msgs/Header
    (Image, CompressedImage, CameraInfo, SegmentationInfo), read without deserializing it."""
    little = data[1] & 1  # encapsulation 0x0001: little endian
    sec, nanosec = struct.unpack_from("<iI" if little else ">iI", data, 4)
    return sec * 1_000_000_000 + nanosec


def _at(message: BagMessage) -> str:
    return f"stamp {message.stamp_ns} ns"


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}x{shape[0]} (WxH)"
