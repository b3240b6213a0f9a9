"""Multi-scale deformable attention (Deformable DETR) in plain PyTorch.

Two interchangeable sampling cores compute the same bilinear, zero-padded sampling:
:func:`multi_scale_deformable_attn` (``grid_sample``, equal to mmcv's
``multi_scale_deformable_attn_pytorch``; the fastest in PyTorch) and
:func:`multi_scale_deformable_attn_gather` (explicit corner gathers; only Gather, Floor, Where,
Mul, Add and MatMul in an exported graph, no GridSample, which some ONNX toolchains fail to
export and TensorRT has computed wrongly). :class:`MultiScaleDeformableAttention` wraps either
with the projections of mmcv's module of the same name and the same state-dict keys;
:func:`set_sampling` switches every such module of a model. Spatial shapes are Python ints, so
exported graphs keep static shapes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vltseg_ros.errors import ConfigError

SpatialShapes = Sequence[tuple[int, int]]
"""(h, w) of every level, in the order the levels are concatenated in the value sequence."""
Sampling = Literal["grid_sample", "gather"]
"""Sampling core of :class:`MultiScaleDeformableAttention` (same results, different ops)."""
_CORNERS = ((0, 0), (1, 0), (0, 1), (1, 1))
"""(dx, dy) of the 4 bilinear neighbours relative to the floor corner."""


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


def multi_scale_deformable_attn_gather(
    value: Tensor,
    spatial_shapes: SpatialShapes,
    sampling_locations: Tensor,
    attention_weights: Tensor,
) -> Tensor:
    """:func:`multi_scale_deformable_attn` with the 4 bilinear neighbours gathered explicitly.

    Same arguments, semantics and result (bilinear, zero padding, ``align_corners=False``:
    pixel coordinates ``(x * w - 0.5, y * h - 0.5)``). For each of the 4 neighbours, the rows
    ``(b * heads + m) * sum(h * w) + level_start + y * w + x`` of all points are gathered at
    once (a neighbour outside its map reads the level's first pixel with weight 0), and one
    batched matmul sums them per query, weighted by attention weight times bilinear weight.
    An exported graph holds only Gather, Floor, Cast, comparisons, And, Where, Mul, Add,
    MatMul and reshapes: ops TensorRT implements exactly, unlike GridSample. Peak memory is
    about one neighbour's samples, as much as ``grid_sample``'s.

    Args:
        value: (B, sum(h * w), heads, head_dims) float, the levels' pixels flattened row-major
            and concatenated in ``spatial_shapes`` order.
        spatial_shapes: (h, w) per level, L levels.
        sampling_locations: (B, Q, heads, L, P, 2) float, normalized (x, y) per point.
        attention_weights: (B, Q, heads, L, P) float, weight of every sampled point.

    Returns:
        (B, Q, heads * head_dims) float (``value``'s dtype), heads concatenated.
    """
    batch, total, num_heads, head_dims = value.shape
    num_queries, num_levels, num_points = (
        sampling_locations.shape[1],
        sampling_locations.shape[3],
        sampling_locations.shape[4],
    )
    device, dtype = value.device, sampling_locations.dtype
    starts = [0]
    for h, w in spatial_shapes[:-1]:
        starts.append(starts[-1] + h * w)
    # Per-level constants, shaped (L, 1) to broadcast over (B, heads, Q, L, P).
    widths = torch.tensor([w for _, w in spatial_shapes], device=device)[:, None]
    heights = torch.tensor([h for h, _ in spatial_shapes], device=device)[:, None]
    level_starts = torch.tensor(starts, device=device)[:, None]
    # (B, heads, Q, L, P) order, so every (image, head) gathers from its own block of rows.
    locations = sampling_locations.permute(0, 2, 1, 3, 4, 5)
    weights = attention_weights.permute(0, 2, 1, 3, 4)
    x = locations[..., 0] * widths.to(dtype) - 0.5
    y = locations[..., 1] * heights.to(dtype) - 0.5
    x_floor, y_floor = x.floor(), y.floor()
    x_frac, y_frac = x - x_floor, y - y_floor
    x0, y0 = x_floor.to(torch.int64), y_floor.to(torch.int64)
    # Per axis and neighbour (floor, floor + 1): inside the map?, bilinear factor.
    x_inside = ((x0 >= 0) & (x0 < widths), (x0 >= -1) & (x0 < widths - 1))
    y_inside = ((y0 >= 0) & (y0 < heights), (y0 >= -1) & (y0 < heights - 1))
    x_factor, y_factor = (1 - x_frac, x_frac), (1 - y_frac, y_frac)
    rows = value.permute(0, 2, 1, 3).reshape(batch * num_heads * total, head_dims)
    block_starts = torch.arange(batch * num_heads, device=device) * total
    base = block_starts.view(batch, num_heads, 1, 1, 1) + level_starts  # row of pixel (0, 0)
    floor_index = base + y0 * widths + x0  # row of the (floor, floor) neighbour
    out = None
    for dx, dy in _CORNERS:
        inside = x_inside[dx] & y_inside[dy]
        corner_weights = torch.where(inside, weights * x_factor[dx] * y_factor[dy], 0.0)
        index = torch.where(inside, floor_index + (dy * widths + dx), base)  # (B, heads, Q, L, P)
        sampled = rows.index_select(0, index.flatten()).view(
            batch, num_heads, num_queries, num_levels * num_points, head_dims
        )
        term = torch.matmul(
            corner_weights.to(value.dtype).reshape(batch, num_heads, num_queries, 1, -1), sampled
        )  # (B, heads, Q, 1, head_dims)
        out = term if out is None else out + term
    return (
        out.reshape(batch, num_heads, num_queries, head_dims)
        .transpose(1, 2)
        .reshape(batch, num_queries, num_heads * head_dims)
    )


_SAMPLERS: dict[str, Callable[[Tensor, SpatialShapes, Tensor, Tensor], Tensor]] = {
    "grid_sample": multi_scale_deformable_attn,
    "gather": multi_scale_deformable_attn_gather,
}


def check_sampling(mode: str) -> Sampling:
    """``mode`` if it names a sampling core; raises :class:`ConfigError` otherwise."""
    if mode not in _SAMPLERS:
        raise ConfigError(
            f"deformable attention sampling must be one of {list(get_args(Sampling))}, "
            f"got {mode!r}"
        )
    return mode  # type: ignore[return-value]


class MultiScaleDeformableAttention(nn.Module):
    """mmcv's ``MultiScaleDeformableAttention`` (batch first, dropout 0, 2-D reference points).

    Every query predicts, per head, level and point, an offset from its reference point (in
    pixels of that level) and a softmax weight over the L * P points of the head.

    Args:
        embed_dims: channels C.
        num_heads: attention heads (C must be divisible by it).
        num_levels: feature levels L.
        num_points: sampling points P per head and level.
        sampling: the sampling core, ``"grid_sample"`` (default, fastest in PyTorch) or
            ``"gather"`` (exports without GridSample); both compute the same values. Can be
            changed at any time (attribute ``sampling``, or :func:`set_sampling`).

    Raises:
        ConfigError: ``embed_dims`` is not divisible by ``num_heads``, a count is not positive
            or ``sampling`` is unknown.
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int,
        num_levels: int,
        num_points: int,
        sampling: Sampling = "grid_sample",
    ) -> None:
        super().__init__()
        self.sampling = sampling
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

    @property
    def sampling(self) -> Sampling:
        """The sampling core: ``"grid_sample"`` or ``"gather"`` (validated on assignment)."""
        return self._sampling

    @sampling.setter
    def sampling(self, mode: Sampling) -> None:
        self._sampling = check_sampling(mode)

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
        attended = _SAMPLERS[self.sampling](
            projected, spatial_shapes, locations, weights.reshape(shape)
        )
        return query + self.output_proj(attended)


def set_sampling(module: nn.Module, mode: Sampling) -> int:
    """Set the sampling core of every :class:`MultiScaleDeformableAttention` inside ``module``.

    Args:
        module: a model (or any module) holding deformable-attention layers, itself included.
        mode: ``"grid_sample"`` (fastest in PyTorch) or ``"gather"`` (for ONNX / TensorRT).

    Returns:
        How many deformable-attention modules were set (0 when ``module`` holds none).

    Raises:
        ConfigError: ``mode`` is not a known sampling core.
    """
    mode = check_sampling(mode)
    count = 0
    for child in module.modules():
        if isinstance(child, MultiScaleDeformableAttention):
            child.sampling = mode
            count += 1
    return count
