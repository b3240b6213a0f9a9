"""``vltseg make-bag`` and ``vltseg bag-eval``: round trips, exact scores, output bags, errors."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from test.bag import START_NS
from vltseg_ros.bag import serialization
from vltseg_ros.bag.typestore import typestore
from vltseg_ros.bag.writing import BagWriter
from vltseg_ros.cli.main import main
from vltseg_ros.config.model_config import load_class_set

FAST = ["--model", "tiny", "--inference.mode", "whole", "--inference.whole-size", "64", "128"]
IMAGE = "sensor_msgs/msg/Image"
SEGMENTATION = ("mask", "confidence", "overlay", "anomaly", "info")
LABEL_INFO = "/camera/segmentation/label_info"


def _make_synthetic(bag: Path, *extra: str, frames: int = 3) -> None:
    args = ["make-bag", "-", str(bag), "--synthetic", str(frames), "--synthetic-size", "64", "128"]
    assert main([*args, *extra]) == 0


def _stored(bag: Path) -> dict[str, list[tuple[int, bytes]]]:
    """topic -> [(log time, CDR bytes)] of a bag, read with rosbags."""
    out: dict[str, list[tuple[int, bytes]]] = {}
    with Reader(bag) as reader:
        for connection, log_time, data in reader.messages():
            out.setdefault(connection.topic, []).append((log_time, bytes(data)))
    return out


def _header(msgtype: str, cdr: bytes) -> tuple[int, int, str]:
    header = typestore().deserialize_cdr(cdr, msgtype).header
    return header.stamp.sec, header.stamp.nanosec, header.frame_id


def label_info_of(stored: dict[str, list[tuple[int, bytes]]], topic: str = LABEL_INFO):
    """The one LabelInfo on ``topic`` of a written bag as rclpy's vision_msgs.msg.LabelInfo,
    after checking that rosbags reads the same class map and threshold; and its log time."""
    from rclpy.serialization import deserialize_message
    from vision_msgs.msg import LabelInfo

    ((log_time, cdr),) = stored[topic]
    message = deserialize_message(cdr, LabelInfo)
    decoded = typestore().deserialize_cdr(cdr, "vision_msgs/msg/LabelInfo")
    entries = [(c.class_id, c.class_name) for c in message.class_map]
    assert [(c.class_id, c.class_name) for c in decoded.class_map] == entries
    assert decoded.threshold == message.threshold and message.header.stamp.sec > 0
    return message, log_time


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("compressed", [False, True])
def test_make_bag_then_bag_eval(tmp_path: Path, storage: str, compressed: bool, capsys) -> None:
    bag = tmp_path / "demo"
    extra = ["--storage", storage, "--rate", "5", *(["--compressed"] if compressed else [])]
    _make_synthetic(bag, *extra)
    assert next(bag.glob("*.db3" if storage == "sqlite3" else "*.mcap")).is_file()
    stored = _stored(bag)
    image_topic = "/camera/image_raw/compressed" if compressed else "/camera/image_raw"
    assert sorted(stored) == sorted([image_topic, "/camera/labels", "/camera/camera_info"])
    log_times = [t for t, _ in stored[image_topic]]
    assert np.diff(log_times).tolist() == [200_000_000] * 2  # 1 / rate
    for topic, msgtype in (
        (image_topic, "sensor_msgs/msg/CompressedImage" if compressed else IMAGE),
        ("/camera/labels", IMAGE),
        ("/camera/camera_info", "sensor_msgs/msg/CameraInfo"),
    ):
        stamps = [_header(msgtype, cdr) for _, cdr in stored[topic]]
        assert [s * 10**9 + ns for s, ns, _ in stamps] == log_times  # header stamp = log time
        assert {frame_id for *_, frame_id in stamps} == {"camera"}
    capsys.readouterr()

    assert main(["bag-eval", str(bag), *FAST]) == 0
    out = tmp_path / "demo_eval"  # default: <bag name>_eval next to the bag
    report = json.loads((out / "report.json").read_text())
    assert report["frames"] == 3 and report["pixels"] == 3 * 64 * 128
    assert report["latency_ms"]["count"] == 3 and report["latency_ms"]["p50"] > 0
    assert (report["model"], report["checkpoint"], report["random_weights"]) == ("tiny", "", True)
    assert 0.0 <= report["miou"] <= 1.0 and report["source"] == str(bag)
    assert all(
        (out / name).stat().st_size > 0
        for name in ("report.md", "iou.png", "confusion.png", "reliability.png")
    )
    assert 0.0 <= report["ece"] <= 1.0 and report["calibration"]["pixels"] == report["pixels"]
    assert report["anomaly"] is None  # no anomaly truth given
    captured = capsys.readouterr()
    assert "| mIoU (%) |" in captured.out and f"report: {out}" in captured.out
    assert "random weights: these numbers are meaningless" in captured.out
    assert "RANDOM" in captured.err


def test_make_bag_from_a_folder(tmp_path: Path) -> None:
    import cv2

    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    for name, (height, width) in {"b": (40, 60), "a": (32, 48), "c": (36, 50)}.items():
        cv2.imwrite(str(images / f"{name}.png"), np.full((height, width, 3), 9, np.uint8))
        if name != "c":
            cv2.imwrite(str(labels / f"{name}.png"), np.full((height, width), 2, np.uint8))
    bag = tmp_path / "bag"
    args = ["make-bag", str(images), str(bag), "--labels", str(labels), "--storage", "sqlite3"]
    assert main([*args, "--topic", "/front/image_raw", "--label-topic", "/front/gt_labels"]) == 0
    stored = _stored(bag)
    sizes = []
    for _, cdr in stored["/front/camera_info"]:
        info = typestore().deserialize_cdr(cdr, "sensor_msgs/msg/CameraInfo")
        sizes.append((info.height, info.width))
        assert info.k.tolist() == [
            info.width,
            0,
            info.width / 2,
            0,
            info.width,
            info.height / 2,
            0,
            0,
            1,
        ]
    assert sizes == [(32, 48), (40, 60), (36, 50)]  # sorted file names: a, b, c
    image_stamps = [_header(IMAGE, cdr)[:2] for _, cdr in stored["/front/image_raw"]]
    label_stamps = [_header(IMAGE, cdr)[:2] for _, cdr in stored["/front/gt_labels"]]
    assert label_stamps == image_stamps[:2]  # c has no label


@pytest.mark.parametrize(("compressed", "name"), [(False, "seg"), (True, "seg.db3")])
def test_write_bag_reads_back_with_rosbags_and_rclpy(tmp_path: Path, compressed, name) -> None:
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    from vltseg_ros.msg import SegmentationInfo

    bag, seg = tmp_path / "demo", tmp_path / name
    _make_synthetic(bag, *(["--compressed"] if compressed else []))
    args = ["bag-eval", str(bag), *FAST, "--write-bag", str(seg), "--out", str(tmp_path / "r")]
    assert main([*args, "--confidence-threshold", "0.06"]) == 0
    assert next(seg.glob("*.db3" if name.endswith(".db3") else "*.mcap")).is_file()
    inputs, outputs = _stored(bag), _stored(seg)
    image_topic = "/camera/image_raw/compressed" if compressed else "/camera/image_raw"
    segmentation = [f"/camera/segmentation/{kind}" for kind in SEGMENTATION]
    assert sorted(outputs) == sorted([image_topic, "/camera/labels", *segmentation, LABEL_INFO])
    assert outputs[image_topic] == inputs[image_topic]  # copied byte for byte
    assert outputs["/camera/labels"] == inputs["/camera/labels"]
    headers = [_header("sensor_msgs/msg/CameraInfo", c) for _, c in inputs["/camera/camera_info"]]
    for topic in segmentation:
        assert [t for t, _ in outputs[topic]] == [t for t, _ in inputs[image_topic]]
        msgtype = "vltseg_ros/msg/SegmentationInfo" if topic.endswith("info") else IMAGE
        assert [_header(msgtype, cdr) for _, cdr in outputs[topic]] == headers
    # one LabelInfo (nothing changes offline), with the first frame's header and log time
    label_info, log_time = label_info_of(outputs)
    assert log_time == outputs[image_topic][0][0]
    header = label_info.header
    assert (header.stamp.sec, header.stamp.nanosec, header.frame_id) == headers[0]
    names = load_class_set("cityscapes").names
    expected = [*enumerate(names), (255, "unlabeled")]
    assert [(c.class_id, c.class_name) for c in label_info.class_map] == expected
    assert len(expected) == 20 and names[18] == "bicycle"
    assert label_info.threshold == pytest.approx(0.06)
    for index in range(3):  # rclpy reads them with the real message classes
        mask = deserialize_message(outputs[segmentation[0]][index][1], Image)
        confidence = deserialize_message(outputs[segmentation[1]][index][1], Image)
        overlay = deserialize_message(outputs[segmentation[2]][index][1], Image)
        anomaly = deserialize_message(outputs[segmentation[3]][index][1], Image)
        info = deserialize_message(outputs[segmentation[4]][index][1], SegmentationInfo)
        scores = np.frombuffer(bytes(anomaly.data), np.float32)
        assert (anomaly.encoding, anomaly.height, anomaly.width) == ("32FC1", 64, 128)
        assert scores.max() <= 0 and info.anomaly_method == "rba"  # RbA is in [-19, 0]
        assert (scores > -0.5).mean() == pytest.approx(info.anomaly_fraction, abs=1e-6)
        assert (mask.encoding, mask.height, mask.width) == ("mono8", 64, 128)
        labels = np.frombuffer(bytes(mask.data), np.uint8)
        assert ((labels < 19) | (labels == 255)).all()
        values = np.frombuffer(bytes(confidence.data), np.float32)
        assert (
            confidence.encoding == "32FC1" and 1 / 19 - 1e-6 <= values.min() <= values.max() <= 1
        )
        assert (labels == 255).mean() == pytest.approx(info.unlabeled_fraction, abs=1e-6)
        assert (overlay.encoding, overlay.step) == ("rgb8", 3 * 128)
        assert (info.camera, info.model, info.checkpoint, info.height, info.width) == (
            "camera",
            "tiny",
            "",
            64,
            128,
        )
        assert len(info.class_names) == 19 and info.confidence_threshold == pytest.approx(0.06)
        assert info.inference_latency > 0 and info.batch_frames == 3
        assert info.header.frame_id == mask.header.frame_id == "camera"
    # scoring the written masks again gives exactly the model run's matrix
    assert (
        main(["bag-eval", str(seg), "--mask-topic", segmentation[0], "--out", str(tmp_path / "m")])
        == 0
    )
    first = json.loads((tmp_path / "r" / "report.json").read_text())
    again = json.loads((tmp_path / "m" / "report.json").read_text())
    assert again["confusion"] == first["confusion"] and again["frames"] == 3
    assert (again["model"], again["checkpoint"]) == ("tiny", "")
    assert again["latency_ms"]["count"] == 3


def _known_error_bag(bag: Path, storage: str) -> None:
    """Two 40x60 frames: label sky rows 0-9 (20 px ignored), road rows 10-29, car rows 30-39;
    the mask calls car rows 30-34 road, leaves road rows 10-11 x cols 0-29 unlabeled (255)
    and predicts sky on the ignored pixels."""
    label = np.zeros((40, 60), np.uint8)
    label[:10], label[10:30], label[30:] = 10, 0, 13
    label[:2, :10] = 255
    mask = label.copy()
    mask[:2, :10] = 10
    mask[30:35] = 0
    mask[10:12, :30] = 255
    with BagWriter(bag, storage) as writer:
        for topic in ("/camera/segmentation/mask", "/camera/labels"):
            writer.add_topic(topic, IMAGE)
        for index in range(2):
            stamp = START_NS + index * 10**8
            label_cdr = serialization.image_cdr(label, "mono8", stamp, "camera")
            mask_cdr = serialization.image_cdr(mask, "mono8", stamp, "camera")
            pairs = [("/camera/segmentation/mask", mask_cdr), ("/camera/labels", label_cdr)]
            for topic, cdr in pairs if index == 0 else pairs[::-1]:  # order does not matter
                writer.write(topic, stamp + 1, cdr)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_mask_topic_scores_known_errors_exactly(tmp_path: Path, storage: str) -> None:
    _known_error_bag(tmp_path / "bag", storage)
    args = ["bag-eval", str(tmp_path / "bag"), "--mask-topic", "/camera/segmentation/mask"]
    assert main([*args, "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    sky = 580 / 580  # TP 580 (600 - 20 ignored), no FP, no FN
    road = 1140 / (1140 + 300 + 60)  # TP 1200 - 60; FP 300 car pixels; FN 60 unlabeled
    car = 300 / (300 + 300)  # TP 300; FN 300 (called road)
    iou = report["iou"]
    assert (iou["sky"], iou["road"], iou["car"]) == (sky, road, car)
    assert [name for name, value in iou.items() if value is not None] == ["road", "sky", "car"]
    assert report["miou"] == pytest.approx((sky + road + car) / 3, abs=1e-15)
    assert report["pixel_accuracy"] == pytest.approx((580 + 1140 + 300) / 2380, abs=1e-15)
    assert report["frames"] == 2 and report["pixels"] == 2 * 2380
    assert report["checkpoint"].startswith("unknown")  # no info topic in this bag


def test_labels_folder_is_matched_by_order(tmp_path: Path) -> None:
    from PIL import Image

    bag = tmp_path / "bag"
    _make_synthetic(bag, "--label-topic", "/camera/gt", frames=2)  # "gt": not found as labels
    folder = tmp_path / "labels"
    folder.mkdir()
    stored = _stored(bag)["/camera/gt"]
    for index, (_, cdr) in enumerate(stored):
        msg = typestore().deserialize_cdr(cdr, IMAGE)
        Image.fromarray(msg.data.reshape(64, 128)).save(folder / f"f{index}_labels.png")
    out = tmp_path / "out"
    assert (
        main(
            [
                "bag-eval",
                str(bag),
                "--mask-topic",
                "/camera/gt",
                "--labels",
                str(folder),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    assert report["frames"] == 2 and report["pixel_accuracy"] == 1.0 and report["miou"] == 1.0
    assert main(["bag-eval", str(bag), *FAST, "--labels", str(folder), "--out", str(out)]) == 0
    assert json.loads((out / "report.json").read_text())["frames"] == 2
    (folder / "f1_labels.png").unlink()
    assert main(["bag-eval", str(bag), *FAST, "--labels", str(folder)]) == 2


def _two_camera_bag(bag: Path) -> None:
    rgb = np.zeros((8, 12, 3), np.uint8)
    with BagWriter(bag) as writer:
        for topic in ("/left/image_raw", "/right/image_raw"):
            writer.add_topic(topic, IMAGE)
            writer.write(topic, START_NS, serialization.image_cdr(rgb, "rgb8", START_NS, "c"))


def _label_size_mismatch_bag(bag: Path) -> None:
    with BagWriter(bag) as writer:
        writer.add_topic("/camera/image_raw", IMAGE)
        writer.add_topic("/camera/labels", IMAGE)
        rgb, label = np.zeros((64, 64, 3), np.uint8), np.zeros((64, 60), np.uint8)
        image = serialization.image_cdr(rgb, "rgb8", START_NS, "c")
        writer.write("/camera/image_raw", START_NS, image)
        labels = serialization.image_cdr(label, "mono8", START_NS, "c")
        writer.write("/camera/labels", START_NS, labels)


def _bomb_bag(bag: Path) -> None:
    from test.io.test_image_files import jpeg_bomb

    topic = "/camera/image_raw/compressed"
    with BagWriter(bag) as writer:
        writer.add_topic(topic, "sensor_msgs/msg/CompressedImage")
        writer.write(
            topic, START_NS, serialization.compressed_image_cdr(jpeg_bomb(), "jpeg", START_NS, "c")
        )


def _truncate(bag: Path, pattern: str) -> None:
    path = next(bag.glob(pattern))
    os.truncate(path, path.stat().st_size // 2)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (
            "missing topic",
            r"has no image topic /nope: its Image or CompressedImage topics are: "
            r"/camera/image_raw \(sensor_msgs/msg/Image, 2 messages\)",
        ),
        (
            "two image topics",
            r"has 2 camera image topics: /left/image_raw \(sensor_msgs/msg/Image, "
            r"1 messages\), /right/image_raw .*--image-topic",
        ),
        (
            "wrong type",
            r"topic /camera/camera_info .* has type sensor_msgs/msg/CameraInfo, but "
            r"the image topic must be",
        ),
        ("truncated mcap", r"cannot read bag .*: it is truncated, corrupt or not a rosbag2"),
        ("truncated db3", r"cannot read bag .*: it is truncated, corrupt or not a rosbag2"),
        ("empty bag", r"bag .* is empty: it has no messages"),
        (
            "label size",
            r"label on /camera/labels at stamp \d+ ns is 60x64 \(WxH\) but its image on "
            r"/camera/image_raw is 64x64",
        ),
        ("no such bag", r"bag .*missing does not exist"),
        (
            "decompression bomb",
            r"image on /camera/image_raw/compressed at stamp \d+ ns: CompressedImage data "
            r"\(format 'jpeg'\) is a JPEG image of 20000x20000 = 400000000 pixels, over the limit",
        ),
        ("mask without labels", r"has no label topic to score /camera/image_raw against"),
        ("existing output", r"already exists; bags are never overwritten"),
    ],
)
def test_bad_bags_are_clear_errors(tmp_path: Path, capsys, case: str, message: str) -> None:
    bag = tmp_path / "bag"
    args = ["bag-eval", str(bag), *FAST]
    if case in ("missing topic", "wrong type", "existing output", "mask without labels"):
        _make_synthetic(bag, frames=2)
        if case == "mask without labels":
            _make_synthetic(bag := tmp_path / "nolabels", "--label-topic", "/camera/gt", frames=1)
            args = ["bag-eval", str(bag), "--mask-topic", "/camera/image_raw"]
        extra = {
            "missing topic": ["--image-topic", "/nope"],
            "wrong type": ["--image-topic", "/camera/camera_info"],
            "existing output": ["--write-bag", str(tmp_path)],
            "mask without labels": [],
        }[case]
        args += extra
    elif case == "two image topics":
        _two_camera_bag(bag)
    elif case.startswith("truncated"):
        storage = "mcap" if case.endswith("mcap") else "sqlite3"
        _make_synthetic(bag, "--storage", storage, frames=2)
        _truncate(bag, "*.mcap" if storage == "mcap" else "*.db3")
    elif case == "empty bag":
        BagWriter(bag).close()
    elif case == "label size":
        _label_size_mismatch_bag(bag)
    elif case == "no such bag":
        args[1] = str(tmp_path / "missing")
    elif case == "decompression bomb":
        _bomb_bag(bag)
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "vltseg bag-eval: error: " in err
    assert re.search(message, err), err


def test_make_bag_errors(tmp_path: Path, capsys) -> None:
    from PIL import Image

    (tmp_path / "frames").mkdir()
    Image.fromarray(np.zeros((8, 12, 3), np.uint8)).save(tmp_path / "frames" / "x.png")
    Image.fromarray(np.zeros((8, 10), np.uint8)).save(tmp_path / "frames" / "x_labels.png")
    assert main(["make-bag", str(tmp_path / "frames"), str(tmp_path / "bag")]) == 2
    err = capsys.readouterr().err
    assert re.search(r"label .*x_labels\.png is 10x8 \(WxH\) but its image .*x\.png is 12x8", err)
    assert not (tmp_path / "bag").exists()
    assert main(["make-bag", str(tmp_path), str(tmp_path / "frames"), "--synthetic", "1"]) == 2
    assert main(["make-bag", "-", str(tmp_path / "b2")]) == 2
    _make_synthetic(tmp_path / "b3", frames=1)
    capsys.readouterr()
    assert main(["make-bag", "-", str(tmp_path / "b3"), "--synthetic", "1"]) == 2
    assert "b3 already exists" in capsys.readouterr().err
    assert main(["make-bag", "-", str(tmp_path / "b4"), "--synthetic", "1", "--rate", "0"]) == 2
    assert "rate must be > 0" in capsys.readouterr().err
    assert not (tmp_path / "b4").exists()


def test_bag_eval_on_onnxruntime_and_its_node_parameters(tmp_path: Path, tiny_onnx) -> None:
    from vltseg_ros.cli.bag_eval import node_overrides
    from vltseg_ros.cli.common import options_from
    from vltseg_ros.cli.main import build_parser
    from vltseg_ros.inference.outputs import OutputSettings
    from vltseg_ros.inference.settings import SegmenterSettings

    bag = tmp_path / "demo"
    _make_synthetic(bag, frames=2)
    onnx = ["--checkpoint", str(tiny_onnx[1])]
    assert main(["bag-eval", str(bag), *onnx, "--onnxruntime.threads", "1"]) == 0
    report = json.loads((tmp_path / "demo_eval" / "report.json").read_text())
    assert report["frames"] == 2 and report["checkpoint"] == str(tiny_onnx[1])
    assert report["model"] == "tiny" and not report["random_weights"]
    args = build_parser().parse_args(
        [
            "bag-eval",
            str(bag),
            "--live",
            *onnx,
            "--onnxruntime.cache-dir",
            "/tmp/trt",
            "--onnxruntime.providers",
            "cpu",
        ]
    )
    params = node_overrides(
        options_from(args, SegmenterSettings), options_from(args, OutputSettings)
    )
    assert (params["backend"], params["checkpoint"], params["model"]) == (
        "",
        str(tiny_onnx[1]),
        "",
    )
    assert (params["onnxruntime.providers"], params["onnxruntime.cache_dir"]) == (
        "cpu",
        "/tmp/trt",
    )
    assert params["inference.mode"] == "" and params["confidence_threshold"] == 0.0
