"""Live replay: a bag played into a real vltseg_node process, its outputs recorded and scored."""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image
from vision_msgs.msg import LabelInfo, VisionClass

from test.ros.harness import wait_until
from vltseg_ros.bag.make_bag import BagLayout, synthetic_frames, write_frames_bag
from vltseg_ros.bag.topics import list_topics, open_bag
from vltseg_ros.config.model_config import load_class_set
from vltseg_ros.msg import SegmentationInfo
from vltseg_ros.ros.replay.live import ReplayError, run_live_replay

FAST = {"model": "tiny", "inference": {"mode": "whole", "whole_size": [64, 128]}}
# Slide over 256x512 frames with 64-pixel crops: about a second per frame on 2 CPU cores.
SLOW = {"model": "tiny", "inference": {"mode": "slide"}}
LABEL_INFO = "/camera/segmentation/label_info"


@pytest.fixture
def replay_env(tmp_path, monkeypatch):
    """A private ROS domain for the node process and the in-process player / recorder."""
    from test.ros.harness import ros_environment

    for key, value in ros_environment(tmp_path).items():
        monkeypatch.setenv(key, value)


def _bag(tmp_path, frames: int, rate: float, compressed: bool = False, size=(128, 256)):
    path = tmp_path / "input"
    layout = BagLayout(rate=rate, compressed=compressed)
    write_frames_bag(path, synthetic_frames(frames, *size), layout)
    return path


def _topic_counts(bag) -> dict[str, int]:
    with open_bag(bag) as reader:
        return {t.name: t.count for t in list_topics(reader)}


def test_slow_playback_drops_nothing_and_records_everything(replay_env, tmp_path) -> None:
    bag = _bag(tmp_path, frames=5, rate=2.0, compressed=True)
    out = tmp_path / "eval"
    report = run_live_replay(bag, out, FAST, rate=1.0, save_overlays=True)
    assert report.dropped_frames == 0
    assert report.frames == 5  # every mask scored against its label
    assert report.confusion.pixels == 5 * 128 * 256
    assert len(report.latencies_ms) == 5 and min(report.latencies_ms) > 0
    assert report.model == "tiny" and report.checkpoint == ""
    for name in ("report.md", "report.json", "iou.png", "confusion.png", "node.log"):
        assert (out / name).is_file(), name
    assert len(list((out / "overlays").glob("*.png"))) == 5
    counts = _topic_counts(out / "segmented")
    for topic in (
        "/camera/image_raw/compressed",
        "/camera/labels",
        "/camera/camera_info",
        "/camera/segmentation/mask",
        "/camera/segmentation/confidence",
        "/camera/segmentation/overlay",
        "/camera/segmentation/info",
        "/camera/segmentation/camera_info",
    ):
        assert counts.get(topic) == 5, (topic, counts)
    assert counts.get(LABEL_INFO) == 1, counts  # latched, published once at activation
    with open_bag(out / "segmented") as reader:  # rclpy reads what the recorder wrote
        masks = [c for c in reader.connections if c.topic == "/camera/segmentation/mask"]
        infos = [c for c in reader.connections if c.topic == "/camera/segmentation/info"]
        mask = deserialize_message(bytes(next(reader.messages(connections=masks))[2]), Image)
        info = deserialize_message(
            bytes(next(reader.messages(connections=infos))[2]), SegmentationInfo
        )
    assert (mask.encoding, mask.height, mask.width) == ("mono8", 128, 256)
    assert np.frombuffer(mask.data, np.uint8).max() < 19
    assert info.header.stamp == mask.header.stamp and info.model == "tiny"
    label_info, log_time = _label_info(out / "segmented")
    names = load_class_set("cityscapes").names
    entries = [(c.class_id, c.class_name) for c in label_info.class_map]
    assert entries == [*enumerate(names), (255, "unlabeled")] and label_info.threshold == 0.0
    with open_bag(bag) as reader:
        assert log_time <= reader.start_time  # before the first mask in the recorded bag


def _label_info(bag) -> tuple[LabelInfo, int]:
    """The one LabelInfo of ``bag`` (rclpy's message) and its log time."""
    with open_bag(bag) as reader:
        wanted = [c for c in reader.connections if c.topic == LABEL_INFO]
        assert [c.msgtype for c in wanted] == ["vision_msgs/msg/LabelInfo"]
        ((_, log_time, data),) = list(reader.messages(connections=wanted))
    return deserialize_message(bytes(data), LabelInfo), log_time


def test_pushed_playback_reports_the_frames_the_node_dropped(replay_env, tmp_path) -> None:
    bag = _bag(tmp_path, frames=12, rate=50.0, size=(256, 512))
    report = run_live_replay(bag, tmp_path / "eval", SLOW, rate=1.0)
    assert report.dropped_frames > 0
    assert report.frames + report.dropped_frames == 12
    assert report.frames >= 1


def test_lockstep_keeps_up_with_a_slow_node(replay_env, tmp_path) -> None:
    bag = _bag(tmp_path, frames=4, rate=50.0, size=(256, 512))
    report = run_live_replay(bag, tmp_path / "eval", SLOW, lockstep=True)
    assert report.dropped_frames == 0 and report.frames == 4


def test_a_node_that_cannot_activate_fails_fast(replay_env, tmp_path) -> None:
    bag = _bag(tmp_path, frames=1, rate=2.0)
    with pytest.raises(ReplayError, match="not active"):
        run_live_replay(bag, tmp_path / "eval", {**FAST, "checkpoint": "/missing.safetensors"})
    assert "does not exist" in (tmp_path / "eval" / "node.log").read_text()


def test_an_output_after_the_report_is_not_written_to_the_closed_bag(ros, tmp_path) -> None:
    from rclpy.parameter import Parameter
    from rclpy.serialization import serialize_message

    from vltseg_ros.ros.node.messages import array_to_image
    from vltseg_ros.ros.replay.recorder import ReplayRecorder

    bag = _bag(tmp_path, frames=2, rate=10.0)
    out = tmp_path / "eval"
    recorder = ReplayRecorder(
        parameter_overrides=[
            Parameter("bag", value=str(bag)),
            Parameter("out", value=str(out)),
        ]
    )
    try:
        report = recorder.finish()
        assert report.dropped_frames == 2  # no node ran: nothing arrived
        late = array_to_image(np.zeros((4, 4), np.uint8), "mono8", ros[0].header("camera"))
        recorder._on_output("mask", serialize_message(late))  # a late callback: no error
        assert recorder.finish() is report
        assert _topic_counts(out / "segmented").get("/camera/segmentation/mask", 0) == 0
    finally:
        recorder.destroy_node()


def test_the_recorder_gets_a_label_info_published_before_it_subscribed(ros, tmp_path) -> None:
    from rclpy.parameter import Parameter
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from vltseg_ros.ros.replay.recorder import ReplayRecorder

    bag = _bag(tmp_path, frames=2, rate=10.0)
    latched = QoSProfile(
        depth=1,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )
    published = LabelInfo(
        class_map=[VisionClass(class_id=i, class_name=n) for i, n in ((0, "free"), (7, "wall"))],
        threshold=0.375,
    )  # stamp 0, as a node on sim time publishes it before the first /clock
    ros[0].node.create_publisher(LabelInfo, LABEL_INFO, latched).publish(published)
    out = tmp_path / "eval"
    recorder = ReplayRecorder(
        parameter_overrides=[Parameter("bag", value=str(bag)), Parameter("out", value=str(out))]
    )
    ros[0].add(recorder)
    try:
        wait_until(lambda: recorder._writer.counts.get(LABEL_INFO) == 1, 30, "the LabelInfo")
        ros[0].remove(recorder)
        recorder.finish()
    finally:
        recorder.destroy_node()
    label_info, log_time = _label_info(out / "segmented")
    assert label_info == published  # written as it came
    with open_bag(bag) as reader:  # logged at the input bag's start, not at 1970
        assert log_time == reader.start_time
