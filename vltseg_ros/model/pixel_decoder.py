"""Mask2Former pixel decoder: deformable-attention encoder over the coarse levels plus an FPN.

Computes what MMDetection's ``MSDeformAttnPixelDecoder`` computes, with its state-dict keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vltseg_ros.config.model_config import PixelDecoderConfig
from vltseg_ros.errors import ConfigError
from vltseg_ros.model.deformable_attention import MultiScaleDeformableAttention, SpatialShapes
from vltseg_ros.model.layers import FFN
from vltseg_ros.model.positional_encoding import sine_position_embedding


class ConvNorm(nn.Module):
    """Conv2d -> GroupNorm (-> ReLU): mmcv ``ConvModule`` keys ``conv.*`` and ``gn.*``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        num_groups: int,
        bias: bool,
        relu: bool,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias
        )
        self.gn = nn.GroupNorm(num_groups, out_channels)
        self.act = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) float -> (B, C_out, H, W) float."""
        return self.act(self.gn(self.conv(x)))


class DeformableEncoderLayer(nn.Module):
    """Post-norm layer: ``x = norm0(x + attn(x)); x = norm1(x + ffn(x))``."""

    def __init__(self, embed_dims: int, config: PixelDecoderConfig, num_levels: int) -> None:
        super().__init__()
        self.self_attn = MultiScaleDeformableAttention(
            embed_dims, config.num_heads, num_levels, config.num_points
        )
        self.ffn = FFN(embed_dims, config.ffn_channels)
        self.norms = nn.ModuleList(nn.LayerNorm(embed_dims) for _ in range(2))

    def forward(
        self,
        x: Tensor,
        pos: Tensor,
        reference_points: Tensor,
        spatial_shapes: SpatialShapes,
    ) -> Tensor:
        """x, pos: (B, N, C); reference_points: (B, N, L, 2) -> (B, N, C)."""
        x = self.norms[0](self.self_attn(x, x, pos, reference_points, spatial_shapes))
        return self.norms[1](self.ffn(x))


class DeformableEncoder(nn.Module):
    """Stack of :class:`DeformableEncoderLayer` (keys ``layers.{j}.*``)."""

    def __init__(self, embed_dims: int, config: PixelDecoderConfig, num_levels: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DeformableEncoderLayer(embed_dims, config, num_levels)
            for _ in range(config.num_layers)
        )

    def forward(
        self,
        x: Tensor,
        pos: Tensor,
        reference_points: Tensor,
        spatial_shapes: SpatialShapes,
    ) -> Tensor:
        """x, pos: (B, N, C); reference_points: (B, N, L, 2) -> (B, N, C)."""
        for layer in self.layers:
            x = layer(x, pos, reference_points, spatial_shapes)
        return x


def encoder_reference_points(
    spatial_shapes: SpatialShapes,
    batch: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Normalized pixel centers of every level, the same point repeated for every level.

    Args:
        spatial_shapes: (h, w) per level, L levels.
        batch: number of images B.
        device: device of the result.
        dtype: dtype of the result.

    Returns:
        (B, N, L, 2) with N = sum(h * w): ``((x + 0.5) / w, (y + 0.5) / h)`` of pixel (y, x) of
        its level (row-major order, levels concatenated); a broadcast view over B and L.
    """
    points = []
    for h, w in spatial_shapes:
        ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) / h
        xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) / w
        points.append(
            torch.stack((xs[None, :].expand(h, w), ys[:, None].expand(h, w)), dim=-1).flatten(0, 1)
        )
    flat = torch.cat(points)  # (N, 2)
    return flat[None, :, None, :].expand(batch, -1, len(spatial_shapes), -1)


class MSDeformAttnPixelDecoder(nn.Module):
    """Multi-scale deformable-attention pixel decoder of Mask2Former.

    The ``num_levels`` lowest-resolution inputs are projected (1x1 conv + GroupNorm), refined
    jointly by a deformable-attention encoder, and the remaining high-resolution inputs are
    merged top-down FPN style (lateral 1x1 conv + upsampled coarser output, 3x3 conv + GN +
    ReLU).

    Args:
        in_channels: channels of the 4 inputs, strides (4, 8, 16, 32) in that order.
        feat_channels: channels C of the encoder and FPN.
        out_channels: channels of the mask feature.
        num_levels: number of inputs (lowest resolution first) that pass the encoder, 1-3.
        config: encoder sizes.

    Raises:
        ConfigError: the sizes cannot build a decoder.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        feat_channels: int,
        out_channels: int,
        num_levels: int,
        config: PixelDecoderConfig,
    ) -> None:
        super().__init__()
        num_inputs = len(in_channels)
        if not 1 <= num_levels < num_inputs:
            raise ConfigError(
                f"pixel decoder: num_levels must be in 1..{num_inputs - 1} for {num_inputs} "
                f"inputs, got {num_levels}"
            )
        if feat_channels % 4 or feat_channels % config.num_groups:
            raise ConfigError(
                f"pixel decoder: feat_channels ({feat_channels}) must be divisible by 4 and by "
                f"num_groups ({config.num_groups})"
            )
        self.in_channels = tuple(in_channels)
        self.num_levels = num_levels
        groups = config.num_groups
        # input_convs[i] projects input num_inputs - 1 - i (low to high resolution).
        self.input_convs = nn.ModuleList(
            ConvNorm(in_channels[num_inputs - 1 - i], feat_channels, 1, groups, True, False)
            for i in range(num_levels)
        )
        self.encoder = DeformableEncoder(feat_channels, config, num_levels)
        self.level_encoding = nn.Embedding(num_levels, feat_channels)
        # lateral_convs[i] / output_convs[i] serve input i (MMDetection indexes them by input).
        num_fpn = num_inputs - num_levels
        self.lateral_convs = nn.ModuleList(
            ConvNorm(in_channels[i], feat_channels, 1, groups, False, False)
            for i in range(num_fpn)
        )
        self.output_convs = nn.ModuleList(
            ConvNorm(feat_channels, feat_channels, 3, groups, False, True) for _ in range(num_fpn)
        )
        self.mask_feature = nn.Conv2d(feat_channels, out_channels, kernel_size=1)
        self.init_weights()

    def init_weights(self) -> None:
        """MMDetection's init (xavier / caffe2-xavier convs, N(0, 1) level encoding, xavier-normal
        encoder matrices, then mmcv's deformable-attention init)."""
        for block in self.input_convs:
            nn.init.xavier_uniform_(block.conv.weight)
            nn.init.zeros_(block.conv.bias)
        for conv in [b.conv for b in (*self.lateral_convs, *self.output_convs)]:
            _caffe2_xavier_(conv)
        _caffe2_xavier_(self.mask_feature)
        nn.init.normal_(self.level_encoding.weight, mean=0.0, std=1.0)
        for param in self.encoder.parameters():
            if param.dim() > 1:
                nn.init.xavier_normal_(param)
        for layer in self.encoder.layers:
            layer.self_attn.init_weights()

    def forward(self, feats: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """Decode the 4-level pyramid.

        Args:
            feats: 4 float maps (B, in_channels[i], H_i, W_i) at strides 4, 8, 16, 32.

        Returns:
            mask_feature: (B, out_channels, H_0, W_0), at stride 4.
            multi_scale_features: ``num_levels`` maps (B, feat_channels, h, w), from LOW to HIGH
            resolution (the encoder outputs, then FPN outputs if fewer than 3 levels).

        Raises:
            ValueError: wrong number of maps or channels.
        """
        channels = tuple(feat.shape[1] for feat in feats)
        if channels != self.in_channels:
            raise ValueError(
                f"pixel decoder expects {len(self.in_channels)} maps with channels "
                f"{list(self.in_channels)}, got {list(channels)}"
            )
        batch = feats[0].shape[0]
        num_inputs = len(feats)
        sources, positions, shapes = [], [], []
        for i, conv in enumerate(self.input_convs):
            feat = feats[num_inputs - 1 - i]
            h, w = feat.shape[-2], feat.shape[-1]
            pos = sine_position_embedding(
                batch, h, w, self.level_encoding.embedding_dim // 2, feat.device, feat.dtype
            )
            pos = pos + self.level_encoding.weight[i].view(1, -1, 1, 1)
            sources.append(conv(feat).flatten(2).transpose(1, 2))
            positions.append(pos.flatten(2).transpose(1, 2))
            shapes.append((h, w))
        reference_points = encoder_reference_points(shapes, batch, feats[0].device, feats[0].dtype)
        memory = self.encoder(
            torch.cat(sources, dim=1), torch.cat(positions, dim=1), reference_points, shapes
        )
        outs = [
            level.transpose(1, 2).reshape(batch, -1, h, w)
            for level, (h, w) in zip(
                memory.split([h * w for h, w in shapes], dim=1), shapes, strict=True
            )
        ]
        for i in range(num_inputs - self.num_levels - 1, -1, -1):
            lateral = self.lateral_convs[i](feats[i])
            coarser = F.interpolate(
                outs[-1], size=lateral.shape[-2:], mode="bilinear", align_corners=False
            )
            outs.append(self.output_convs[i](lateral + coarser))
        return self.mask_feature(outs[-1]), outs[: self.num_levels]


def _caffe2_xavier_(module: nn.Conv2d) -> None:
    """Caffe2's xavier fill (kaiming-uniform, a=1, fan_in), zero bias (mmengine's helper)."""
    nn.init.kaiming_uniform_(module.weight, a=1, mode="fan_in", nonlinearity="leaky_relu")
    if module.bias is not None:
        nn.init.zeros_(module.bias)
