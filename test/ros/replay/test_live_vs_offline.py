"""A live replay scores what the offline evaluation of the same bag scores.

``vltseg bag-eval --live --lockstep`` (the bag played into a vltseg_node process, its masks
recorded and matched to the bag's labels by header stamp) and ``vltseg bag-eval`` (the frames
segmented in this process) with the same deterministic model and settings must score the same
frames and add up to the same confusion matrix, pixel for pixel: lockstep drops nothing. The
bag's labels differ from frame to frame, so a mask paired with another frame's label would
change the matrix (checked below by pairing them on purpose). The live side also fails fast,
with the reason, when the node's process or this process's executor thread dies.
"""

from __future__ import annotations

import itertools
import subprocess
import threading
import time

import numpy as np
import pytest

from test.conftest import private_domain_id
from vltseg_ros.bag.evaluate import BagEvalOptions, evaluate_bag
from vltseg_ros.bag.make_bag import BagLayout, synthetic_frames, write_frames_bag
from vltseg_ros.bag.reading import read_labels
from vltseg_ros.bag.topics import find_topics
from vltseg_ros.cli.bag_eval import node_overrides
from vltseg_ros.demo_model import DEMO_CHECKPOINT
from vltseg_ros.evaluation.metrics import ConfusionMatrix
from vltseg_ros.inference.outputs import OutputSettings
from vltseg_ros.inference.settings import SegmenterSettings
from vltseg_ros.ros.replay import live
from vltseg_ros.ros.replay.live import ReplayError, run_live_replay
from vltseg_ros.ros.replay.recorder import ReplayRecorder

FRAMES = 5
# The demo model (trained, deterministic on the CPU), one frame per network pass on both sides.
SETTINGS = SegmenterSettings(checkpoint=str(DEMO_CHECKPOINT), batch_size=1)
MASK_TOPIC = "/camera/segmentation/mask"
SLOW = {"model": "tiny", "inference": {"mode": "slide"}}  # about a second per 256x512 frame


@pytest.fixture
def replay_env(tmp_path, monkeypatch):
    from test.ros.harness import ros_environment

    for key, value in ros_environment(tmp_path).items():
        monkeypatch.setenv(key, value)


def _bag(tmp_path, frames: int = FRAMES, size=(256, 512)):
    path = tmp_path / "input"
    write_frames_bag(path, synthetic_frames(frames, *size), BagLayout(rate=10.0))
    return path


def test_a_live_replay_scores_exactly_what_the_offline_evaluation_scores(
    replay_env, tmp_path
) -> None:
    bag = _bag(tmp_path)
    segmenter = SETTINGS.load()
    offline = evaluate_bag(bag, segmenter, BagEvalOptions(), checkpoint=segmenter.checkpoint)
    segmenter.close()
    out = tmp_path / "live"
    live_report = run_live_replay(
        bag, out, node_overrides(SETTINGS, OutputSettings()), lockstep=True
    )
    assert live_report.dropped_frames == 0
    assert live_report.frames == offline.frames == FRAMES
    assert live_report.class_names == offline.class_names
    np.testing.assert_array_equal(live_report.confusion.matrix, offline.confusion.matrix)
    assert live_report.confusion.miou() == offline.confusion.miou()
    assert offline.confusion.miou() > 0.5  # a model that segments, not noise
    # The node's masks (recorded in the output bag) and the bag's labels, by header stamp:
    # together they are the matrix; each mask against the next frame's label (what pairing
    # by the wrong stamp would do) gives another, worse one, since the labels differ per frame.
    masks = read_labels(out / "segmented", MASK_TOPIC)
    labels = read_labels(bag, find_topics(bag).label_topic)
    stamps = sorted(labels)
    assert sorted(masks) == stamps and len(stamps) == FRAMES
    assert all((labels[a] != labels[b]).any() for a, b in itertools.pairwise(stamps))
    paired = ConfusionMatrix(len(offline.class_names))
    shifted = ConfusionMatrix(len(offline.class_names))
    for stamp, other in zip(stamps, stamps[1:] + stamps[:1], strict=True):
        paired.update(masks[stamp], labels[stamp])
        shifted.update(masks[stamp], labels[other])
    np.testing.assert_array_equal(paired.matrix, offline.confusion.matrix)
    assert not np.array_equal(shifted.matrix, live_report.confusion.matrix)
    assert shifted.miou() < live_report.confusion.miou()


def test_a_lockstep_replay_stops_at_once_when_the_node_process_dies(
    replay_env, tmp_path, monkeypatch
) -> None:
    # A domain of its own: a killed process leaves its endpoints in the other participants'
    # graph for a while, which must not meet the next tests of this worker.
    monkeypatch.setenv("ROS_DOMAIN_ID", private_domain_id(20, 30))
    started: list[subprocess.Popen] = []
    real_popen = subprocess.Popen

    def popen(*args, **kwargs) -> subprocess.Popen:  # keeps the node's process
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(live.subprocess, "Popen", popen)
    killed: list[float] = []

    def kill_while_playing() -> None:  # a few masks into a 30-frame lockstep replay
        log = tmp_path / "eval" / "node.log"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if log.is_file() and "]: active\n" in log.read_text():
                time.sleep(4.0)
                started[0].kill()
                killed.append(time.monotonic())
                return
            time.sleep(0.1)

    threading.Thread(target=kill_while_playing, daemon=True).start()
    with pytest.raises(ReplayError, match="vltseg_node exited with code -9"):
        run_live_replay(_bag(tmp_path, frames=30), tmp_path / "eval", SLOW, lockstep=True)
    assert killed and time.monotonic() - killed[0] < 10  # not lockstep_timeout (600 s)


def test_a_replay_stops_with_the_reason_when_its_executor_thread_dies(
    replay_env, tmp_path, monkeypatch
) -> None:
    def broken(self, kind, data):
        raise RuntimeError("injected fault in a recorder callback")

    monkeypatch.setattr(ReplayRecorder, "_on_output", broken)
    started = time.monotonic()
    with pytest.raises(ReplayError, match="executor thread died: RuntimeError: injected fault"):
        run_live_replay(_bag(tmp_path, frames=30), tmp_path / "eval", SLOW, lockstep=True)
    assert time.monotonic() - started < 120  # not 600 s per mask
