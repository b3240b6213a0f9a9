"""``vltseg convert-checkpoint``: an MMSegmentation-style file converts, verifies and segments."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors import safe_open

from test.convert.mmseg_fixtures import (
    TINY_MODEL,
    reference_state_dict,
    register_fake_mmengine,
    tiny_config,
    write_reference_checkpoint,
)
from vltseg_ros.cli.main import main
from vltseg_ros.convert import convert_state_dict
from vltseg_ros.data.scenes import synthetic_street_scene
from vltseg_ros.engines import TorchEngine
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.model.segmentor import VLTSeg


def test_convert_then_segment_end_to_end(tmp_path: Path, monkeypatch, capsys) -> None:
    register_fake_mmengine(monkeypatch)
    state = reference_state_dict(seed=3)
    source = write_reference_checkpoint(tmp_path / "vltseg_checkpoint_gta_1.pth", state)
    out = tmp_path / "gta.safetensors"
    assert main(["convert-checkpoint", str(source), str(out), "--model", str(TINY_MODEL)]) == 0
    printed = capsys.readouterr().out
    assert "mmengine.logging.history_buffer.HistoryBuffer" in printed
    assert "10 RoPE tables checked equal" in printed and "training domain: gta5" in printed

    with safe_open(str(out), framework="pt") as handle:
        meta = handle.metadata()
        assert torch.equal(
            handle.get_tensor("encoder.visual.trunk.blocks.3.attn.q_proj.bias"),
            state["backbone.blocks.3.attn.q_bias"],
        )
        assert torch.equal(
            handle.get_tensor("head.cls_embed.weight"), state["decode_head.cls_embed.weight"]
        )
    assert meta["training_domain"] == "gta5"
    assert meta["source"] == "vltseg_checkpoint_gta_1.pth (VLTSeg MMSegmentation checkpoint)"
    assert meta["license"].startswith("CC-BY-NC 4.0") and "14766160" in meta["license"]
    assert json.loads(meta["model_config"])["name"] == "vltseg_reference_eva02_tiny_model"

    image, _ = synthetic_street_scene(100, 150, seed=1)  # RGB
    frame = tmp_path / "frame.png"
    cv2.imwrite(str(frame), image[..., ::-1])
    assert main(["segment", str(frame), "--checkpoint", str(out), "--out", str(tmp_path)]) == 0
    assert "RANDOM" not in capsys.readouterr().err
    labels = cv2.imread(str(tmp_path / "frame_labels.png"), cv2.IMREAD_UNCHANGED)
    # the same weights put into the model directly (not through the file) give the same labels
    model = VLTSeg(tiny_config())
    model.load_state_dict(convert_state_dict(state, model), strict=True)
    expected = Segmenter(TorchEngine(model)).predict(image, "rgb").labels
    assert labels.shape == (100, 150)
    np.testing.assert_array_equal(labels, expected)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _bad_input(tmp_path: Path, case: str) -> tuple[Path, list[str]]:
    state = reference_state_dict()
    model_args = ["--model", str(TINY_MODEL)]
    meta = None
    if case == "extra key":
        state["backbone.blocks.0.attn.inner_attn_ln.weight"] = torch.ones(32)
    elif case == "missing key":
        del state["decode_head.query_feat.weight"]
    elif case == "wrong shape":
        state["backbone.fpn2.0.weight"] = torch.zeros(32, 32, 3, 3)
    elif case == "evil pickle":
        meta = {"hook": _Evil()}
    elif case == "no model for grid":
        model_args = []
    path = tmp_path / "in.pth"
    if case == "not a checkpoint":
        path.write_bytes(b"<html>404 Not Found</html>")
    else:
        write_reference_checkpoint(path, state, meta)
    return path, model_args


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("extra key", "no counterpart in the model:\n    backbone.blocks.0.attn.inner_attn_ln"),
        ("missing key", "without a value in the checkpoint:\n    head.query_feat.weight"),
        ("wrong shape", "backbone.fpn2.0.weight (32, 32, 3, 3) vs model neck.fpn2.0.weight"),
        ("not a checkpoint", "is not a PyTorch checkpoint: it starts with b'<htm'"),
        ("evil pickle", "refusing to load"),
        ("no model for grid", "has a 5x5 grid; the built-in VLTSeg models have 36x36"),
    ],
)
def test_bad_inputs_exit_2_with_a_clear_message(
    tmp_path: Path, monkeypatch, capsys, case: str, message: str
) -> None:
    register_fake_mmengine(monkeypatch)
    path, model_args = _bad_input(tmp_path, case)
    out = tmp_path / "out.safetensors"
    assert main(["convert-checkpoint", str(path), str(out), *model_args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vltseg convert-checkpoint: error:")
    assert message in err
    assert not out.exists()
    if case == "evil pickle":
        assert "posix.system" in err or "os.system" in err


def test_output_must_be_safetensors(tmp_path: Path, monkeypatch, capsys) -> None:
    register_fake_mmengine(monkeypatch)
    source = write_reference_checkpoint(tmp_path / "a.pth", reference_state_dict())
    args = ["convert-checkpoint", str(source), str(tmp_path / "b.pt"), "--model", str(TINY_MODEL)]
    assert main(args) == 2
    assert "must be a .safetensors file" in capsys.readouterr().err


def test_segment_with_an_unconverted_reference_checkpoint_says_to_convert(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    register_fake_mmengine(monkeypatch)
    state = reference_state_dict()
    with_meta = write_reference_checkpoint(tmp_path / "with_meta.pth", state)
    weights_only = tmp_path / "weights_only.pth"
    torch.save({"state_dict": state}, weights_only)
    for path in (with_meta, weights_only):
        args = ["segment", "--synthetic", "--out", str(tmp_path / "o"), "--checkpoint", str(path)]
        assert main([*args, "--model", str(TINY_MODEL)]) == 2
        assert "vltseg convert-checkpoint" in capsys.readouterr().err
