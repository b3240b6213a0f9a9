"""Writing and reading bags: CDR messages (checked with rclpy), stamps, topic discovery, errors."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from test.bag import START_NS, synthetic_bag
from vltseg_ros.bag import serialization
from vltseg_ros.bag.reading import iter_frames, read_labels, read_messages
from vltseg_ros.bag.topics import camera_name, find_topics, output_namespace
from vltseg_ros.bag.typestore import (
    LABEL_INFO,
    VISION_CLASS,
    find_msg_dir,
    find_vision_msgs_dir,
    msg_search_dirs,
    typestore,
    vision_msgs_search_dirs,
)
from vltseg_ros.bag.writing import BagWriter
from vltseg_ros.config.model_config import load_class_set
from vltseg_ros.errors import BagError
from vltseg_ros.inference.outputs import OutputSettings, frame_outputs
from vltseg_ros.inference.result import SegmentationResult
from vltseg_ros.inference.summary import ResultSummary

IMAGE = "sensor_msgs/msg/Image"
REPO = Path(__file__).resolve().parents[2]
# vision_msgs 4.1.1 (test/real_vision_msgs.py has them too; interfaces/vision_msgs/README.md)
LABEL_INFO_HASH = "RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783"
VISION_CLASS_HASH = "RIHS01_1e4a11f0fed50b5623cb8ff26ca0e37952a48a9c074d16f804b44e9164c2037a"


def test_typestore_registers_the_package_messages_as_rosidl_does() -> None:
    assert find_msg_dir() == REPO / "msg"  # the source tree comes first
    store = typestore()
    for name in ("SegmentationInfo", "ClassSet"):
        generated = next(
            (d / f"{name}.json" for d in msg_search_dirs()[1:] if (d / f"{name}.json").is_file()),
            None,
        )
        if generated is None:
            continue  # messages not built here: nothing to compare the hash with
        expected = json.loads(generated.read_text())["type_hashes"][0]["hash_string"]
        assert store.hash_rihs01(f"vltseg_ros/msg/{name}") == expected


def test_missing_message_definitions_are_a_clear_error(monkeypatch, tmp_path: Path) -> None:
    import vltseg_ros.bag.typestore as module

    monkeypatch.setattr(module, "msg_search_dirs", lambda: [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(BagError, match=r"SegmentationInfo\.msg.*share/vltseg_ros/msg"):
        module.find_msg_dir()


def test_typestore_registers_vision_msgs_with_upstreams_type_hashes() -> None:
    assert find_vision_msgs_dir() == REPO / "interfaces" / "vision_msgs" / "msg"
    # a pip install's copy (setup.py data_files): under share/vltseg_ros, not share/vision_msgs
    assert vision_msgs_search_dirs()[1] == (
        Path(sys.prefix) / "share" / "vltseg_ros" / "interfaces" / "vision_msgs" / "msg"
    )
    assert typestore().hash_rihs01(LABEL_INFO) == LABEL_INFO_HASH
    assert typestore().hash_rihs01(VISION_CLASS) == VISION_CLASS_HASH


def test_label_info_without_vision_msgs_definitions_is_a_clear_error(
    monkeypatch, tmp_path: Path
) -> None:
    import vltseg_ros.bag.typestore as module

    monkeypatch.setattr(module, "vision_msgs_search_dirs", lambda: [tmp_path / "a"])
    monkeypatch.setattr(serialization, "typestore", lambda: get_typestore(Stores.ROS2_KILTED))
    with pytest.raises(BagError, match=r"VisionClass and LabelInfo.*ros-\$ROS_DISTRO-vision"):
        serialization.label_info_cdr(START_NS, "cam", [(0, "road")], 0.5)


def test_label_info_cdr_reads_back_with_rclpy_rosbags_and_in_a_bag(tmp_path: Path) -> None:
    from rclpy.serialization import deserialize_message, serialize_message
    from vision_msgs.msg import LabelInfo, VisionClass

    classes = [(i, f"class {i}") for i in range(19)] + [(255, "unlabeled")]
    cdr = serialization.label_info_cdr(START_NS + 7, "camera_front", classes, 0.5)
    expected = LabelInfo(
        class_map=[VisionClass(class_id=i, class_name=n) for i, n in classes], threshold=0.5
    )
    expected.header.frame_id = "camera_front"
    expected.header.stamp.sec, expected.header.stamp.nanosec = divmod(START_NS + 7, 10**9)
    assert deserialize_message(cdr, LabelInfo) == expected
    # and rclpy's bytes decode with rosbags (padding may differ: compare decoded messages)
    decoded = typestore().deserialize_cdr(serialize_message(expected), LABEL_INFO)
    assert [(c.class_id, c.class_name) for c in decoded.class_map] == classes
    assert decoded.threshold == 0.5 and decoded.header.frame_id == "camera_front"
    assert serialization.stamp_to_ns(decoded.header.stamp) == START_NS + 7

    with BagWriter(tmp_path / "bag") as writer:
        writer.add_topic("/camera_front/label_info", LABEL_INFO)
        writer.write("/camera_front/label_info", START_NS, cdr)
    assert LABEL_INFO_HASH in (tmp_path / "bag" / "metadata.yaml").read_text()
    with Reader(tmp_path / "bag") as reader:
        ((connection, _, data),) = list(reader.messages())
    assert connection.msgtype == LABEL_INFO
    assert deserialize_message(bytes(data), LabelInfo) == expected


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_written_messages_read_back_with_rosbags_and_rclpy(tmp_path: Path, storage: str) -> None:
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import CameraInfo, Image

    from vltseg_ros.msg import SegmentationInfo

    stamp = START_NS + 123
    rgb = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    confidence = np.linspace(0, 1, 24, dtype=np.float32).reshape(4, 6)
    summary = ResultSummary(np.full(19, 0.5, np.float32), np.full(19, 0.25, np.float32), 0.1, 0.7)
    result = SegmentationResult(np.zeros((4, 6), np.uint8), confidence, summary=summary)
    classes = dataclasses.replace(
        load_class_set("cityscapes"), names=tuple(f"c{i}" for i in range(19))
    )
    outputs = frame_outputs(
        result,
        rgb,
        "rgb",
        OutputSettings(confidence_threshold=0.3),
        class_set=classes,
        with_overlay=False,
        camera="front",
        model="tiny",
        checkpoint="",
        inference_latency=0.02,
        end_to_end_latency=0.05,
        batch_frames=2,
    )
    info = serialization.outputs_cdr(outputs, stamp, "cam")["info"]
    cdrs = {
        "/rgb": (IMAGE, serialization.image_cdr(rgb, "rgb8", stamp, "cam")),
        "/conf": (IMAGE, serialization.image_cdr(confidence, "32FC1", stamp, "cam")),
        "/info": ("vltseg_ros/msg/SegmentationInfo", info),
        "/camera_info": (
            "sensor_msgs/msg/CameraInfo",
            serialization.camera_info_cdr(4, 6, stamp, "cam"),
        ),
    }
    with BagWriter(tmp_path / "bag", storage) as writer:
        for topic, (msgtype, cdr) in cdrs.items():
            writer.add_topic(topic, msgtype)
            writer.write(topic, stamp + 1, cdr)
    with Reader(tmp_path / "bag") as reader:
        stored = {c.topic: (c.msgtype, t, bytes(d)) for c, t, d in reader.messages()}
    assert {topic: (msgtype, cdr) for topic, (msgtype, _, cdr) in stored.items()} == cdrs
    assert {t for _, t, _ in stored.values()} == {stamp + 1}

    image = deserialize_message(cdrs["/rgb"][1], Image)
    assert (image.header.stamp.sec, image.header.stamp.nanosec) == divmod(stamp, 10**9)
    assert image.header.frame_id == "cam" and image.encoding == "rgb8" and image.step == 18
    assert bytes(image.data) == rgb.tobytes()
    conf = deserialize_message(cdrs["/conf"][1], Image)
    assert conf.encoding == "32FC1" and conf.step == 24
    np.testing.assert_array_equal(np.frombuffer(bytes(conf.data), np.float32), confidence.ravel())
    msg = deserialize_message(info, SegmentationInfo)
    assert (msg.camera, msg.model, msg.checkpoint, msg.height, msg.width) == (
        "front",
        "tiny",
        "",
        4,
        6,
    )
    assert list(msg.class_names) == [f"c{i}" for i in range(19)] and msg.batch_frames == 2
    assert msg.class_fraction.tolist() == [0.5] * 19 and msg.mean_confidence == pytest.approx(0.7)
    assert msg.confidence_threshold == pytest.approx(0.3) and msg.inference_latency == 0.02
    camera = deserialize_message(cdrs["/camera_info"][1], CameraInfo)
    assert (camera.height, camera.width) == (4, 6)
    assert camera.k.tolist() == [6.0, 0.0, 3.0, 0.0, 6.0, 2.0, 0.0, 0.0, 1.0]


def test_writer_refuses_to_overwrite_and_checks_topics(tmp_path: Path) -> None:
    (tmp_path / "exists").mkdir()
    with pytest.raises(BagError, match="already exists"):
        BagWriter(tmp_path / "exists")
    writer = BagWriter(tmp_path / "bag")
    with pytest.raises(BagError, match="call add_topic first"):
        writer.write("/x", 0, b"")
    with pytest.raises(BagError, match="unknown message type 'foo/msg/Bar'"):
        writer.add_topic("/x", "foo/msg/Bar")
    writer.add_topic("/x", IMAGE)
    writer.add_topic("/x", IMAGE)  # again with the same type: fine
    with pytest.raises(BagError, match="was added as sensor_msgs/msg/Image"):
        writer.add_topic("/x", "sensor_msgs/msg/CameraInfo")
    writer.discard()
    assert not (tmp_path / "bag").exists()


@pytest.mark.parametrize("compressed", [False, True])
def test_frames_come_with_their_labels_stamps_and_color_order(tmp_path: Path, compressed) -> None:
    expected = synthetic_bag(tmp_path / "bag", frames=3, compressed=compressed)
    topics = find_topics(tmp_path / "bag")
    assert topics.image_topic == (
        "/camera/image_raw/compressed" if compressed else "/camera/image_raw"
    )
    assert (topics.label_topic, topics.image_count, topics.label_count) == ("/camera/labels", 3, 3)
    frames = list(iter_frames(tmp_path / "bag", topics.image_topic, topics.label_topic))
    assert [f.stamp_ns for f in frames] == [START_NS + i * 100_000_000 for i in range(3)]
    for frame, (rgb, label) in zip(frames, expected, strict=True):
        assert frame.message.log_time_ns == frame.stamp_ns and frame.message.frame_id == "camera"
        np.testing.assert_array_equal(frame.label, label)
        assert frame.color_order == ("bgr" if compressed else "rgb")
        decoded = frame.image if frame.color_order == "rgb" else frame.image[..., ::-1]
        if compressed:  # JPEG quality 95 of a noisy image; swapped channels would be far off
            assert np.abs(decoded.astype(int) - rgb).mean() < 10
            means = decoded.reshape(-1, 3).mean(0) - rgb.reshape(-1, 3).mean(0)
            assert np.abs(means).max() < 2
        else:
            np.testing.assert_array_equal(decoded, rgb)
    labels = read_labels(tmp_path / "bag", "/camera/labels")
    assert sorted(labels) == [f.stamp_ns for f in frames]
    np.testing.assert_array_equal(labels[START_NS], expected[0][1])


def test_labels_are_matched_by_stamp_not_by_order(tmp_path: Path) -> None:
    """Labels stored before, after and between their images, one image without label."""
    stamps = [START_NS + i for i in range(4)]
    labels = {s: np.full((2, 3), i, np.uint8) for i, s in enumerate(stamps)}
    rgb = np.zeros((2, 3, 3), np.uint8)
    with BagWriter(tmp_path / "bag", "sqlite3") as writer:
        writer.add_topic("/cam/image_raw", IMAGE)
        writer.add_topic("/cam/labels", IMAGE)
        order = [("l", 2), ("i", 0), ("i", 1), ("l", 0), ("i", 2), ("i", 3), ("l", 1)]
        for log_time, (kind, index) in enumerate(order):
            topic, array = (
                ("/cam/labels", labels[stamps[index]]) if kind == "l" else ("/cam/image_raw", rgb)
            )
            encoding = "mono8" if kind == "l" else "rgb8"
            cdr = serialization.image_cdr(array, encoding, stamps[index], "c")
            writer.write(topic, START_NS + log_time, cdr)
    pairs = list(read_messages(tmp_path / "bag", "/cam/image_raw", "/cam/labels"))
    assert [m.stamp_ns for m, _ in pairs] == stamps  # bag order of the images is kept
    assert [None if lab is None else lab.stamp_ns for _, lab in pairs] == [*stamps[:3], None]
    frames = list(iter_frames(tmp_path / "bag", "/cam/image_raw", "/cam/labels"))
    assert [int(f.label[0, 0]) for f in frames[:3]] == [0, 1, 2] and frames[3].label is None


def test_a_repeated_image_stamp_gets_no_second_label(tmp_path: Path) -> None:
    """Two images with one stamp (a camera that repeats its stamp): the first is paired with
    the label, the second gets none (never the same label twice, nor another frame's)."""
    stamps = [START_NS, START_NS, START_NS + 1]
    rgb = np.zeros((2, 3, 3), np.uint8)
    with BagWriter(tmp_path / "bag", "sqlite3") as writer:
        writer.add_topic("/cam/image_raw", IMAGE)
        writer.add_topic("/cam/labels", IMAGE)
        for log_time, stamp in enumerate(stamps):
            writer.write(
                "/cam/image_raw",
                START_NS + log_time,
                serialization.image_cdr(rgb, "rgb8", stamp, "c"),
            )
        for log_time, stamp in enumerate((START_NS, START_NS + 1), start=10):
            label = np.full((2, 3), stamp - START_NS + 7, np.uint8)
            writer.write(
                "/cam/labels",
                START_NS + log_time,
                serialization.image_cdr(label, "mono8", stamp, "c"),
            )
    pairs = list(read_messages(tmp_path / "bag", "/cam/image_raw", "/cam/labels"))
    assert [m.stamp_ns for m, _ in pairs] == stamps
    assert [None if lab is None else lab.stamp_ns for _, lab in pairs] == [
        START_NS,
        None,
        START_NS + 1,
    ]
    frames = list(iter_frames(tmp_path / "bag", "/cam/image_raw", "/cam/labels"))
    assert [None if f.label is None else int(f.label[0, 0]) for f in frames] == [7, None, 8]


def test_topic_discovery_rule(tmp_path: Path) -> None:
    stamp, rgb, mono = START_NS, np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2), np.uint8)
    with BagWriter(tmp_path / "bag") as writer:
        content = {
            "/front/image_raw": serialization.image_cdr(rgb, "rgb8", stamp, "f"),
            "/front/depth": serialization.image_cdr(
                np.zeros((2, 2), np.float32), "32FC1", stamp, "f"
            ),
            # mono: not a candidate
            "/front/gray": serialization.image_cdr(mono, "mono8", stamp, "f"),
            "/front/segmentation/overlay": serialization.image_cdr(rgb, "rgb8", stamp, "f"),
            "/front/mask_rgb": serialization.image_cdr(rgb, "rgb8", stamp, "f"),
            "/front/semantic_labels": serialization.image_cdr(mono, "mono8", stamp, "f"),
        }
        for topic, cdr in content.items():
            writer.add_topic(topic, IMAGE)
            writer.write(topic, stamp, cdr)
    topics = find_topics(tmp_path / "bag")
    assert (topics.image_topic, topics.label_topic) == (
        "/front/image_raw",
        "/front/semantic_labels",
    )
    assert not topics.compressed and len(topics.topics) == 6
    assert (
        output_namespace("/front/image_raw") == "/front"
        and camera_name("/front/image_raw") == "front"
    )
    assert (
        output_namespace("/a/b/image_raw/compressed") == "/a/b" and camera_name("/img") == "camera"
    )


def test_bag_errors_name_the_problem(tmp_path: Path) -> None:
    synthetic_bag(tmp_path / "bag", frames=1)
    bag = tmp_path / "bag"
    with pytest.raises(
        BagError,
        match=r"no image topic /nope.*/camera/image_raw \(sensor_msgs/msg/Image, 1 messages\)",
    ):
        find_topics(bag, "/nope")
    with pytest.raises(BagError, match="has type sensor_msgs/msg/CameraInfo"):
        find_topics(bag, "/camera/camera_info")
    with pytest.raises(BagError, match="cannot be both the image and the label topic"):
        find_topics(bag, "/camera/labels", "/camera/labels")
    with pytest.raises(BagError, match="label topic must be sensor_msgs/msg/Image"):
        find_topics(bag, label_topic="/camera/camera_info")
    with pytest.raises(BagError, match="does not exist"):
        find_topics(tmp_path / "missing")
    with pytest.raises(BagError, match="not a rosbag2"):
        find_topics(tmp_path)
    BagWriter(tmp_path / "empty").close()
    with pytest.raises(BagError, match="is empty"):
        find_topics(tmp_path / "empty")
