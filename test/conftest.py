"""Shared fixtures: real frames from ../shared/data (skipped when absent), tiny models."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

SHARED_FRAMES = (
    Path(
        os.environ.get(
            "VLTSEG_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"
        )
    )
    / "frames"
)


def shared_frame(name: str) -> Path:
    """Path of a real frame in ../shared/data/frames; skips the test when it is absent."""
    path = SHARED_FRAMES / name
    if not path.is_file():
        pytest.skip(f"real frame {name} not available (../shared/data is not part of the repo)")
    return path


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
