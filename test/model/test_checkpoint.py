"""Checkpoints: round trips are exact, open_clip files and unsafe files refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from test.model.open_clip_models import tiny_open_clip
from vltseg_ros.config.model_config import load_model_config
from vltseg_ros.errors import CheckpointError, CheckpointNotFoundError
from vltseg_ros.model.checkpoint import (
    FORMAT,
    load_model,
    read_checkpoint,
    save_checkpoint,
)
from vltseg_ros.model.segmentor import VLTSeg, build_model


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> torch.nn.Module:
    return tiny_open_clip(tmp_path_factory.mktemp("oc"))


@pytest.mark.parametrize("name", ["tiny", "tiny-eva"])
def test_round_trip_reproduces_outputs_exactly(name: str, tmp_path: Path) -> None:
    model = build_model(name).eval()
    with torch.no_grad():  # give BatchNorm non-trivial running statistics
        model.neck.fpn1[1].running_mean.uniform_(-1, 1)
        model.neck.fpn1[1].running_var.uniform_(0.5, 2)
    path = save_checkpoint(
        model, tmp_path / "m.safetensors", training_domain="gta5", source="unit test"
    )
    tensors, metadata = read_checkpoint(path)
    assert metadata["format"] == FORMAT
    assert json.loads(metadata["classes"])[0] == "road"
    assert json.loads(metadata["crop_size"]) == [64, 64]
    assert metadata["training_domain"] == "gta5" and metadata["source"] == "unit test"
    assert set(tensors) == set(model.state_dict())

    loaded = load_model(path).eval()
    assert loaded.config == model.config.replace(training_domain="gta5")
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_pt_state_dict_needs_a_config(tmp_path: Path) -> None:
    model = build_model("tiny").eval()
    path = tmp_path / "m.pth"
    torch.save(
        {
            "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()},
            "meta": {"iteration": 3},
        },
        path,
    )
    with pytest.raises(CheckpointError, match="--model"):
        load_model(path)
    loaded = load_model(path, load_model_config("tiny")).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_wrong_architecture_is_named(tmp_path: Path) -> None:
    path = save_checkpoint(build_model("tiny"), tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match="does not match the model"):
        load_model(path, load_model_config("tiny-eva"))


def test_open_clip_checkpoint_is_not_a_segmentation_model(tiny_clip, tmp_path) -> None:
    path = tmp_path / "clip.pt"
    torch.save(tiny_clip.state_dict(), path)
    with pytest.raises(CheckpointError, match="open_clip CLIP checkpoint"):
        load_model(path, load_model_config("tiny"))


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_would_run_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": _RunsCode(marker)}, path)
    with pytest.raises(CheckpointError, match="refusing to load"):
        read_checkpoint(path)
    assert not marker.exists()


def test_missing_corrupt_and_unsupported_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match="does not exist"):
        read_checkpoint(tmp_path / "nope.safetensors")
    good = save_checkpoint(VLTSeg(load_model_config("tiny")), tmp_path / "good.safetensors")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="cannot read"):
        read_checkpoint(truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(CheckpointError):
        read_checkpoint(garbage)
    odd = tmp_path / "weights.npz"
    odd.write_bytes(b"x")
    with pytest.raises(CheckpointError, match="unsupported checkpoint type"):
        read_checkpoint(odd)
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(1)}, str(plain))
    with pytest.raises(CheckpointError, match="carries no vltseg_ros model config"):
        load_model(plain)
