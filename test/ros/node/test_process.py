"""What only processes show: vltseg_node in its own process, camera-sized frames through Fast
DDS (large-data profile) both ways, and its lifecycle services driven from another process.
The node's logic is tested in this process (test_node.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lifecycle_msgs.msg import Transition
from sensor_msgs.msg import Image

from test.real_vision_msgs import LABEL_INFO_HASH, receive_label_info
from test.ros.harness import NodeProcess, camera_frame, ros_environment, wait_until
from vltseg_ros.config.model_config import load_class_set
from vltseg_ros.msg import SegmentationInfo
from vltseg_ros.ros.node.messages import array_to_image

PARAMS = {
    "model": "tiny",
    "inference": {"mode": "whole", "whole_size": [64, 128]},
    "qos": {"input": {"reliability": "reliable"}},
    "autostart": False,
}


def test_camera_frames_cross_processes_and_the_lifecycle_services_work(ros, tmp_path) -> None:
    peer, env = ros
    node = NodeProcess(tmp_path, PARAMS, env)
    try:
        peer.listen("camera/segmentation/mask", Image)
        peer.listen("camera/segmentation/info", SegmentationInfo)
        assert peer.state() == "unconfigured"
        assert peer.lifecycle(Transition.TRANSITION_CONFIGURE)
        assert peer.lifecycle(Transition.TRANSITION_ACTIVATE)
        assert peer.state() == "active"
        peer.wait_for_subscriber("camera/image_raw", Image)
        frame = camera_frame(1024, 2048)  # 6 MiB of rgb8
        for i in range(2):
            header = peer.header(f"f{i}")
            peer.publish("camera/image_raw", array_to_image(frame, "rgb8", header))
            wait_until(  # both: the large mask may arrive after the info
                lambda n=i: (
                    min(
                        len(peer.messages(f"camera/segmentation/{kind}"))
                        for kind in ("mask", "info")
                    )
                    > n
                ),
                60,
                "mask and info",
            )
        for i, (mask, info) in enumerate(
            zip(
                peer.messages("camera/segmentation/mask"),
                peer.messages("camera/segmentation/info"),
                strict=True,
            )
        ):
            assert mask.header.frame_id == info.header.frame_id == f"f{i}"
            labels = np.frombuffer(mask.data, np.uint8).reshape(1024, 2048)
            assert labels.max() < 19
            fractions = np.bincount(labels.ravel(), minlength=19)[:19] / labels.size
            np.testing.assert_allclose(info.class_fraction, fractions, atol=1e-6)
        assert peer.lifecycle(Transition.TRANSITION_DEACTIVATE)
        assert peer.state() == "inactive"
        assert not peer.lifecycle(Transition.TRANSITION_DEACTIVATE)  # not from inactive
        assert node.alive() and "Traceback" not in node.log()
    finally:
        node.stop()


def test_a_subscriber_built_from_the_real_vision_msgs_receives_the_label_info(
    real_vision_msgs, tmp_path
) -> None:
    """The node process (the venv's vision_msgs subset) and a subscriber process importing the
    unmodified vision_msgs 4.1.1 (../shared/ros2_vision_msgs): 19 classes + 255 unlabeled, the
    threshold in force, one type hash on both ends."""
    env = ros_environment(tmp_path)
    params = {**PARAMS, "autostart": True, "confidence_threshold": 0.4, "cameras": ["front"]}
    node = NodeProcess(tmp_path, params, env)
    try:
        got = receive_label_info(real_vision_msgs, "/front/segmentation/label_info", env)
        assert not got.timed_out, node.log()[-2000:]
        assert Path(got.module).is_relative_to(real_vision_msgs)
        (message,) = got.messages
        names = load_class_set("cityscapes").names
        assert message["class_map"] == [*map(list, enumerate(names)), [255, "unlabeled"]]
        assert message["threshold"] == pytest.approx(0.4)
        assert got.publisher_hashes() == got.subscription_hashes() == {LABEL_INFO_HASH}
        assert LABEL_INFO_HASH == (
            "RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783"
        )
    finally:
        node.stop()
