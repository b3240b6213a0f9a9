"""vltseg_node in its own process: outputs, two cameras, dropping, lifecycle, bad input.

Real rclpy and Fast DDS between processes, the tiny random-weight model, real-sized frames.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from test.ros.harness import NodeProcess, camera_frame, expect_failed_transition, wait_until
from vltseg_ros.checkpoint import save_checkpoint
from vltseg_ros.model.segmentor import build_model
from vltseg_ros.msg import ClassSet, SegmentationInfo
from vltseg_ros.ros.image_conversions import array_to_image

# Reliable input: a best-effort frame sent right after the subscription matched can be lost
# during discovery; tests that count every frame use the qos override. The default
# best-effort input is exercised by the burst and two-camera tests.
FAST_WHOLE = {
    "model": "tiny",
    "inference": {"mode": "whole", "whole_size": [64, 128]},
    "diagnostics_period": 0.2,
    "qos": {"input": {"reliability": "reliable"}},
}
OUT = "{camera}/segmentation/{kind}"


def _listen_outputs(peer, camera: str) -> None:
    for kind, msg_type in (
        ("mask", Image),
        ("confidence", Image),
        ("overlay", Image),
        ("info", SegmentationInfo),
        ("camera_info", CameraInfo),
    ):
        peer.listen(OUT.format(camera=camera, kind=kind), msg_type)


def _compressed(rgb: np.ndarray, header, fmt: str = ".jpg") -> CompressedImage:
    ok, data = cv2.imencode(fmt, rgb[..., ::-1])
    assert ok
    return CompressedImage(header=header, format="rgb8; jpeg compressed bgr8", data=data.tobytes())


def test_masks_match_their_input_frames(ros, tmp_path) -> None:
    peer, env = ros
    node = NodeProcess(tmp_path, FAST_WHOLE, env)
    try:
        _listen_outputs(peer, "camera")
        peer.listen("classes", ClassSet, qos=_latched())
        peer.listen("/diagnostics", DiagnosticArray)
        peer.wait_for_subscriber("camera/image_raw", Image)
        peer.wait_for_subscriber("camera/camera_info", CameraInfo)
        frame = camera_frame(1024, 2048)
        info = CameraInfo(height=1024, width=2048, k=[1000.0, 0, 1024, 0, 1000.0, 512, 0, 0, 1])
        sent = []
        for i in range(3):
            header = peer.header(f"cam_{i}")
            info.header = header
            peer.publish("camera/camera_info", info)
            time.sleep(0.1)
            peer.publish("camera/image_raw", array_to_image(frame, "rgb8", header))
            sent.append(header)
            wait_until(
                lambda n=i: len(peer.messages(OUT.format(camera="camera", kind="info"))) > n,
                60,
                f"result {i}",
            )
        masks = peer.messages(OUT.format(camera="camera", kind="mask"))
        confidences = peer.messages(OUT.format(camera="camera", kind="confidence"))
        infos = peer.messages(OUT.format(camera="camera", kind="info"))
        overlays = peer.messages(OUT.format(camera="camera", kind="overlay"))
        camera_infos = peer.messages(OUT.format(camera="camera", kind="camera_info"))
        assert len(masks) == len(confidences) == len(infos) == 3
        assert overlays, "overlay is published while someone subscribes"
        for header, mask, conf, info_msg in zip(sent, masks, confidences, infos, strict=True):
            for msg in (mask, conf, info_msg):
                assert msg.header.frame_id == header.frame_id
                assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (
                    header.stamp.sec,
                    header.stamp.nanosec,
                )
            assert (mask.encoding, mask.height, mask.width) == ("mono8", 1024, 2048)
            labels = np.frombuffer(mask.data, np.uint8).reshape(1024, 2048)
            assert labels.max() < 19
            assert (conf.encoding, conf.height, conf.width) == ("32FC1", 1024, 2048)
            confidence = np.frombuffer(conf.data, np.float32).reshape(1024, 2048)
            assert confidence.min() >= 1 / 19 - 1e-6 and confidence.max() <= 1.0
            assert (info_msg.height, info_msg.width) == (1024, 2048)
            fractions = np.bincount(labels.ravel(), minlength=19)[:19] / labels.size
            np.testing.assert_allclose(info_msg.class_fraction, fractions, atol=1e-6)
            assert info_msg.unlabeled_fraction == 0.0
            assert abs(info_msg.mean_confidence - confidence.mean()) < 1e-4
            assert len(info_msg.class_names) == 19 and info_msg.model == "tiny"
            assert info_msg.checkpoint == "" and info_msg.batch_frames == 1
            assert 0 < info_msg.inference_latency <= info_msg.end_to_end_latency < 60
        overlay = overlays[-1]
        assert (overlay.encoding, overlay.height, overlay.width) == ("rgb8", 1024, 2048)
        assert camera_infos and camera_infos[-1].k[0] == 1000.0  # output = input resolution
        classes = peer.messages("classes")
        assert classes and classes[0].names[0] == "road" and len(classes[0].colors) == 19
        wait_until(
            lambda: (peer.diagnostics("camera") or {}).get("published") == "3", 10, "diagnostics"
        )
        assert node.alive()
    finally:
        node.stop()


def _latched() -> QoSProfile:
    return QoSProfile(
        depth=1,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )


def test_two_cameras_raw_and_compressed_at_model_resolution(ros, tmp_path) -> None:
    peer, env = ros
    params = {
        **FAST_WHOLE,
        "cameras": ["front", "rear"],
        "rear": {"transport": "compressed"},
        "output_resolution": "model",
        "confidence_encoding": "mono8",
        "qos": {"input": {"reliability": "best_effort"}},
    }  # the default sensor QoS
    node = NodeProcess(tmp_path, params, env)
    try:
        _listen_outputs(peer, "front")
        _listen_outputs(peer, "rear")
        peer.wait_for_subscriber("front/image_raw", Image)
        peer.wait_for_subscriber("rear/image_raw/compressed", CompressedImage)
        frame = camera_frame(512, 1024)
        for _ in range(3):
            peer.publish("front/image_raw", array_to_image(frame, "rgb8", peer.header("front")))
            peer.publish("rear/image_raw/compressed", _compressed(frame, peer.header("rear")))
            time.sleep(0.3)
        for camera in ("front", "rear"):
            topic = OUT.format(camera=camera, kind="mask")
            wait_until(lambda t=topic: len(peer.messages(t)) >= 1, 60, f"{camera} mask")
            mask = peer.messages(topic)[-1]
            assert mask.header.frame_id == camera
            assert (mask.height, mask.width) == (64, 128)  # the model's whole_size
            conf = peer.messages(OUT.format(camera=camera, kind="confidence"))[-1]
            assert conf.encoding == "mono8" and (conf.height, conf.width) == (64, 128)
        infos = peer.messages(OUT.format(camera="front", kind="info"))
        infos += peer.messages(OUT.format(camera="rear", kind="info"))
        assert {i.camera for i in infos} == {"front", "rear"}
        assert max(i.batch_frames for i in infos) <= 2
    finally:
        node.stop()


def test_burst_drops_busy_frames_and_stale_frames_are_counted(ros, tmp_path) -> None:
    peer, env = ros
    # Slide mode over 512x1024 with 64-pixel crops: ~230 crops, inference slower than the burst.
    # Reliable input: under load, best effort loses most of a burst of 1.5 MB frames in
    # transport, and this test is about what the node does with the frames it receives.
    params = {
        "model": "tiny",
        "diagnostics_period": 0.2,
        "max_age": 5.0,
        "qos": {"input": {"reliability": "reliable"}},
    }
    node = NodeProcess(tmp_path, params, env)
    try:
        _listen_outputs(peer, "camera")
        peer.listen("/diagnostics", DiagnosticArray)
        peer.wait_for_subscriber("camera/image_raw", Image)
        frame = array_to_image(camera_frame(512, 1024), "rgb8", peer.header("x"))
        for _ in range(20):
            frame.header = peer.header("burst")
            peer.publish("camera/image_raw", frame)
            time.sleep(0.01)
        for _ in range(3):  # captured 30 s ago: stale
            frame.header = peer.header("stale", age=30.0)
            peer.publish("camera/image_raw", frame)
            time.sleep(1.0)

        def settled() -> bool:
            d = peer.diagnostics("camera") or {}
            counted = sum(int(d.get(k, 0)) for k in ("published", "dropped_busy", "dropped_stale"))
            return int(d.get("dropped_stale", 0)) >= 1 and counted == int(d.get("received", -1))

        wait_until(
            settled, 60, "every received frame accounted for", lambda: peer.diagnostics("camera")
        )
        diag = peer.diagnostics("camera")
        received, published = int(diag["received"]), int(diag["published"])
        assert received >= 10
        assert 1 <= published <= 4, "frames were queued instead of replaced"
        assert int(diag["dropped_busy"]) >= received - published - 3
        masks = peer.messages(OUT.format(camera="camera", kind="mask"))
        assert len(masks) == published
        assert all(m.header.frame_id == "burst" for m in masks)  # stale frames never published
    finally:
        node.stop()


def test_lifecycle_transitions_through_services(ros, tmp_path) -> None:
    peer, env = ros
    node = NodeProcess(tmp_path, {**FAST_WHOLE, "autostart": False}, env)
    try:
        _listen_outputs(peer, "camera")
        assert peer.state() == "unconfigured"
        assert peer.lifecycle(Transition.TRANSITION_CONFIGURE)
        assert peer.state() == "inactive"
        assert peer.lifecycle(Transition.TRANSITION_ACTIVATE)
        assert peer.state() == "active"
        peer.wait_for_subscriber("camera/image_raw", Image)
        image = array_to_image(camera_frame(128, 256), "rgb8", peer.header("a"))
        peer.publish("camera/image_raw", image)
        topic = OUT.format(camera="camera", kind="mask")
        wait_until(lambda: len(peer.messages(topic)) == 1, 60, "mask while active")
        assert peer.lifecycle(Transition.TRANSITION_DEACTIVATE)
        assert peer.state() == "inactive"
        image.header = peer.header("b")
        peer.publish("camera/image_raw", image)
        time.sleep(1.0)
        assert len(peer.messages(topic)) == 1  # nothing published while inactive
        assert peer.lifecycle(Transition.TRANSITION_CLEANUP)
        assert peer.state() == "unconfigured"
        assert peer.lifecycle(Transition.TRANSITION_CONFIGURE)
        assert peer.lifecycle(Transition.TRANSITION_ACTIVATE)
        peer.wait_for_subscriber("camera/image_raw", Image)
        image.header = peer.header("c")
        peer.publish("camera/image_raw", image)
        wait_until(lambda: len(peer.messages(topic)) == 2, 60, "mask after re-activation")
        assert peer.messages(topic)[-1].header.frame_id == "c"
        assert node.alive()
    finally:
        node.stop()


@pytest.mark.parametrize(
    ("params", "transition", "expected_state", "log_text"),
    [
        (
            {"device": "gpu9"},
            Transition.TRANSITION_CONFIGURE,
            "unconfigured",
            "device: 'gpu9' is not cpu, cuda or cuda:N",
        ),
        ({"batch_size": 0}, Transition.TRANSITION_CONFIGURE, "unconfigured", "batch_size"),
        (
            {"cameras": ["front", "front"]},
            Transition.TRANSITION_CONFIGURE,
            "unconfigured",
            "duplicate",
        ),
        (
            {"inference": {"crop_size": [64, 64], "stride": [128, 128]}},
            Transition.TRANSITION_ACTIVATE,
            "inactive",
            "must not exceed crop_size",
        ),
        (
            {"checkpoint": "/nonexistent/weights.safetensors"},
            Transition.TRANSITION_CONFIGURE,
            "unconfigured",
            "checkpoint: file '/nonexistent/weights.safetensors' does not exist",
        ),
    ],
)
def test_invalid_settings_fail_the_transition_not_the_node(
    ros, tmp_path, params, transition, expected_state, log_text
) -> None:
    peer, env = ros
    node = NodeProcess(tmp_path, {"model": "tiny", "autostart": False, **params}, env)
    expect_failed_transition(peer, node, transition, expected_state, log_text)


def _bad_frames(peer) -> list[tuple[str, Image | CompressedImage]]:
    good = camera_frame(64, 128)

    def raw(**fields) -> Image:
        msg = array_to_image(good, "rgb8", peer.header("bad"))
        for key, value in fields.items():
            setattr(msg, key, value)
        return msg

    return [
        ("camera/image_raw", raw(encoding="yuv444_unknown")),
        ("camera/image_raw", raw(data=bytes(100))),  # truncated
        ("camera/image_raw", raw(data=bytes(64 * 128 * 3 + 7))),  # too long
        ("camera/image_raw", raw(height=0, width=0, step=0, data=b"")),  # zero size
        ("camera/image_raw", raw(height=1 << 20, width=1 << 20, step=3 << 20)),  # absurd
        ("camera/image_raw", raw(height=4, width=4, step=12, data=bytes(48))),  # < patch
        (
            "camera/image_raw/compressed",
            CompressedImage(header=peer.header("bad"), format="jpeg", data=b"\xff\xd8garbage"),
        ),
    ]


def test_bad_input_is_counted_and_the_next_good_frame_is_processed(ros, tmp_path) -> None:
    peer, env = ros
    params = {
        **FAST_WHOLE,
        "cameras": ["camera", "jpeg"],
        "jpeg": {"image_topic": "camera/image_raw", "transport": "compressed"},
    }
    node = NodeProcess(tmp_path, params, env)
    try:
        _listen_outputs(peer, "camera")
        peer.listen("/diagnostics", DiagnosticArray)
        peer.wait_for_subscriber("camera/image_raw", Image)
        peer.wait_for_subscriber("camera/image_raw/compressed", CompressedImage)
        bad = _bad_frames(peer)
        for count, (topic, msg) in enumerate(bad, start=1):
            msg.header = peer.header("bad")  # fresh: older than max_age would count as stale
            peer.publish(topic, msg)
            camera = "jpeg" if topic.endswith("compressed") else "camera"
            raw_count = sum(1 for t, _ in bad[:count] if not t.endswith("compressed"))
            expected = str(raw_count if camera == "camera" else count - raw_count)
            wait_until(
                lambda c=camera, e=expected: (
                    (peer.diagnostics(c) or {}).get("dropped_bad_input") == e
                ),
                30,
                f"bad frame {count} counted",
                lambda c=camera: (peer.diagnostics(c), node.log()[-1500:]),
            )
        assert node.alive()
        good = array_to_image(camera_frame(64, 128), "rgb8", peer.header("good"))
        peer.publish("camera/image_raw", good)
        topic = OUT.format(camera="camera", kind="mask")
        wait_until(
            lambda: any(m.header.frame_id == "good" for m in peer.messages(topic)),
            60,
            "the good frame's mask",
        )
        assert all(m.header.frame_id == "good" for m in peer.messages(topic))
        log = node.log()
        assert "skipped a bad frame" in log and "Traceback" not in log
    finally:
        node.stop()


def test_checkpoint_supplies_the_architecture(ros, tmp_path) -> None:
    peer, env = ros
    checkpoint = save_checkpoint(build_model("tiny"), tmp_path / "tiny.safetensors")
    params = {**FAST_WHOLE, "checkpoint": str(checkpoint)}
    del params["model"]  # empty: the architecture comes from the checkpoint
    node = NodeProcess(tmp_path, params, env)
    try:
        _listen_outputs(peer, "camera")
        peer.wait_for_subscriber("camera/image_raw", Image)
        peer.publish(
            "camera/image_raw", array_to_image(camera_frame(128, 256), "rgb8", peer.header("w"))
        )
        topic = OUT.format(camera="camera", kind="info")
        wait_until(lambda: peer.messages(topic), 60, "info")
        info = peer.messages(topic)[0]
        assert (info.model, info.checkpoint) == ("tiny", str(checkpoint))
        assert "RANDOM" not in node.log()
    finally:
        node.stop()
