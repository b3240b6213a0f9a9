"""Several bags in one run (vltseg_ros.bag.fleet): which paths are bags, which process takes
which bag or frames, shares of a bag adding up to the whole bag, and clear one-line errors for
bad bags among several. Two-process launches: test/cli/test_bag_eval_torchrun.py."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from test.bag import synthetic_bag
from vltseg_ros.bag.evaluate import BagEvalOptions, evaluate_bag, score_bag
from vltseg_ros.bag.fleet import bag_name, find_bags, shares, written_bag
from vltseg_ros.cli.main import main
from vltseg_ros.errors import BagError, ConfigError
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.model.checkpoint import save_checkpoint
from vltseg_ros.model.segmentor import build_model
from vltseg_ros.parallel.distributed import DistributedContext

FAST = ["--model", "tiny", "--inference.mode", "whole", "--inference.whole-size", "64", "128"]


@pytest.fixture(scope="module")
def drives(tmp_path_factory) -> Path:
    """A folder holding bag folders run1 (3 frames, mcap) and run3 (sqlite3), a single-file
    bag run2.mcap, and a file that is no bag."""
    root = tmp_path_factory.mktemp("drives")
    synthetic_bag(root / "run1", frames=3)
    synthetic_bag(root / "run3", frames=2, storage="sqlite3")
    folder = tmp_path_factory.mktemp("single_file")
    synthetic_bag(folder / "bag", frames=2)
    next((folder / "bag").glob("*.mcap")).rename(root / "run2.mcap")
    (root / "notes.txt").write_text("not a bag")
    (root / "empty").mkdir()  # no bag inside
    return root


def test_bags_are_found_in_folders_and_named(drives: Path, tmp_path: Path) -> None:
    found = find_bags([drives])
    assert found == [drives / "run1", drives / "run2.mcap", drives / "run3"]  # sorted
    assert [bag_name(b) for b in found] == ["run1", "run2", "run3"]
    assert find_bags([drives / "run3", drives / "run1"]) == [drives / "run3", drives / "run1"]
    assert written_bag(Path("out"), drives / "run2.mcap") == Path("out/run2.mcap")
    with pytest.raises(BagError, match="is not a rosbag2: expected a bag directory"):
        find_bags([drives / "empty"])
    with pytest.raises(BagError, match=r"missing does not exist"):
        find_bags([drives / "run1", drives / "missing"])
    with pytest.raises(BagError, match=r"run1 is given twice"):
        find_bags([drives / "run1", drives])
    shutil.copytree(drives / "run1", tmp_path / "copy" / "run1")
    with pytest.raises(BagError, match=r"copy/run1 and .*run1: the bags of one run need"):
        find_bags([drives / "run1", tmp_path / "copy"])


def test_whole_bags_or_frames_are_shared_among_processes() -> None:
    def of(rank: int, world: int, bags: int) -> list:
        return shares(bags, DistributedContext(rank=rank, world_size=world))

    assert of(0, 1, 3) == [(0, (0, 1)), (1, (0, 1)), (2, (0, 1))]  # one process: all, whole
    assert of(0, 2, 3) == [(0, (0, 1)), (2, (0, 1))]  # bag i on rank i % N
    assert of(1, 2, 3) == [(1, (0, 1))]
    assert of(1, 2, 2) == [(1, (0, 1))]
    assert of(1, 4, 2) == [(0, (1, 4)), (1, (1, 4))]  # fewer bags: frame k on rank k % N


def test_shares_of_a_bag_add_up_to_the_whole_bag(drives: Path, tmp_path: Path) -> None:
    checkpoint = save_checkpoint(build_model("tiny").eval(), tmp_path / "tiny.safetensors")
    segmenter = Segmenter.load(None, checkpoint, batch_size=1)
    bag, options = drives / "run1", BagEvalOptions()
    whole = evaluate_bag(bag, segmenter, options, checkpoint=str(checkpoint))
    parts = [score_bag(bag, segmenter, options, share=(r, 2)) for r in (1, 0)]
    assert [p.counts.frames for p in parts] == [1, 2]  # frames 1 | 0 and 2
    parts[0].merge(parts[1])
    merged = parts[0].report(processes=2)
    assert np.array_equal(merged.confusion.matrix, whole.confusion.matrix)
    assert merged.frames == whole.frames == 3 and merged.processes == 2
    assert merged.confusion.pixels == 3 * 64 * 128
    assert len(merged.latencies_ms) == 3
    assert np.array_equal(merged.calibration.bin_counts, whole.calibration.bin_counts)
    with pytest.raises(ConfigError, match="cannot be written to a bag"):
        score_bag(bag, segmenter, BagEvalOptions(write_bag=tmp_path / "o"), share=(0, 2))

    # labels from a folder are matched by the frame's position, also in a share: frame k of
    # the bag gets file k (here the labels of frames 2, 1, 0: another matrix than the topic's)
    labels = tmp_path / "labels"
    labels.mkdir()
    for k, (_, label) in enumerate(reversed(synthetic_bag(tmp_path / "again", frames=3))):
        Image.fromarray(label).save(labels / f"{k}.png")
    folder = BagEvalOptions(labels_dir=labels)
    demo = Segmenter.load("synthetic-scenes-demo", batch_size=1)  # predictions that vary
    whole = evaluate_bag(bag, demo, folder)
    parts = [score_bag(bag, demo, folder, share=(r, 3)) for r in range(3)]
    for part in parts[1:]:
        parts[0].merge(part)
    assert np.array_equal(parts[0].report().confusion.matrix, whole.confusion.matrix)
    topic = evaluate_bag(bag, demo, options)
    assert topic.confusion.miou() > 0.8 > whole.confusion.miou()  # frames 0 and 2 swapped


def test_several_bags_without_torchrun_report_each_and_the_total(drives: Path, in_tmp) -> None:
    bags = [str(drives / "run3"), str(drives / "run2.mcap")]
    assert main(["bag-eval", *bags, *FAST, "--write-bag", "seg"]) == 0
    report = json.loads((in_tmp / "bags_eval" / "report.json").read_text())  # in the cwd
    assert report["processes"] == 1 and list(report["bags"]) == ["run3", "run2"]
    assert report["total"]["frames"] == 4 and report["total"]["source"] == "2 bags"
    assert sorted(p.name for p in (in_tmp / "seg").iterdir()) == ["run2.mcap", "run3"]
    bag_pixels = [report["bags"][name]["pixels"] for name in ("run3", "run2")]
    assert report["total"]["pixels"] == sum(bag_pixels) == 4 * 64 * 128


def test_a_bag_split_over_processes_is_not_written(drives: Path, tmp_path: Path) -> None:
    from vltseg_ros.cli import bag_eval
    from vltseg_ros.cli.main import parse_args

    out = tmp_path / "seg"
    args = parse_args(["bag-eval", str(drives / "run1"), *FAST, "--write-bag", str(out)])
    two = DistributedContext(rank=1, world_size=2)  # what each of 2 processes decides alone
    with pytest.raises(ConfigError, match="--write-bag needs whole bags, but 2 processes split"):
        bag_eval._evaluate(args, [drives / "run1"], True, BagEvalOptions(write_bag=out), two)
    assert not out.exists()


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", r"bag \S*missing does not exist"),
        ("corrupt", r"cannot read bag \S*bad: it is truncated, corrupt or not a rosbag2"),
        ("no bags", r"empty is not a rosbag2: expected a bag directory with metadata.yaml"),
        ("labels", r"--labels and --anomaly-labels match one bag's frames by order"),
        ("mask topic", r"--mask-topic takes one bag, got 2 paths: run it once per bag"),
        ("live", r"--live takes one bag, got 2 paths"),
        ("live on a folder", r"--live takes one bag, got the folder \S*drives"),
    ],
)
def test_bad_bags_among_several_are_one_line(
    drives: Path, in_tmp: Path, capsys, case: str, message: str
) -> None:
    args = ["bag-eval", str(drives / "run1")]
    if case == "missing":
        args.append(str(in_tmp / "missing"))
    elif case == "corrupt":
        bad = in_tmp / "bad"
        synthetic_bag(bad, frames=1)
        storage = next(bad.glob("*.mcap"))
        storage.write_bytes(storage.read_bytes()[: storage.stat().st_size // 2])
        args.append(str(bad))
    elif case == "live on a folder":
        args = ["bag-eval", str(drives), "--live"]
    elif case == "no bags":
        (in_tmp / "empty").mkdir()
        args.append(str(in_tmp / "empty"))
    else:
        args.append(str(drives / "run3"))
        args += {"labels": ["--labels", str(in_tmp)], "mask topic": ["--mask-topic", "/m"]}.get(
            case, ["--live"]
        )
    capsys.readouterr()
    assert main([*args, *FAST]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "RANDOM" not in err  # before the model was loaded
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vltseg bag-eval: error: "), err
    assert re.search(message, err), err
    assert not (in_tmp / "bags_eval").exists()
