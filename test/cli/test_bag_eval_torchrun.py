"""``vltseg bag-eval`` over several bags (a folder of bags) and under torchrun: a report per bag
plus the total, equal to one process's; 2 gloo processes on the CPU share whole bags (and
write one output bag per input bag) or, with one bag, its frames (then nothing is written:
test/bag/test_fleet.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from test.bag import START_NS
from test.cli.torchrun import torchrun
from vltseg_ros.bag import serialization
from vltseg_ros.bag.writing import BagWriter
from vltseg_ros.cli.main import main
from vltseg_ros.data.scenes import synthetic_street_scene

IMAGE = "sensor_msgs/msg/Image"
CAMERA, LABELS, ANOMALY = "/camera/image_raw", "/camera/labels", "/camera/anomaly_labels"
MODEL = ["--model", "synthetic-scenes-demo", "--anomaly-topic", ANOMALY]
BAGS = {"a": (2, "mcap"), "b": (3, "sqlite3"), "c": (2, "mcap")}  # frames, storage


def _anomaly_bag(path: Path, frames: int, storage: str, seed: int) -> None:
    """``frames`` generated 64x128 scenes with labels and anomaly truth (cars and a box: 1,
    sky: void, the rest 0), 0.1 s apart."""
    with BagWriter(path, storage=storage) as writer:
        for topic in (CAMERA, LABELS, ANOMALY):
            writer.add_topic(topic, IMAGE)
        for i in range(frames):
            rgb, labels = synthetic_street_scene(64, 128, seed=seed + i)
            truth = (labels == 13).astype(np.uint8)
            truth[40:52, 60 + 8 * i : 76 + 8 * i] = 1
            truth[labels == 10] = 255
            stamp = START_NS + i * 10**8
            for topic, array, encoding in (
                (CAMERA, rgb, "rgb8"),
                (LABELS, labels, "mono8"),
                (ANOMALY, truth, "mono8"),
            ):
                writer.write(topic, stamp, serialization.image_cdr(array, encoding, stamp, "c"))


@pytest.fixture(scope="module")
def drives(tmp_path_factory) -> Path:
    """A folder of 3 bags: a (2 frames, mcap), b (3, sqlite3), c (2, mcap)."""
    root = tmp_path_factory.mktemp("fleet") / "drives"
    for seed, (name, (frames, storage)) in enumerate(BAGS.items()):
        _anomaly_bag(root / name, frames, storage, 100000 + 10 * seed)
    return root


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def _without_timing(report: dict) -> dict:
    """A report.json without what depends on the clock (latencies) or the run (processes, also
    the anomaly report's)."""
    kept = {k: v for k, v in report.items() if k not in ("latency_ms", "processes", "report")}
    if kept.get("anomaly"):
        kept["anomaly"] = {k: v for k, v in kept["anomaly"].items() if k != "processes"}
    return kept


def test_a_folder_of_bags_on_two_processes_equals_one_process(drives: Path, tmp_path) -> None:
    one, two, written = tmp_path / "one", tmp_path / "two", tmp_path / "segmented"
    assert main(["bag-eval", str(drives), *MODEL, "--out", str(one)]) == 0
    done = torchrun(
        ["bag-eval", str(drives), *MODEL, "--out", str(two), "--write-bag", str(written)],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    alone, split = _read(one / "report.json"), _read(two / "report.json")

    assert (alone["processes"], split["processes"]) == (1, 2)
    assert list(split["bags"]) == list(alone["bags"]) == list(BAGS)
    for name, (frames, _) in BAGS.items():
        bag = split["bags"][name]
        assert bag["source"] == str(drives / name) and bag["frames"] == frames
        assert bag["processes"] == 2 and bag["latency_ms"]["count"] == frames
        assert bag["report"] == f"{name}/report.json"
        # whole bags: each segmented as one process segments it, every number equal
        assert _without_timing(bag) == _without_timing(alone["bags"][name])
        assert _read(two / name / "report.json") == {k: v for k, v in bag.items() if k != "report"}
    total = split["total"]
    assert _without_timing(total) == _without_timing(alone["total"])
    matrices = [np.array(split["bags"][n]["confusion"]["matrix"]) for n in BAGS]
    assert total["confusion"]["matrix"] == sum(matrices).tolist()  # the total = the sum
    assert total["frames"] == 7 and total["latency_ms"]["count"] == 7
    assert total["miou"] > 0.5 and 0 < total["anomaly"]["auroc"] <= 1
    assert total["anomaly"]["pixels"] == sum(split["bags"][n]["anomaly"]["pixels"] for n in BAGS)
    markdown = (two / "report.md").read_text()
    assert "processes: 2" in markdown and "## Total (3 bags)" in markdown
    assert all(f"## Bag {name}" in markdown for name in BAGS)
    assert all((two / name / "iou.png").is_file() for name in BAGS)
    for name, (frames, _) in BAGS.items():  # one output bag per input bag, named after it
        with Reader(written / name) as reader:
            counts = {t: info.msgcount for t, info in reader.topics.items()}
        assert counts[CAMERA] == frames and counts["/camera/segmentation/mask"] == frames


def test_one_bag_on_two_processes_splits_its_frames(drives: Path, tmp_path: Path) -> None:
    bag = drives / "b"
    args = ["bag-eval", str(bag), *MODEL, "--batch-size", "1"]  # each frame alone, as alone
    done = torchrun([*args, "--out", str(tmp_path / "two")], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    alone, split = _read(tmp_path / "one" / "report.json"), _read(tmp_path / "two" / "report.json")
    assert (alone["processes"], split["processes"]) == (1, 2)
    assert split["confusion"] == alone["confusion"]  # bit for bit
    for key in ("frames", "pixels", "miou", "pixel_accuracy", "iou"):
        assert split[key] == alone[key], key
    assert split["calibration"]["bin_counts"] == alone["calibration"]["bin_counts"]
    assert abs(split["ece"] - alone["ece"]) <= 1e-12  # confidence sums added in another order
    assert split["latency_ms"]["count"] == 3
    for key in ("pixels", "anomaly_pixels", "auroc", "average_precision", "fpr_at_95_tpr"):
        assert split["anomaly"][key] == alone["anomaly"][key], key
