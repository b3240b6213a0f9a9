"""Tests of the rosbag2 tools (vltseg_ros.bag), and helpers that build small bags."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vltseg_ros.bag.make_bag import BagLayout, synthetic_frames, write_frames_bag

START_NS = 1_700_000_000_000_000_000
"""Header stamp of the first frame of the test bags (ns since the epoch)."""


def synthetic_bag(
    path: Path, frames: int = 3, storage: str = "mcap", compressed: bool = False
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Write ``frames`` 64x128 synthetic scenes (rate 10) and return their (image, label)."""
    layout = BagLayout(storage=storage, compressed=compressed, start_ns=START_NS)
    write_frames_bag(path, synthetic_frames(frames, 64, 128), layout)
    return list(synthetic_frames(frames, 64, 128))
