"""A live replay names its overlays after the input frames that make-bag stored in the bag."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vltseg_ros.bag.frame_names import read_frame_names
from vltseg_ros.cli.main import main
from vltseg_ros.ros.replay.live import run_live_replay

FAST = {"model": "tiny", "inference": {"mode": "whole", "whole_size": [64, 128]}}


@pytest.fixture
def replay_env(tmp_path, monkeypatch):
    """A private ROS domain for the node process and the in-process player / recorder."""
    from test.ros.harness import ros_environment

    for key, value in ros_environment(tmp_path).items():
        monkeypatch.setenv(key, value)


def test_overlays_are_named_after_their_frames(replay_env, tmp_path) -> None:
    scenes, bag, out = tmp_path / "scenes", tmp_path / "input", tmp_path / "eval"
    assert main(["make-scenes", str(scenes), "--count", "2", "--size", "128x64"]) == 0
    assert main(["make-bag", str(scenes), str(bag), "--labels", str(scenes)]) == 0
    names = read_frame_names(bag)
    expected = ["scenes_000000_000000_leftImg8bit", "scenes_000001_000000_leftImg8bit"]
    assert [names[stamp] for stamp in sorted(names)] == expected
    report = run_live_replay(bag, out, FAST, lockstep=True, save_overlays=True)
    assert report.dropped_frames == 0
    overlays = sorted((out / "overlays").iterdir())
    assert [p.name for p in overlays] == [f"{name}.png" for name in expected]
    for path in overlays:  # complete images of the frame's size
        image = cv2.imread(str(path))
        assert image is not None and image.shape == (64, 128, 3) and image.dtype == np.uint8
