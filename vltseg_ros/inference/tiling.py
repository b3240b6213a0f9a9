"""Cutting a frame into fixed-size network inputs and stitching their scores back together.

Both modes give every network input the same static shape (good for batching crops of several
frames and cameras, and for ONNX / TensorRT engines):

- slide: MMSegmentation's ``slide_inference`` windows over the (rescaled) frame, padded with
  zeros (the mean color after normalization) when the frame is smaller than a crop; scores of
  overlapping windows are averaged.
- whole: the frame is resized to the network input size and run once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from vltseg_ros.config.model_config import InferenceConfig
from vltseg_ros.inference.preprocess import rescale_size, resize


def slide_windows(
    size: tuple[int, int], crop: tuple[int, int], stride: tuple[int, int]
) -> list[tuple[int, int]]:
    """Top-left corners (y, x) of the crop windows covering an image of ``size`` (H, W).

    Windows start every ``stride`` pixels; the last one in each direction is moved back to end
    at the border, so all windows lie inside the image (which must be at least ``crop``).
    """
    corners = []
    for axis in (0, 1):
        extent, length, step = size[axis], crop[axis], stride[axis]
        count = max(extent - length + step - 1, 0) // step + 1
        corners.append([max(min(i * step + length, extent) - length, 0) for i in range(count)])
    return [(y, x) for y in corners[0] for x in corners[1]]


@dataclass(frozen=True)
class Tiling:
    """The network inputs cut from one frame and how to put their scores back.

    Attributes:
        inputs: (K, 3, h, w) normalized crops (or the single resized frame).
        corners: K window corners (y, x) on the padded canvas; empty in whole mode.
        canvas_size: (H, W) of the padded, rescaled frame the windows cover.
        valid_size: (H, W) of the rescaled frame inside the canvas.
    """

    inputs: Tensor
    corners: tuple[tuple[int, int], ...]
    canvas_size: tuple[int, int]
    valid_size: tuple[int, int]


def tile(image: Tensor, config: InferenceConfig) -> Tiling:
    """Cut a normalized (3, H, W) frame into network inputs per ``config``."""
    if config.mode == "whole":
        inputs = resize(image, config.input_size).unsqueeze(0)
        return Tiling(inputs, (), config.input_size, config.input_size)
    size = tuple(image.shape[-2:])
    if config.test_scale is not None:
        size = rescale_size(size, config.test_scale)
        image = resize(image, size)
    crop = config.crop_size
    canvas = (max(size[0], crop[0]), max(size[1], crop[1]))
    if canvas != size:
        image = F.pad(image, (0, canvas[1] - size[1], 0, canvas[0] - size[0]))
    corners = tuple(slide_windows(canvas, crop, config.stride))
    inputs = torch.stack([image[:, y : y + crop[0], x : x + crop[1]] for y, x in corners])
    return Tiling(inputs, corners, canvas, size)


class ScoreCanvas:
    """Averages the (C, h, w) scores of overlapping windows of one frame."""

    def __init__(self, tiling: Tiling, num_classes: int, device: torch.device) -> None:
        self._tiling = tiling
        self._sum = torch.zeros((num_classes, *tiling.canvas_size), device=device)
        self._count = torch.zeros((1, *tiling.canvas_size), device=device)
        self._next = 0

    def add(self, scores: Tensor) -> None:
        """Add the scores (C, h, w) of the next network input of this frame."""
        if not self._tiling.corners:
            self._sum += scores
            self._count += 1
        else:
            y, x = self._tiling.corners[self._next]
            h, w = scores.shape[-2:]
            self._sum[:, y : y + h, x : x + w] += scores
            self._count[:, y : y + h, x : x + w] += 1
        self._next += 1

    def result(self) -> Tensor:
        """Averaged scores (C, H, W) of the rescaled frame, padding removed."""
        h, w = self._tiling.valid_size
        return (self._sum / self._count.clamp_min(1))[:, :h, :w]
