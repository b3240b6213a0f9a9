"""The segmentor wires encoder -> pyramid -> head with the reference's scales and key names."""

from __future__ import annotations

import pytest
import torch

from vltseg_ros.config.model_config import load_model_config
from vltseg_ros.model.pyramid import SimpleFeaturePyramid
from vltseg_ros.model.segmentor import VLTSeg, build_model


def test_pyramid_levels_are_at_quarter_half_one_and_double_the_patch_stride() -> None:
    pyramid = SimpleFeaturePyramid(16).eval()
    feats = [torch.randn(2, 16, 5, 7) for _ in range(4)]
    out = pyramid(feats)
    assert [tuple(t.shape[-2:]) for t in out] == [(20, 28), (10, 14), (5, 7), (2, 3)]
    torch.testing.assert_close(out[2], feats[2])
    torch.testing.assert_close(out[3], torch.nn.functional.max_pool2d(feats[3], 2))
    assert set(pyramid.state_dict()) == {
        "fpn1.0.weight",
        "fpn1.0.bias",
        "fpn1.1.weight",
        "fpn1.1.bias",
        "fpn1.1.running_mean",
        "fpn1.1.running_var",
        "fpn1.1.num_batches_tracked",
        "fpn1.3.weight",
        "fpn1.3.bias",
        "fpn2.0.weight",
        "fpn2.0.bias",
    }


@pytest.mark.parametrize("name", ["tiny", "tiny-eva"])
def test_forward_gives_raw_scores_at_input_resolution(name: str) -> None:
    model = build_model(name).eval()
    with torch.no_grad():
        scores = model(torch.randn(2, 3, 64, 96))
    assert scores.shape == (2, 19, 64, 96)
    num_queries = model.config.head.num_queries
    assert scores.min() >= 0 and scores.sum(1).max() <= num_queries
    assert model.min_input_size == (16, 16)


def test_build_from_name_path_and_config(tmp_path) -> None:
    config = load_model_config("tiny")
    path = tmp_path / "tiny.json"
    path.write_text(__import__("json").dumps(config.to_dict()))
    for source in ("tiny", path, config):
        assert build_model(source).config.encoder == config.encoder


def test_reference_architecture_size() -> None:
    """EVA02-L-14 + Mask2Former, built without memory: ~304 M encoder + head parameters."""
    with torch.device("meta"):
        model = VLTSeg(load_model_config("eva02-l-14"))
    encoder = sum(p.numel() for p in model.encoder.parameters())
    head = sum(p.numel() for p in model.head.parameters())
    assert 300e6 < encoder < 310e6
    assert model.encoder.width == 1024 and model.encoder.patch_size == (14, 14)
    assert 10e6 < head < 30e6
    assert {k.split(".")[0] for k in model.state_dict()} == {"encoder", "neck", "head"}
