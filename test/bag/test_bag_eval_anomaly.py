"""``vltseg bag-eval``: ECE and reliability diagram of every run; anomaly truth from a topic
(matched by header stamp) or a folder (matched by order) scored with AUROC / AP / FPR95 of the
chosen score and of max probability, checked against numpy and scikit-learn on the same
model's outputs for the same frames; clear exit-code-2 errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rosbags.rosbag2 import Reader

from test.bag import START_NS
from test.evaluation.test_evaluate_anomaly import PNG, numpy_ece, sklearn_metrics
from vltseg_ros.bag import serialization
from vltseg_ros.bag.make_bag import synthetic_frames
from vltseg_ros.bag.reading import iter_frames
from vltseg_ros.bag.topics import find_topics
from vltseg_ros.bag.writing import BagWriter
from vltseg_ros.cli.common import options_from
from vltseg_ros.cli.main import build_parser, main
from vltseg_ros.errors import BagError
from vltseg_ros.inference.settings import SegmenterSettings
from vltseg_ros.model.checkpoint import save_checkpoint
from vltseg_ros.model.segmentor import build_model

IMAGE = "sensor_msgs/msg/Image"
CAMERA, LABELS, ANOMALY = "/camera/image_raw", "/camera/labels", "/camera/anomaly_labels"
WHOLE = ["--inference.mode", "whole", "--inference.whole-size", "64", "128"]
SIZE = (64, 128)


def _truth(index: int) -> np.ndarray:
    truth = np.zeros(SIZE, np.uint8)
    truth[20:40, 30 + 10 * index : 70 + 10 * index] = 1
    truth[:4] = 255
    return truth


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> dict:
    """A bag of 3 frames with labels; anomaly truth on /camera/anomaly_labels for frames 0
    (stored before its image) and 1 (stored after the next image), none for frame 2; and a
    tiny checkpoint."""
    root = tmp_path_factory.mktemp("scene")
    frames = list(synthetic_frames(3, *SIZE))
    stamps = [START_NS + i * 10**8 for i in range(3)]
    cdr = {
        ("image", i): serialization.image_cdr(rgb, "rgb8", stamps[i], "camera")
        for i, (rgb, _) in enumerate(frames)
    }
    cdr |= {
        ("label", i): serialization.image_cdr(label, "mono8", stamps[i], "camera")
        for i, (_, label) in enumerate(frames)
    }
    cdr |= {
        ("anomaly", i): serialization.image_cdr(_truth(i), "mono8", stamps[i], "camera")
        for i in (0, 1)
    }
    order = [("anomaly", 0), ("image", 0), ("label", 0), ("image", 1), ("label", 1)]
    order += [("image", 2), ("anomaly", 1), ("label", 2)]
    topics = {"image": CAMERA, "label": LABELS, "anomaly": ANOMALY}
    with BagWriter(root / "bag") as writer:
        for topic in topics.values():
            writer.add_topic(topic, IMAGE)
        for log_time, (kind, index) in enumerate(order):
            writer.write(topics[kind], START_NS + log_time, cdr[(kind, index)])
    checkpoint = save_checkpoint(build_model("tiny").eval(), root / "tiny.safetensors")
    return {"root": root, "bag": root / "bag", "frames": frames, "checkpoint": checkpoint}


def _expected(scene: dict, truths: list[np.ndarray | None]) -> tuple[float, int, dict]:
    """(ECE, labelled pixels, sklearn metrics per score) of the command's model on the bag."""
    flags = ["bag-eval", str(scene["bag"]), "--checkpoint", str(scene["checkpoint"]), *WHOLE]
    segmenter = options_from(build_parser().parse_args(flags), SegmenterSettings).load()
    frames = list(iter_frames(scene["bag"], CAMERA, LABELS))
    results = segmenter.predict_batch(  # one engine call, as bag-eval batches 3 whole frames
        [f.image for f in frames], anomaly_method="rba", return_anomaly=True
    )
    valid = [f.label != 255 for f in frames]
    confidence = np.concatenate([r.confidence[v] for r, v in zip(results, valid, strict=True)])
    correct = np.concatenate(
        [(r.labels == f.label)[v] for r, f, v in zip(results, frames, valid, strict=True)]
    )
    scored = [(r, t) for r, t in zip(results, truths, strict=True) if t is not None]
    keep = np.concatenate([(t != 255).ravel() for _, t in scored])
    is_anomaly = np.concatenate([(t == 1).ravel() for _, t in scored])[keep]
    maps = {
        "rba": np.concatenate([r.anomaly.ravel() for r, _ in scored])[keep],
        "max_probability": np.concatenate([1 - r.confidence.ravel() for r, _ in scored])[keep],
    }
    metrics = {name: sklearn_metrics(is_anomaly, score) for name, score in maps.items()}
    return numpy_ece(confidence, correct), confidence.size, metrics


def test_anomaly_topic_is_paired_by_stamp_and_kept_out_of_label_discovery(scene) -> None:
    topics = find_topics(scene["bag"], anomaly_topic=ANOMALY)  # "anomaly_labels": not a label
    assert (topics.image_topic, topics.label_topic) == (CAMERA, LABELS)
    assert (topics.anomaly_topic, topics.anomaly_count) == (ANOMALY, 2)
    frames = list(iter_frames(scene["bag"], CAMERA, LABELS, ANOMALY))
    assert [f.stamp_ns for f in frames] == [START_NS + i * 10**8 for i in range(3)]
    for index, frame in enumerate(frames):
        np.testing.assert_array_equal(frame.label, scene["frames"][index][1])
        if index < 2:
            np.testing.assert_array_equal(frame.anomaly, _truth(index))
        else:
            assert frame.anomaly is None
    with pytest.raises(BagError, match="has 2 label topics"):
        find_topics(scene["bag"])  # without naming it, it is a second label candidate
    with pytest.raises(BagError, match="cannot be both the label and the anomaly topic"):
        find_topics(scene["bag"], label_topic=ANOMALY, anomaly_topic=ANOMALY)


def test_topic_and_folder_runs_report_ece_and_sklearn_metrics(scene, tmp_path: Path, capsys):
    base = ["bag-eval", str(scene["bag"]), "--checkpoint", str(scene["checkpoint"]), *WHOLE]
    base += ["--label-topic", LABELS]
    out = tmp_path / "topic"
    assert main([*base, "--anomaly-topic", ANOMALY, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    ece, pixels, metrics = _expected(scene, [_truth(0), _truth(1), None])
    assert report["ece"] == pytest.approx(ece, abs=1e-9)
    assert report["calibration"]["pixels"] == pixels == report["pixels"]
    anomaly = report["anomaly"]
    assert (anomaly["method"], anomaly["frames"]) == ("rba", 2)
    assert anomaly["pixels"] == 2 * int((_truth(0) != 255).sum())
    for score, values in metrics.items():
        for key, value in values.items():
            assert anomaly["metrics"][score][key] == pytest.approx(value, abs=1e-9), (score, key)
    assert (out / "reliability.png").read_bytes()[:8] == PNG
    markdown = (out / "report.md").read_text()
    assert f"| ECE (%) | {100 * ece:.2f} |" in markdown and "## Anomaly detection" in markdown
    assert f"| rba (chosen) | {100 * anomaly['auroc']:.2f} |" in markdown
    assert markdown in printed

    folder = tmp_path / "truth"  # frame 2 all void: the same pixels as the topic run
    folder.mkdir()
    for index, truth in enumerate([_truth(0), _truth(1), np.full(SIZE, 255, np.uint8)]):
        Image.fromarray(truth).save(folder / f"{index:03d}.png")
    seg, out2 = tmp_path / "seg", tmp_path / "folder"
    args = [*base, "--anomaly-labels", str(folder), "--write-bag", str(seg), "--out", str(out2)]
    assert main(args) == 0
    again = json.loads((out2 / "report.json").read_text())
    assert again["anomaly"]["metrics"] == anomaly["metrics"] and again["anomaly"]["frames"] == 3
    assert again["ece"] == report["ece"]
    with Reader(seg) as reader:  # the written bag holds the anomaly score, not the truth
        anomaly_topics = [topic for topic in reader.topics if "anomaly" in topic]
    assert anomaly_topics == ["/camera/segmentation/anomaly"]


def _bad_values_bag(bag: Path) -> None:
    rgb, label = np.zeros((*SIZE, 3), np.uint8), np.zeros(SIZE, np.uint8)
    with BagWriter(bag) as writer:
        for topic, array, encoding in (
            (CAMERA, rgb, "rgb8"),
            (LABELS, label, "mono8"),
            (ANOMALY, np.full(SIZE, 7, np.uint8), "mono8"),
        ):
            writer.add_topic(topic, IMAGE)
            writer.write(topic, START_NS, serialization.image_cdr(array, encoding, START_NS, "c"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--anomaly-topic", ANOMALY, "--live"],
            "cannot be combined with --mask-topic, --labels, ",
        ),
        (
            ["--anomaly-topic", ANOMALY, "--mask-topic", LABELS, "--label-topic", CAMERA],
            r"masks read from the bag \(--mask-topic\) have no anomaly scores",
        ),
        (["--anomaly-topic", "/nope"], r"has no anomaly topic /nope: its Image .*anomaly_labels"),
        (["--anomaly-topic", LABELS], "cannot be both the anomaly topic and the scored or label"),
        (["--anomaly-labels", "{empty}"], r"no PNG anomaly label files found under"),
        (["--anomaly-labels", "{tmp}/missing"], r"anomaly labels folder .* does not exist"),
        (["--anomaly-labels", "{folder}"], r"has 1 files but topic /camera/image_raw has 3"),
        (["bad values"], r"anomaly truth at stamp \d+ ns holds values \[7\]; it must hold 0"),
    ],
)
def test_bad_anomaly_options_exit_2_with_a_message(
    scene, tmp_path: Path, capsys, extra: list[str], message: str
) -> None:
    bag = scene["bag"]
    if extra == ["bad values"]:
        _bad_values_bag(bag := tmp_path / "bad")
        extra = ["--anomaly-topic", ANOMALY]
    (tmp_path / "one").mkdir()
    (tmp_path / "empty").mkdir()
    Image.fromarray(_truth(0)).save(tmp_path / "one" / "a.png")
    extra = [
        e.format(tmp=tmp_path, folder=tmp_path / "one", empty=tmp_path / "empty") for e in extra
    ]
    args = ["bag-eval", str(bag), "--label-topic", LABELS, *extra]
    assert main([*args, "--model", "tiny", *WHOLE, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "vltseg bag-eval: error: " in err
    assert re.search(message, err), err
    assert ("RANDOM" in err) == (message.startswith("anomaly truth at")), err  # model loaded?
    assert not (tmp_path / "out").exists()
