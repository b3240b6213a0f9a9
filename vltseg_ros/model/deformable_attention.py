"""Multi-scale deformable attention (Deformable DETR) in plain PyTorch.

:func:`multi_scale_deformable_attn` is the sampling core (bilinear ``grid_sample``, equal to
mmcv's ``multi_scale_deformable_attn_pytorch``); :class:`MultiScaleDeformableAttention` wraps it
with the projections of mmcv's module of the same name and the same state-dict keys. Spatial
shapes are Python ints, so exported graphs keep static shapes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vltseg_ros.errors import ConfigError

SpatialShapes = Sequence[tuple[int, int]]
"""(h, w) of every level, in the order the levels are concatenated in the value sequence."""


def multi_scale_deformable_attn(
    value: Tensor,
    spatial_shapes: SpatialShapes,
    sampling_locations: Tensor,
    attention_weights: Tensor,
) -> Tensor:
    """Attention-weighted sum of values sampled bilinearly at fractional locations.

    A location (x, y) in [0, 1] maps to pixel coordinates (x * w - 0.5, y * h - 0.5) of its
    level (pixel centers at integers); samples outside the map read zeros.

    Args:
        value: (B, sum(h * w), heads, head_dims) float, the levels' pixels flattened row-major
            and concatenated in ``spatial_shapes`` order.
        spatial_shapes: (h, w) per level, L levels.
        sampling_locations: (B, Q, heads, L, P, 2) float, normalized (x, y) per point.
        attention_weights: (B, Q, heads, L, P) float, weight of every sampled point.

    Returns:
        (B, Q, heads * head_dims) float, heads concatenated along the channels.
    """
    batch, _, num_heads, head_dims = value.shape
    num_queries, num_levels, num_points = (
        sampling_locations.shape[1],
        sampling_locations.shape[3],
        sampling_locations.shape[4],
    )
    per_level = value.split([h * w for h, w in spatial_shapes], dim=1)
    # grid_sample wants (N, C, H, W) images and (N, Q, P, 2) grids in [-1, 1], N = B * heads.
    grids = (sampling_locations * 2 - 1).transpose(1, 2).flatten(0, 1)  # (B*heads, Q, L, P, 2)
    samples = []
    for level, (h, w) in enumerate(spatial_shapes):
        image = per_level[level].permute(0, 2, 3, 1).reshape(batch * num_heads, head_dims, h, w)
        samples.append(
            F.grid_sample(
                image,
                grids[:, :, level],
                mode="bilinear",
                padding_mode="zeros",
                align_corners=False,
            )
        )  # (B*heads, head_dims, Q, P)
    sampled = torch.stack(samples, dim=3)  # (B*heads, head_dims, Q, L, P)
    weights = attention_weights.transpose(1, 2).reshape(
        batch * num_heads, 1, num_queries, num_levels, num_points
    )
    out = (sampled * weights).sum(dim=(3, 4))  # (B*heads, head_dims, Q)
    return out.reshape(batch, num_heads * head_dims, num_queries).transpose(1, 2).contiguous()


class MultiScaleDeformableAttention(nn.Module):
    """mmcv's ``MultiScaleDeformableAttention`` (batch first, dropout 0, 2-D reference points).

    Every query predicts, per head, level and point, an offset from its reference point (in
    pixels of that level) and a softmax weight over the L * P points of the head.

    Args:
        embed_dims: channels C.
        num_heads: attention heads (C must be divisible by it).
        num_levels: feature levels L.
        num_points: sampling points P per head and level.

    Raises:
        ConfigError: ``embed_dims`` is not divisible by ``num_heads`` or a count is not positive.
    """

    def __init__(self, embed_dims: int, num_heads: int, num_levels: int, num_points: int) -> None:
        super().__init__()
        if min(embed_dims, num_heads, num_levels, num_points) <= 0:
            raise ConfigError("deformable attention sizes must be positive")
        if embed_dims % num_heads:
            raise ConfigError(
                f"deformable attention: embed_dims ({embed_dims}) must be divisible by "
                f"num_heads ({num_heads})"
            )
        self.num_heads = num_heads
        self.num_levels = num_levels
        self.num_points = num_points
        self.sampling_offsets = nn.Linear(embed_dims, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(embed_dims, num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(embed_dims, embed_dims)
        self.output_proj = nn.Linear(embed_dims, embed_dims)
        self.init_weights()

    def init_weights(self) -> None:
        """mmcv's init: zero offset weights with bias pointing each head in its own direction
        (scaled by point index 1..P), zero attention weights, xavier-uniform projections."""
        nn.init.zeros_(self.sampling_offsets.weight)
        angles = torch.arange(self.num_heads, dtype=torch.float32) * (2 * math.pi / self.num_heads)
        directions = torch.stack((angles.cos(), angles.sin()), dim=-1)
        directions = directions / directions.abs().amax(dim=-1, keepdim=True)  # (heads, 2)
        scale = torch.arange(1, self.num_points + 1, dtype=torch.float32)
        grid = directions[:, None, None, :] * scale[None, None, :, None]  # (heads, 1, P, 2)
        grid = grid.expand(self.num_heads, self.num_levels, self.num_points, 2)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.reshape(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for proj in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(proj.weight)
            nn.init.zeros_(proj.bias)

    def forward(
        self,
        query: Tensor,
        value: Tensor,
        query_pos: Tensor,
        reference_points: Tensor,
        spatial_shapes: SpatialShapes,
    ) -> Tensor:
        """Attend from every query to P points per head around its reference point per level.

        Args:
            query: (B, Q, C) float; also the residual (identity) of the output.
            value: (B, sum(h * w), C) float, levels flattened and concatenated.
            query_pos: (B, Q, C) float, added to ``query`` to predict offsets and weights.
            reference_points: (B, Q, L, 2) float, normalized (x, y) in [0, 1] per level.
            spatial_shapes: (h, w) per level.

        Returns:
            (B, Q, C) float: ``query + output_proj(attention)``.

        Raises:
            ValueError: the level sizes do not add up to the length of ``value``.
        """
        batch, num_queries, _ = query.shape
        if sum(h * w for h, w in spatial_shapes) != value.shape[1]:
            raise ValueError(
                f"spatial_shapes {list(spatial_shapes)} cover "
                f"{sum(h * w for h, w in spatial_shapes)} positions, value has {value.shape[1]}"
            )
        shape = (batch, num_queries, self.num_heads, self.num_levels, self.num_points)
        projected = self.value_proj(value).reshape(batch, value.shape[1], self.num_heads, -1)
        located = query + query_pos
        offsets = self.sampling_offsets(located).reshape(*shape, 2)
        weights = self.attention_weights(located).reshape(*shape[:3], -1).softmax(-1)
        # Offsets are in pixels of each level: divide by that level's (w, h).
        normalizer = torch.tensor(
            [[w, h] for h, w in spatial_shapes], dtype=offsets.dtype, device=offsets.device
        )
        locations = reference_points[:, :, None, :, None, :] + offsets / normalizer[:, None, :]
        attended = multi_scale_deformable_attn(
            projected, spatial_shapes, locations, weights.reshape(shape)
        )
        return query + self.output_proj(attended)
