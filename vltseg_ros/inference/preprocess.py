"""Image validation and conversion from uint8 camera frames to normalized network tensors."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vltseg_ros.config.model_config import Normalization
from vltseg_ros.errors import InvalidImageError

ColorOrder = Literal["rgb", "bgr"]


def validate_image(image: object, min_size: tuple[int, int]) -> np.ndarray:
    """Check that ``image`` is a uint8 (H, W, 3) array of at least ``min_size`` (H, W).

    Returns the image unchanged (not copied). Raises :class:`InvalidImageError` otherwise,
    naming what is wrong.
    """
    if not isinstance(image, np.ndarray):
        raise InvalidImageError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InvalidImageError(
            f"image must be uint8 (0-255), got {image.dtype}; convert 16-bit or float images "
            "to 8 bits first"
        )
    if image.ndim != 3 or image.shape[2] != 3:
        raise InvalidImageError(
            f"image must have shape (H, W, 3) (RGB or BGR), got {image.shape}; "
            "convert mono, Bayer or RGBA frames to 3 channels first"
        )
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        raise InvalidImageError(f"image is empty: shape {image.shape}")
    if height < min_size[0] or width < min_size[1]:
        raise InvalidImageError(
            f"image {height}x{width} is smaller than the model's patch size "
            f"{min_size[0]}x{min_size[1]}"
        )
    return image


def to_normalized_tensor(
    image: np.ndarray, color_order: ColorOrder, norm: Normalization, device: torch.device
) -> Tensor:
    """uint8 (H, W, 3) in ``color_order`` -> float32 (3, H, W) normalized RGB on ``device``.

    The uint8 frame is uploaded first and converted on the device (4x less host-to-device
    traffic than uploading floats).
    """
    if color_order not in ("rgb", "bgr"):
        raise InvalidImageError(f"color_order must be 'rgb' or 'bgr', got {color_order!r}")
    tensor = torch.from_numpy(np.ascontiguousarray(image)).to(device, non_blocking=True)
    tensor = tensor.permute(2, 0, 1).float()
    if color_order == "bgr":
        tensor = tensor.flip(0)
    mean = torch.tensor(norm.mean, device=device).view(3, 1, 1)
    std = torch.tensor(norm.std, device=device).view(3, 1, 1)
    return (tensor - mean) / std


def rescale_size(size: tuple[int, int], scale: tuple[int, int]) -> tuple[int, int]:
    """(H, W) after a keep-ratio rescale to fit ``scale`` = (long, short) edge bounds.

    Same rule as MMSegmentation's ``Resize(scale, keep_ratio=True)``: the factor is the largest
    that keeps the long edge <= max(scale) and the short edge <= min(scale).
    """
    height, width = size
    factor = min(max(scale) / max(height, width), min(scale) / min(height, width))
    return int(height * factor + 0.5), int(width * factor + 0.5)


def resize(tensor: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize (align_corners=False) of a (C, H, W) or (N, C, H, W) tensor."""
    if tuple(tensor.shape[-2:]) == tuple(size):
        return tensor
    batched = tensor if tensor.dim() == 4 else tensor.unsqueeze(0)
    out = F.interpolate(batched, size=size, mode="bilinear", align_corners=False)
    return out if tensor.dim() == 4 else out.squeeze(0)


def resize_nearest(tensor: Tensor, size: tuple[int, int]) -> Tensor:
    """Nearest-neighbour resize of an (H, W) map of any dtype (labels, confidence)."""
    if tuple(tensor.shape[-2:]) == tuple(size):
        return tensor
    out = F.interpolate(tensor[None, None].float(), size=size, mode="nearest-exact")
    return out[0, 0].to(tensor.dtype)
