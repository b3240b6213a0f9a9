"""A bag's metadata.yaml: a corrupt one is a one-line error, message counts come from the
storage files, and the frame-name table that make-bag writes names the frames."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest

from test.bag import START_NS
from test.data.layouts import image_rgb, write_grey, write_image
from vltseg_ros.bag.frame_names import (
    FRAME_NAMES_KEY,
    encode_frame_names,
    frame_name,
    read_frame_names,
)
from vltseg_ros.bag.topics import find_topics
from vltseg_ros.cli.main import main
from vltseg_ros.errors import BagError

FAST = ["--model", "tiny", "--inference.mode", "whole", "--inference.whole-size", "64", "128"]


@pytest.fixture
def bag(tmp_path: Path) -> Path:
    """3 synthetic frames (names in its metadata.yaml)."""
    path = tmp_path / "bag"
    assert (
        main(["make-bag", "-", str(path), "--synthetic", "3", "--synthetic-size", "64", "128"])
        == 0
    )
    return path


def test_a_corrupt_metadata_yaml_is_one_line_naming_file_and_problem(bag, capsys) -> None:
    metadata = bag / "metadata.yaml"
    lines = metadata.read_text().splitlines()
    lines[2] = "  : [unclosed"
    metadata.write_text("\n".join(lines) + "\n")
    code = main(["bag-eval", str(bag), *FAST])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1, err  # one line
    assert re.fullmatch(
        rf"vltseg bag-eval: error: cannot read bag {bag}: {metadata} is not valid YAML: "
        r"expected ',' or '\]', but got ':' \(line \d+, column \d+\)\n",
        err,
    ), err


def test_a_metadata_yaml_that_is_not_text(bag) -> None:
    (bag / "metadata.yaml").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(BagError, match=r"metadata\.yaml is not a UTF-8 text") as caught:
        find_topics(bag)
    assert "\n" not in str(caught.value)


def _claim(bag: Path, count: int) -> None:
    """Make metadata.yaml claim ``count`` messages on the image topic."""
    metadata = bag / "metadata.yaml"
    text = metadata.read_text()
    claimed = re.sub(
        r"message_count: 3(\n\s+topic_metadata:\n\s+name: /camera/image_raw)",
        rf"message_count: {count}\1",
        text,
    )
    assert claimed != text
    metadata.write_text(claimed)


def test_counts_come_from_the_storage_not_from_the_claims_of_metadata(bag, caplog) -> None:
    _claim(bag, 999_999)
    with caplog.at_level(logging.WARNING):
        topics = find_topics(bag)
        find_topics(bag)
    assert topics.image_count == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"bag {bag}: metadata.yaml claims 999999 messages on /camera/image_raw but its storage "
        "holds 3; counting 3"
    ]  # once, however often the bag is opened


def test_bag_eval_of_an_overclaiming_bag_shows_the_true_total(bag, tmp_path, capsys) -> None:
    _claim(bag, 999_999)
    labels = tmp_path / "labels"  # matched by order: the count must be the true one
    for i in range(3):
        write_grey(labels / f"f{i}.png", np.full((64, 128), i, np.uint8))
    assert main(["bag-eval", str(bag), "--labels", str(labels), *FAST]) == 0
    err = capsys.readouterr().err
    assert "3/3" in err and "999999" not in err.replace("claims 999999", "")


# --- frame names --------------------------------------------------------------------------------


def test_make_bag_names_frames_after_their_files(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    for name in ("b/x", "a/x", "c"):  # two stems x: the later one (by path) gets _2
        write_image(frames / f"{name}.png", image_rgb(len(name), (64, 128)))
    bag = tmp_path / "bag"
    assert main(["make-bag", str(frames), str(bag)]) == 0
    names = read_frame_names(bag)
    assert [names[stamp] for stamp in sorted(names)] == ["x", "x_2", "c"]
    assert frame_name(min(names), names) == "x"
    assert frame_name(1, names) == "1"  # a stamp without a name: the stamp


def test_synthetic_frames_are_named_as_make_scenes_names_them(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    assert (
        main(["make-bag", "-", str(bag), "--synthetic", "2", "--synthetic-size", "64", "64"]) == 0
    )
    names = read_frame_names(bag)
    assert sorted(names.values()) == ["scenes_100000_000000", "scenes_100001_000000"]


def test_bag_eval_write_bag_keeps_the_names(bag, tmp_path: Path) -> None:
    written = tmp_path / "segmented"
    assert main(["bag-eval", str(bag), "--write-bag", str(written), *FAST]) == 0
    assert read_frame_names(written) == read_frame_names(bag)
    assert len(read_frame_names(bag)) == 3


@pytest.mark.parametrize("bad", ["../../etc/passwd", ".hidden", "a/b", "", "x" * 201])
def test_a_table_with_a_name_that_is_no_plain_file_name_is_ignored(bag, caplog, bad) -> None:
    metadata = bag / "metadata.yaml"
    table = json.dumps({str(START_NS): bad, str(START_NS + 1): "fine"})
    text = metadata.read_text()
    start = text.index(FRAME_NAMES_KEY)
    end = text.index("\n", start)
    metadata.write_text(text[:start] + f"{FRAME_NAMES_KEY}: {json.dumps(table)}" + text[end:])
    with caplog.at_level(logging.WARNING):
        assert read_frame_names(bag) == {}
    assert "frames are named by stamp" in caplog.text
    with pytest.raises(ValueError, match="not a plain file name"):
        encode_frame_names({1: bad})


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ValueError, match="same name"):
        encode_frame_names({1: "a", 2: "a"})
