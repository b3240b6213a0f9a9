"""Sliding windows and rescaling follow MMSegmentation's rules; stitching averages overlaps."""

from __future__ import annotations

import pytest
import torch

from vltseg_ros.config.model_config import InferenceConfig
from vltseg_ros.inference.preprocess import rescale_size
from vltseg_ros.inference.tiling import ScoreCanvas, slide_windows, tile


def test_reference_gta_slide_on_a_cityscapes_frame() -> None:
    # 1024x2048 frame, 512 crops, stride 426: 3 x 5 windows, the last flush with the border.
    corners = slide_windows((1024, 2048), (512, 512), (426, 426))
    assert sorted({y for y, _ in corners}) == [0, 426, 512]
    assert sorted({x for _, x in corners}) == [0, 426, 852, 1278, 1536]
    assert len(corners) == 15


def test_reference_cityscapes_slide() -> None:
    corners = slide_windows((1024, 2048), (1024, 1024), (768, 768))
    assert corners == [(0, 0), (0, 768), (0, 1024)]


@pytest.mark.parametrize(
    ("size", "crop", "stride"),
    [
        ((70, 133), (64, 64), (48, 48)),
        ((64, 64), (64, 64), (48, 48)),
        ((100, 65), (32, 64), (7, 1)),
    ],
)
def test_windows_cover_every_pixel_and_stay_inside(size, crop, stride) -> None:
    covered = torch.zeros(size, dtype=torch.int32)
    for y, x in slide_windows(size, crop, stride):
        assert 0 <= y <= size[0] - crop[0] and 0 <= x <= size[1] - crop[1]
        covered[y : y + crop[0], x : x + crop[1]] += 1
    assert covered.min() >= 1


@pytest.mark.parametrize(
    ("size", "scale", "expected"),
    [
        ((1024, 2048), (1024, 512), (512, 1024)),  # Cityscapes frame, GTA5 test scale
        ((1080, 1920), (1024, 512), (512, 910)),  # short edge bound wins
        ((1080, 1920), (1920, 1080), (1080, 1920)),  # ACDC at its reference scale: unchanged
        ((300, 400), (1024, 512), (512, 683)),  # upscaling as well
    ],
)
def test_rescale_size_matches_mmseg_keep_ratio(size, scale, expected) -> None:
    assert rescale_size(size, scale) == expected


def test_tile_pads_small_frames_and_stitches_back() -> None:
    config = InferenceConfig(mode="slide", crop_size=(32, 32), stride=(24, 24))
    image = torch.randn(3, 20, 50)
    tiling = tile(image, config)
    assert tiling.inputs.shape == (2, 3, 32, 32)
    assert tiling.canvas_size == (32, 50) and tiling.valid_size == (20, 50)
    torch.testing.assert_close(tiling.inputs[0, :, :20, :32], image[:, :, :32])
    assert torch.all(tiling.inputs[:, :, 20:] == 0)  # zero = mean color after normalization

    canvas = ScoreCanvas(tiling, num_classes=2, device=torch.device("cpu"))
    canvas.add(torch.ones(2, 32, 32))
    canvas.add(torch.full((2, 32, 32), 3.0))
    result = canvas.result()
    assert result.shape == (2, 20, 50)
    assert torch.all(result[:, :, :18] == 1)  # only window 0 (x 0-31)
    assert torch.all(result[:, :, 18:32] == 2)  # both windows: mean of 1 and 3
    assert torch.all(result[:, :, 32:] == 3)  # only window 1 (x 18-49)


def test_tile_whole_mode_resizes_once() -> None:
    config = InferenceConfig(mode="whole", whole_size=(32, 64))
    tiling = tile(torch.randn(3, 50, 70), config)
    assert tiling.inputs.shape == (1, 3, 32, 64) and tiling.corners == ()


def test_tile_applies_test_scale_before_sliding() -> None:
    config = InferenceConfig(crop_size=(32, 32), stride=(32, 32), test_scale=(64, 32))
    tiling = tile(torch.randn(3, 100, 200), config)
    assert tiling.valid_size == (32, 64)
    assert tiling.inputs.shape == (2, 3, 32, 32)
