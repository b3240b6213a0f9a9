"""Masked-attention transformer decoder layers of Mask2Former (MMDetection key names).

The head drives the layers one by one, because each layer's attention mask comes from the
prediction after the previous one; :class:`Mask2FormerTransformerDecoder` only holds them.
"""

from __future__ import annotations

from torch import Tensor, nn

from vltseg_ros.config.model_config import TransformerDecoderConfig
from vltseg_ros.errors import ConfigError
from vltseg_ros.model.layers import FFN


class PositionalAttention(nn.Module):
    """mmcv's ``MultiheadAttention`` wrapper: positions added to query and key, residual added.

    ``query + attn(query + query_pos, key + key_pos, key)`` with dropout 0; keys
    ``attn.in_proj_weight``, ``attn.in_proj_bias``, ``attn.out_proj.weight/bias``.
    """

    def __init__(self, embed_dims: int, num_heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(embed_dims, num_heads, batch_first=True)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        query_pos: Tensor,
        key_pos: Tensor,
        attn_mask: Tensor | None = None,
    ) -> Tensor:
        """Attend from queries to keys.

        Args:
            query: (B, Q, C) float, also the residual.
            key: (B, S, C) float, also the value (without position).
            query_pos: (B, Q, C) float.
            key_pos: (B, S, C) float.
            attn_mask: optional (B * heads, Q, S) bool, True = may NOT attend.

        Returns:
            (B, Q, C) float.
        """
        out = self.attn(
            query + query_pos, key + key_pos, key, attn_mask=attn_mask, need_weights=False
        )[0]
        return query + out


class Mask2FormerDecoderLayer(nn.Module):
    """Masked cross-attention -> norm -> self-attention -> norm -> FFN -> norm.

    Args:
        embed_dims: channels C.
        num_heads: attention heads.
        ffn_channels: hidden channels of the FFN.
    """

    def __init__(self, embed_dims: int, num_heads: int, ffn_channels: int) -> None:
        super().__init__()
        self.cross_attn = PositionalAttention(embed_dims, num_heads)
        self.self_attn = PositionalAttention(embed_dims, num_heads)
        self.ffn = FFN(embed_dims, ffn_channels)
        self.norms = nn.ModuleList(nn.LayerNorm(embed_dims) for _ in range(3))

    def forward(
        self,
        query: Tensor,
        memory: Tensor,
        query_pos: Tensor,
        memory_pos: Tensor,
        attn_mask: Tensor,
    ) -> Tensor:
        """Update the queries from one memory level.

        Args:
            query: (B, Q, C) float query features.
            memory: (B, S, C) float flattened pixel-decoder level (keys and values).
            query_pos: (B, Q, C) float query positional embedding.
            memory_pos: (B, S, C) float positional encoding of the memory.
            attn_mask: (B * heads, Q, S) bool, True = masked out; no row may be all True.

        Returns:
            (B, Q, C) float updated queries.
        """
        query = self.norms[0](self.cross_attn(query, memory, query_pos, memory_pos, attn_mask))
        query = self.norms[1](self.self_attn(query, query, query_pos, query_pos))
        return self.norms[2](self.ffn(query))


class Mask2FormerTransformerDecoder(nn.Module):
    """The decoder layers (``layers.{i}.*``) and the shared output norm (``post_norm.*``).

    Args:
        embed_dims: channels C.
        config: layer count, heads and FFN width.

    Raises:
        ConfigError: ``embed_dims`` is not divisible by the number of heads.
    """

    def __init__(self, embed_dims: int, config: TransformerDecoderConfig) -> None:
        super().__init__()
        if config.num_heads <= 0 or embed_dims % config.num_heads:
            raise ConfigError(
                f"transformer decoder: embed_dims ({embed_dims}) must be divisible by "
                f"num_heads ({config.num_heads})"
            )
        self.num_heads = config.num_heads
        self.layers = nn.ModuleList(
            Mask2FormerDecoderLayer(embed_dims, config.num_heads, config.ffn_channels)
            for _ in range(config.num_layers)
        )
        self.post_norm = nn.LayerNorm(embed_dims)

    def init_weights(self) -> None:
        """MMDetection's init: xavier-normal for every matrix, norms and biases as built."""
        for param in self.parameters():
            if param.dim() > 1:
                nn.init.xavier_normal_(param)
