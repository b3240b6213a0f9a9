"""Opening rosbag2 files and finding their camera image and label topics.

Discovery rule (when a topic is not named):

- an **image candidate** is a ``sensor_msgs/msg/Image`` or ``CompressedImage`` topic with
  messages whose name contains none of "label", "mask", "segmentation" (case-insensitive), and,
  for raw images, whose first message has a color encoding (rgb8, bgr8, rgba8, bgra8, 16-bit
  color, YUV 4:2:2, Bayer; not mono8 / mono16 / depth / float), and for compressed images
  whose format is not compressedDepth. The bag must have exactly one.
- a **label candidate** is a ``sensor_msgs/msg/Image`` topic with messages whose name contains
  "label" (the anomaly truth topic, when one is named, is none). The bag may have none or one.

An anomaly truth topic (mono8 ``sensor_msgs/msg/Image``: 0 in-distribution, 1 anomaly, 255
void) is never discovered: it is read only when named.

Anything else is an error that lists the candidates (or all topics) with their types and
message counts.

A topic's message count is what the bag's storage files index (the MCAP summary or chunk
indexes, the SQLite messages table), which is what reading yields; where ``metadata.yaml``
claims another count (a hand-edited or damaged file), the storage's count is used and a
warning names both. A ``metadata.yaml`` that is not valid YAML is an error of one line naming
the file, the problem and its line.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rosbags.rosbag2 import Reader

from vltseg_ros.bag.typestore import COMPRESSED_IMAGE, IMAGE, typestore
from vltseg_ros.errors import BagError, VLTSegError
from vltseg_ros.io.image_messages import SUPPORTED_ENCODINGS

LOG = logging.getLogger(__name__)
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)
_NOT_IMAGE_WORDS = ("label", "mask", "segmentation")
_COLOR_ENCODINGS = frozenset(e for e in SUPPORTED_ENCODINGS if not e.startswith("mono"))


@dataclass(frozen=True)
class TopicSummary:
    """One topic of a bag: name, ROS 2 type and number of messages."""

    name: str
    msgtype: str
    count: int

    def describe(self) -> str:
        """``/camera/image_raw (sensor_msgs/msg/Image, 10 messages)``."""
        return f"{self.name} ({self.msgtype}, {self.count} messages)"


@dataclass(frozen=True)
class BagTopics:
    """The topics a bag evaluation reads.

    Attributes:
        image_topic, image_type, image_count: the camera topic (Image or CompressedImage).
        label_topic, label_count: the ground-truth label topic (mono8 Image), or None / 0.
        topics: every topic of the bag.
        anomaly_topic, anomaly_count: the anomaly truth topic (mono8 Image), or None / 0.
    """

    image_topic: str
    image_type: str
    image_count: int
    label_topic: str | None
    label_count: int
    topics: tuple[TopicSummary, ...]
    anomaly_topic: str | None = None
    anomaly_count: int = 0

    @property
    def compressed(self) -> bool:
        """True when the image topic is a sensor_msgs/CompressedImage topic."""
        return self.image_type == COMPRESSED_IMAGE


@contextlib.contextmanager
def open_bag(bag: Path | str) -> Iterator[Reader]:
    """Open a rosbag2 (directory, or a single .mcap / .db3 file) for reading.

    Raises:
        BagError: the path does not exist, is not a bag, or the bag is truncated or corrupt
            (also for errors raised while the caller reads messages inside the ``with``).
    """
    path = Path(bag)
    if not path.exists():
        raise BagError(f"bag {path} does not exist")
    try:
        reader = Reader(path)
        reader.open()
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise BagError(
            f"{path} is not a rosbag2: expected a bag directory with metadata.yaml, or a "
            f".mcap / .db3 file ({exc})"
        ) from None
    except Exception as exc:  # rosbags raises many types for broken files
        problem = _metadata_problem(path)
        if problem:
            raise BagError(f"cannot read bag {path}: {problem}") from exc
        raise bag_corrupt(path, exc) from exc
    try:
        yield reader
    except VLTSegError:
        raise
    except Exception as exc:  # a damaged file fails in many ways
        raise bag_corrupt(path, exc) from exc
    finally:
        with contextlib.suppress(Exception):
            reader.close()


def bag_corrupt(path: Path | str, exc: BaseException) -> BagError:
    """The error for a bag that rosbags cannot read (truncated, corrupt, unsupported), on one
    line."""
    detail = " ".join(str(exc).split())
    return BagError(
        f"cannot read bag {path}: it is truncated, corrupt or not a rosbag2 "
        f"({type(exc).__name__}: {detail})"
    )


def list_topics(reader: Reader) -> tuple[TopicSummary, ...]:
    """Every topic of an open bag, sorted by name, with the message counts its storage files
    index (the module docstring says why)."""
    stored = _stored_counts(reader)
    topics = []
    for name, info in sorted(reader.topics.items()):
        count = stored.get(name, info.msgcount)
        if count != info.msgcount:
            _warn_count(str(reader.path), name, info.msgcount, count)
        topics.append(TopicSummary(name, info.msgtype or "?", count))
    return tuple(topics)


@functools.cache  # once per bag and topic, however often a command opens it
def _warn_count(bag: str, topic: str, claimed: int, stored: int) -> None:
    LOG.warning(
        "bag %s: metadata.yaml claims %d messages on %s but its storage holds %d; counting %d",
        bag,
        claimed,
        topic,
        stored,
        stored,
    )


def _stored_counts(reader: Reader) -> dict[str, int]:
    """Topic -> messages indexed by the storage files of a bag directory ({} for a single
    .mcap / .db3 file: its counts come from the file already)."""
    storages = getattr(reader.storage, "storages", None)
    if storages is None:
        return {}
    counts: dict[str, int] = {}
    for storage in storages:
        for connection in storage.connections:
            counts[connection.topic] = counts.get(connection.topic, 0) + connection.msgcount
    return counts


def _metadata_problem(path: Path) -> str:
    """What makes a bag directory's metadata.yaml unreadable as YAML, on one line ("" when it
    reads, or there is none)."""
    from ruamel.yaml import YAML  # what rosbags parses it with
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    metadata = path / "metadata.yaml"
    if not metadata.is_file():
        return ""
    try:
        YAML(typ="safe").load(metadata.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        return f"{metadata} is not a UTF-8 text (YAML) file"
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        return f"{metadata} is not valid YAML: {exc.problem or exc.context}{where}"
    except (YAMLError, OSError) as exc:
        return f"{metadata} is not valid YAML: {' '.join(str(exc).split())}"
    return ""


def find_topics(
    bag: Path | str,
    image_topic: str | None = None,
    label_topic: str | None = None,
    *,
    anomaly_topic: str | None = None,
) -> BagTopics:
    """The image and label topics of ``bag``: the named ones, or found by the module's rule;
    and the anomaly truth topic when ``anomaly_topic`` names one.

    Raises:
        BagError: the bag is unreadable or empty; a named topic is missing, has no messages
            or the wrong type; no or several image candidates, several label candidates; the
            anomaly topic is the image or the label topic.
    """
    with open_bag(bag) as reader:
        topics = list_topics(reader)
        if not topics or sum(t.count for t in topics) == 0:
            raise BagError(f"bag {bag} is empty: it has no messages")
        by_name = {t.name: t for t in topics}
        if image_topic:
            image = _named(bag, by_name, image_topic, IMAGE_TYPES, "image")
        else:
            image = _discover_image(bag, reader, topics)
        anomaly = (
            _named(bag, by_name, anomaly_topic, (IMAGE,), "anomaly") if anomaly_topic else None
        )
        if anomaly is not None and anomaly.name == image.name:
            raise BagError(f"{anomaly.name} cannot be both the image and the anomaly topic")
        if label_topic:
            label = _named(bag, by_name, label_topic, (IMAGE,), "label")
            if label.name == image.name:
                raise BagError(f"{label.name} cannot be both the image and the label topic")
        else:
            excluded = {image.name, *([anomaly.name] if anomaly else [])}
            label = _discover_label(bag, topics, exclude=excluded)
        if anomaly is not None and label is not None and anomaly.name == label.name:
            raise BagError(f"{label.name} cannot be both the label and the anomaly topic")
    return BagTopics(
        image_topic=image.name,
        image_type=image.msgtype,
        image_count=image.count,
        label_topic=label.name if label else None,
        label_count=label.count if label else 0,
        topics=topics,
        anomaly_topic=anomaly.name if anomaly else None,
        anomaly_count=anomaly.count if anomaly else 0,
    )


def output_namespace(image_topic: str) -> str:
    """Namespace of a camera image topic, where the segmentation outputs go.

    ``/camera/image_raw`` and ``/camera/image_raw/compressed`` -> ``/camera``;
    ``/image_raw`` -> ``""``.
    """
    topic = image_topic.rstrip("/")
    if topic.endswith("/compressed"):
        topic = topic[: -len("/compressed")]
    return topic.rsplit("/", 1)[0] if "/" in topic else ""


def camera_name(image_topic: str) -> str:
    """The camera name of an image topic: the last part of its namespace (``camera`` when the
    topic has no namespace). ``/sensors/front/image_raw`` -> ``front``."""
    namespace = output_namespace(image_topic).strip("/")
    return namespace.rsplit("/", 1)[-1] if namespace else "camera"


def _named(
    bag: Path | str,
    by_name: dict[str, TopicSummary],
    name: str,
    types: tuple[str, ...],
    role: str,
) -> TopicSummary:
    topic = by_name.get(name)
    if topic is None:
        typed = [t for t in by_name.values() if t.msgtype in types]
        kind = " or ".join(t.rsplit("/", 1)[-1] for t in types)
        where = (
            f"its {kind} topics are: {_listing(typed)}"
            if typed
            else f"it has no {kind} topic; its topics are: {_listing(list(by_name.values()))}"
        )
        raise BagError(f"bag {bag} has no {role} topic {name}: {where}")
    if topic.msgtype not in types:
        raise BagError(
            f"topic {name} in bag {bag} has type {topic.msgtype}, but the {role} topic must be "
            f"{' or '.join(types)}"
        )
    if topic.count == 0:
        raise BagError(f"{role} topic {name} in bag {bag} has no messages")
    return topic


def _discover_image(
    bag: Path | str, reader: Reader, topics: tuple[TopicSummary, ...]
) -> TopicSummary:
    typed = [t for t in topics if t.msgtype in IMAGE_TYPES and t.count > 0]
    candidates = [
        t
        for t in typed
        if not any(word in t.name.lower() for word in _NOT_IMAGE_WORDS)
        and _is_camera_image(reader, t)
    ]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        others = f"; its image topics are: {_listing(typed)}" if typed else ""
        raise BagError(
            f"bag {bag} has no camera image topic (a color sensor_msgs/Image or "
            f"CompressedImage whose name has no 'label', 'mask' or 'segmentation'){others}; "
            f"its topics are: {_listing(topics)}. Name the topic (--image-topic)"
        )
    raise BagError(
        f"bag {bag} has {len(candidates)} camera image topics: {_listing(candidates)}; "
        "name the one to use (--image-topic)"
    )


def _discover_label(
    bag: Path | str, topics: tuple[TopicSummary, ...], exclude: set[str]
) -> TopicSummary | None:
    candidates = [
        t
        for t in topics
        if t.msgtype == IMAGE
        and t.count > 0
        and "label" in t.name.lower()
        and t.name not in exclude
    ]
    if len(candidates) > 1:
        raise BagError(
            f"bag {bag} has {len(candidates)} label topics: {_listing(candidates)}; name the "
            "one to use (--label-topic)"
        )
    return candidates[0] if candidates else None


def _is_camera_image(reader: Reader, topic: TopicSummary) -> bool:
    """Whether the topic's first message is a color camera image (not depth, mono, float)."""
    connections = [c for c in reader.connections if c.topic == topic.name]
    for connection, _, data in reader.messages(connections=connections):
        msg = typestore().deserialize_cdr(data, connection.msgtype)
        if connection.msgtype == COMPRESSED_IMAGE:
            return "compresseddepth" not in str(msg.format).lower()
        return msg.encoding in _COLOR_ENCODINGS
    return False


def _listing(topics: list[TopicSummary] | tuple[TopicSummary, ...]) -> str:
    return ", ".join(t.describe() for t in topics) or "(none)"
