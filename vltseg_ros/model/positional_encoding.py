"""Fixed 2-D sine / cosine positional encoding (DETR style, as MMDetection's normalized variant).

The encoding is computed from Python-int sizes only, so an exported graph holds it as a
constant for a static input size.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

_EPS = 1e-6


def sine_position_embedding(
    batch: int,
    height: int,
    width: int,
    num_feats: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    temperature: float = 10000.0,
) -> Tensor:
    """Normalized sine positional encoding of an unpadded ``height`` x ``width`` feature map.

    Row positions 1..H and column positions 1..W are normalized to (0, 2*pi] by dividing by
    ``(last + 1e-6)`` and multiplying by 2*pi. Channel ``2k`` holds ``sin(p / t_k)`` and channel
    ``2k + 1`` holds ``cos(p / t_k)`` with ``t_k = temperature ** (2k / num_feats)``; the first
    ``num_feats`` channels encode the row (y), the last ``num_feats`` the column (x). This equals
    MMDetection's ``SinePositionalEncoding(num_feats, normalize=True)`` for an all-False mask.

    Args:
        batch: number of images B.
        height: feature-map height H.
        width: feature-map width W.
        num_feats: channels per axis (even).
        device: device of the result.
        dtype: dtype of the result (computed in float32, then cast).
        temperature: frequency base.

    Returns:
        (B, 2 * num_feats, H, W) tensor of values in [-1, 1]; a broadcast view along the batch,
        so do not write into it in place.

    Raises:
        ValueError: ``num_feats`` is not a positive even number or a size is not positive.
    """
    if num_feats <= 0 or num_feats % 2:
        raise ValueError(f"num_feats must be a positive even number, got {num_feats}")
    if batch <= 0 or height <= 0 or width <= 0:  # not min(): keeps a symbolic batch free
        raise ValueError(f"batch, height and width must be positive, got {batch, height, width}")
    index = torch.arange(num_feats, dtype=torch.float32, device=device)
    periods = temperature ** (2 * torch.div(index, 2, rounding_mode="floor") / num_feats)
    pos_y = _encode_axis(height, periods)  # (H, F)
    pos_x = _encode_axis(width, periods)  # (W, F)
    grid = torch.cat(
        (
            pos_y[:, None, :].expand(height, width, num_feats),
            pos_x[None, :, :].expand(height, width, num_feats),
        ),
        dim=-1,
    )
    return grid.permute(2, 0, 1).to(dtype).unsqueeze(0).expand(batch, -1, -1, -1)


def _encode_axis(length: int, periods: Tensor) -> Tensor:
    """(length, F) interleaved sin / cos of the normalized 1-based positions along one axis."""
    positions = torch.arange(1, length + 1, dtype=torch.float32, device=periods.device)
    positions = positions / (length + _EPS) * (2 * math.pi)
    phases = positions[:, None] / periods  # (length, F)
    return torch.stack((phases[:, 0::2].sin(), phases[:, 1::2].cos()), dim=-1).flatten(1)
