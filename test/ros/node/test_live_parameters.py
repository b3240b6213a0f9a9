"""Parameters that act when they are set, LabelInfo and the class map on a running node.

In this process, on :class:`FakeEngine` (labels from the red channel, every pixel's winning
probability 1 / 2.8): live parameters change the next frame's outputs and the LabelInfo; static
ones are refused while configured or active, with the reason, and the parameter server keeps
the value in force; every parameter goes through deactivate / cleanup / set / configure.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image
from vision_msgs.msg import LabelInfo

from test.ros.harness import wait_until
from test.ros.node.in_process import FakeEngine, node_in_process, state, use_fake_engine
from vltseg_ros.config.model_config import load_class_set
from vltseg_ros.config.options import values_of
from vltseg_ros.demo_model import DEMO_CHECKPOINT
from vltseg_ros.inference.outputs import output_topic
from vltseg_ros.msg import ClassSet, SegmentationInfo
from vltseg_ros.ros.node.messages import array_to_image
from vltseg_ros.ros.node.settings import CameraSettings, parameter_specs
from vltseg_ros.ros.node.transitions import autostart

REPO = Path(__file__).resolve().parents[3]
TRAVERSABILITY = REPO / "config" / "class_maps" / "traversability.yaml"
FAKE = {"model": "tiny", "qos": {"input": {"reliability": "reliable"}}}
LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
TOPIC = "camera/segmentation/{}"
SUCCESS = TransitionCallbackReturn.SUCCESS
CITYSCAPES = load_class_set("cityscapes").names


def _frame() -> np.ndarray:
    """Left half FakeEngine class 7 (traffic sign), right half class 14 (truck)."""
    frame = np.full((64, 128, 3), 50, np.uint8)
    frame[:, :64, 0], frame[:, 64:, 0] = 100, 200
    return frame


def _set(node: Any, **values: Any) -> Any:
    """Set parameters in one request, all or none (`ros2 param set` sets one), as they arrive
    through the parameter service (arrays as ``array.array``, as rclpy gives them); the result.
    """
    sent = [Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
    return node.set_parameters_atomically([Parameter.from_parameter_msg(m) for m in sent])


def _segment(peer: Any, count: int) -> tuple[SegmentationInfo, Image]:
    """Publish a frame; the info and mask of the ``count``-th frame."""
    peer.publish("camera/image_raw", array_to_image(_frame(), "rgb8", peer.header("cam")))
    wait_until(lambda: len(peer.messages(TOPIC.format("info"))) >= count, 30, f"info {count}")
    wait_until(lambda: len(peer.messages(TOPIC.format("mask"))) >= count, 30, f"mask {count}")
    return peer.messages(TOPIC.format("info"))[-1], peer.messages(TOPIC.format("mask"))[-1]


def _mask(image: Image) -> np.ndarray:
    return np.frombuffer(image.data, np.uint8).reshape(image.height, image.width)


def _start(peer: Any, node: Any) -> None:
    assert autostart(node)
    for kind, msg_type in (("info", SegmentationInfo), ("mask", Image)):
        peer.listen(TOPIC.format(kind), msg_type)
    peer.listen(TOPIC.format("label_info"), LabelInfo, LATCHED)
    peer.listen("classes", ClassSet, LATCHED)
    peer.wait_for_subscriber("camera/image_raw", Image)
    # latched: the first arrives once matched; later ones are counted from here on
    for topic in (TOPIC.format("label_info"), "classes"):
        _newest(peer, topic, 1)


def _newest(peer: Any, topic: str, count: int) -> Any:
    wait_until(lambda: len(peer.messages(topic)) >= count, 30, f"{count} on {topic}")
    return peer.messages(topic)[-1]


def test_label_info_lists_the_classes_and_the_threshold(ros, monkeypatch) -> None:
    peer, _ = ros
    use_fake_engine(monkeypatch)
    with node_in_process(peer, {**FAKE, "confidence_threshold": 0.25}) as node:
        _start(peer, node)
        label_info = _newest(peer, TOPIC.format("label_info"), 1)
        entries = [(c.class_id, c.class_name) for c in label_info.class_map]
        assert entries == [*enumerate(CITYSCAPES), (255, "unlabeled")]
        assert label_info.threshold == pytest.approx(0.25)


def test_a_live_parameter_changes_the_next_frame_and_the_label_info(ros, monkeypatch) -> None:
    peer, _ = ros
    use_fake_engine(monkeypatch)
    with node_in_process(peer, FAKE) as node:
        _start(peer, node)
        info, mask = _segment(peer, 1)
        assert info.confidence_threshold == 0.0 and (_mask(mask) != 255).all()
        result = _set(node, confidence_threshold=0.9)
        assert result.successful, result.reason
        assert node.get_parameter("confidence_threshold").value == 0.9
        info, mask = _segment(peer, 2)  # the very next frame
        assert info.confidence_threshold == pytest.approx(0.9)
        assert (_mask(mask) == 255).all()  # every pixel's confidence is 1 / 2.8 < 0.9
        assert info.unlabeled_fraction == 1.0
        assert _newest(peer, TOPIC.format("label_info"), 2).threshold == pytest.approx(0.9)
        # anomaly_threshold NaN (not given): each method's own default (one table) is in force
        assert math.isnan(node.get_parameter("anomaly_threshold").value)
        assert (info.anomaly_method, info.anomaly_threshold) == ("rba", -0.5)
        assert _set(node, anomaly_method="max_probability").successful
        info, _ = _segment(peer, 3)
        assert (info.anomaly_method, info.anomaly_threshold) == ("max_probability", 0.5)
        assert info.anomaly_fraction == pytest.approx(1.0)  # 1 - 1/2.8 > 0.5 everywhere
        assert _set(node, anomaly_threshold=0.7).successful  # a number stays, for any method
        info, _ = _segment(peer, 4)
        assert info.anomaly_threshold == pytest.approx(0.7)
        assert info.anomaly_fraction == 0.0  # 1 - 1/2.8 = 0.64 < 0.7
        refused = _set(node, anomaly_threshold=5000.0)  # no rclpy range (it refuses NaN)
        assert not refused.successful and "outside [-1000.0, 1000.0]" in refused.reason
        assert _set(node, anomaly_threshold=math.nan).successful  # back to the method's
        info, _ = _segment(peer, 5)
        assert info.anomaly_threshold == 0.5 and info.anomaly_fraction == pytest.approx(1.0)
        refused = _set(node, confidence_threshold=1.5)  # out of range: rclpy's descriptor
        assert not refused.successful
        assert node.get_parameter("confidence_threshold").value == 0.9


def test_a_static_parameter_is_refused_while_configured_and_keeps_its_value(
    ros, monkeypatch
) -> None:
    peer, _ = ros
    use_fake_engine(monkeypatch)
    with node_in_process(peer, FAKE) as node:
        assert autostart(node)
        for name, value in (("model", "vit-b-16"), ("batch_size", 2), ("camera.image_topic", "x")):
            result = _set(node, **{name: value})
            assert not result.successful
            assert result.reason.startswith(f"{name} takes effect at configure: deactivate and")
        assert node.get_parameter("model").value == "tiny"
        assert node.get_parameter("batch_size").value == 4
        mixed = _set(node, overlay_alpha=0.2, max_age=1.0)  # one static in the request
        assert not mixed.successful and "max_age takes effect at configure" in mixed.reason
        assert node.get_parameter("overlay_alpha").value == 0.5  # nothing of it applied
        assert node._settings.outputs.overlay_alpha == 0.5
        node.trigger_deactivate()
        assert state(node) == "inactive" and not _set(node, model="vit-b-16").successful
        assert _set(node, overlay_alpha=0.3).successful  # live while inactive too
        node.trigger_cleanup()
        assert state(node) == "unconfigured"
        assert _set(node, model="vit-b-16", batch_size=2).successful


def _non_default(name: str, spec: Any, tmp_path: Path, onnx: Path) -> Any:
    """A valid value other than the default of every parameter (for the pytorch round)."""
    special = {
        "model": "tiny",
        "checkpoint": str(DEMO_CHECKPOINT),
        "backend": "pytorch",
        "device": "cpu",
        "precision": "fp32",  # fp16 / bf16 need CUDA: refused at configure on this machine
        "class_map": str(TRAVERSABILITY),
        "inference.mode": "slide",
        "inference.crop_size": [32, 32],
        "inference.stride": [16, 16],
        "inference.test_scale": [960, 540],
        "inference.whole_size": [64, 64],
        "cameras": ["front", "rear"],
        "onnxruntime.providers": "cpu",
        "onnxruntime.cache_dir": str(tmp_path / "cache"),
        "onnxruntime.threads": 1,
        "anomaly_threshold": 0.5,
    }
    if name in special:
        return special[name]
    if spec.choices is not None:
        return next(c for c in spec.choices if c != spec.default and c != "")
    if spec.kind is bool:
        return not spec.default
    if spec.kind in (int, float):
        low, high = spec.range
        value = spec.default + 1 if spec.default + 1 <= high else low
        return spec.kind(value)
    raise AssertionError(f"no test value for {name}")


def test_every_parameter_through_deactivate_cleanup_set_configure(
    ros, monkeypatch, tmp_path, tiny_onnx
) -> None:
    """The documented sequence for static parameters, for every parameter of the node, arrays
    (rclpy's array.array) included; the onnxruntime options in a second round (they need the
    onnxruntime backend, which needs an exported model)."""
    peer, _ = ros
    use_fake_engine(monkeypatch)
    _, onnx = tiny_onnx
    specs = {spec.name: spec for spec in parameter_specs() if not spec.name.startswith("camera.")}
    onnx_round = {n for n in specs if n.startswith("onnxruntime.")} | {"backend", "checkpoint"}
    rounds = [
        {n: _non_default(n, s, tmp_path, onnx) for n, s in specs.items() if n not in onnx_round},
        {
            **{n: _non_default(n, specs[n], tmp_path, onnx) for n in onnx_round},
            "backend": "onnxruntime",
            "checkpoint": str(onnx),
            "model": "",
            # back to their defaults: options of the other backend, and crops the exported
            # model's static input would refuse
            **{n: s.default for n, s in specs.items() if n.startswith(("pytorch.", "inference."))},
        },
    ]
    rounds[0]["pytorch.channels_last"] = True
    with node_in_process(peer, {**FAKE, "autostart": False}) as node:
        assert autostart(node)
        for values in rounds:
            node.trigger_deactivate()
            node.trigger_cleanup()
            assert state(node) == "unconfigured"
            result = _set(node, **values)
            assert result.successful, result.reason
            assert node.trigger_configure() == SUCCESS and state(node) == "inactive"
            in_force = values_of(node._settings)
            for name, value in values.items():
                expected = tuple(value) if isinstance(value, (list, tuple)) else value
                assert in_force[name] == expected, name
            assert list(node._cameras) == ["front", "rear"]  # set in the first round
            assert node.trigger_activate() == SUCCESS and state(node) == "active"
        # the per-camera parameters, declared at configure
        node.trigger_deactivate()
        node.trigger_cleanup()
        camera = {
            "front.image_topic": "/f/image",
            "front.camera_info_topic": "",
            "front.transport": "compressed",
        }
        assert _set(node, **camera).successful
        assert node.trigger_configure() == SUCCESS and state(node) == "inactive"
        front = node._cameras["front"].camera.settings
        assert front == CameraSettings("/f/image", "", "compressed")


def test_class_map_swapped_live_changes_masks_classes_and_label_info(ros, monkeypatch) -> None:
    peer, _ = ros
    use_fake_engine(monkeypatch)
    with node_in_process(peer, FAKE) as node:
        _start(peer, node)
        info, mask = _segment(peer, 1)
        assert set(np.unique(_mask(mask))) == {7, 14} and len(info.class_names) == 19
        bad = _set(node, class_map=str(REPO / "nope.yaml"))
        assert not bad.successful and "nope.yaml" in bad.reason
        assert node.get_parameter("class_map").value == ""
        assert _set(node, class_map=str(TRAVERSABILITY)).successful
        info, mask = _segment(peer, 2)
        # traffic sign and truck are both "obstacle" (id 1): confidence = the sum of the 15
        # obstacle members' probabilities, (1 + 14 * 0.1) / 2.8, not the max 1 / 2.8
        assert (_mask(mask) == 1).all()
        assert info.class_names == ["traversable", "obstacle", "sky"]
        assert info.class_fraction == pytest.approx([0.0, 1.0, 0.0])
        assert info.class_mean_confidence[1] == pytest.approx(2.4 / 2.8, abs=1e-5)
        assert info.mean_confidence == pytest.approx(2.4 / 2.8, abs=1e-5)
        assert FakeEngine.CONFIDENCE < 0.5 < 2.4 / 2.8
        label_info = _newest(peer, TOPIC.format("label_info"), 2)
        assert [(c.class_id, c.class_name) for c in label_info.class_map] == [
            (0, "traversable"),
            (1, "obstacle"),
            (2, "sky"),
            (255, "unlabeled"),
        ]
        classes = _newest(peer, "classes", 2)
        assert list(classes.names) == ["traversable", "obstacle", "sky"]
        assert _set(node, class_map="").successful  # back to the model's classes
        _, mask = _segment(peer, 3)
        assert set(np.unique(_mask(mask))) == {7, 14}


def test_nav2_semantic_segmentation_layer_receives_synchronized_triples(ros, monkeypatch) -> None:
    """Subscribed as the layer's README says: mask and mono8 confidence with sensor-data QoS
    (best effort), LabelInfo reliable + transient local, joined on identical headers."""
    peer, _ = ros
    use_fake_engine(monkeypatch)
    params = {**FAKE, "confidence_encoding": "mono8", "class_map": str(TRAVERSABILITY)}
    with node_in_process(peer, params) as node:
        assert autostart(node)
        for kind in ("mask", "confidence"):
            peer.listen(TOPIC.format(kind), Image, qos_profile_sensor_data)
        time.sleep(1.0)  # the layer subscribes to LabelInfo late: it must still get it
        peer.listen(TOPIC.format("label_info"), LabelInfo, LATCHED)
        label_info = _newest(peer, TOPIC.format("label_info"), 1)
        names = {c.class_name for c in label_info.class_map}
        assert {"traversable", "obstacle"} <= names  # what its class_types name
        peer.wait_for_subscriber("camera/image_raw", Image)
        headers = []
        for i in range(3):
            header = peer.header(f"cam_{i}")
            peer.publish("camera/image_raw", array_to_image(_frame(), "rgb8", header))
            headers.append(header)
            _newest(peer, TOPIC.format("confidence"), i + 1)
            _newest(peer, TOPIC.format("mask"), i + 1)
        masks = {
            (m.header.stamp.sec, m.header.stamp.nanosec, m.header.frame_id): m
            for m in peer.messages(TOPIC.format("mask"))
        }
        confidences = peer.messages(TOPIC.format("confidence"))
        assert len(confidences) == 3
        for header, confidence in zip(headers, confidences, strict=True):
            key = (header.stamp.sec, header.stamp.nanosec, header.frame_id)
            assert confidence.header == header and masks[key].header == header
            assert confidence.encoding == "mono8" and masks[key].encoding == "mono8"
            values = np.frombuffer(confidence.data, np.uint8)
            assert (values == round(2.4 / 2.8 * 255)).all()  # obstacle's summed probability


def test_the_documented_nav2_configuration_names_our_topics_and_classes() -> None:
    """docs/node.md's costmap configuration (Nav2 is not installable here): valid YAML whose
    topics are the node's outputs for camera ``front`` and whose class names are the model's
    (as LabelInfo names them)."""
    text = (REPO / "docs" / "node.md").read_text()
    block = text.split("## Nav2: the semantic segmentation costmap layer", 1)[1]
    block = block.split("```yaml\n", 1)[1].split("```", 1)[0]
    layer = yaml.safe_load(block)["local_costmap"]["local_costmap"]["ros__parameters"]
    front = layer["semantic_segmentation_layer"]["front"]
    for key, output in (
        ("segmentation_topic", "mask"),
        ("confidence_topic", "confidence"),
        ("labels_topic", "label_info"),
    ):
        assert front[key] == f"/{output_topic('front', output)}"
    grouped = [name for kind in front["class_types"] for name in front[kind]["classes"]]
    assert set(grouped) <= set(CITYSCAPES) and len(grouped) == len(set(grouped)) == 18
