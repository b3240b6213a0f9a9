"""Mask2Former head: pixel decoder, masked-attention decoder and semantic inference.

Computes what MMDetection 3.x's ``Mask2FormerHead`` (with MMSegmentation's semantic ``predict``)
computes; its state-dict keys are MMDetection's without the ``decode_head.`` prefix. Shapes are
Python ints throughout and the masked attention has no data-dependent control flow, so the head
exports to ONNX for a static input size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vltseg_ros.config.model_config import HeadConfig
from vltseg_ros.errors import ConfigError
from vltseg_ros.model.pixel_decoder import MSDeformAttnPixelDecoder
from vltseg_ros.model.positional_encoding import sine_position_embedding
from vltseg_ros.model.transformer_decoder import Mask2FormerTransformerDecoder


class Mask2FormerHead(nn.Module):
    """Mask2Former head for semantic segmentation.

    Args:
        in_channels: channels of the 4 pyramid levels, strides (4, 8, 16, 32).
        num_classes: number of classes K (a no-object class is added internally).
        config: head sizes.

    Raises:
        ConfigError: invalid sizes.
    """

    def __init__(self, in_channels: Sequence[int], num_classes: int, config: HeadConfig) -> None:
        super().__init__()
        config.validate()
        if len(in_channels) != 4:
            raise ConfigError(f"head needs 4 input levels, got in_channels {list(in_channels)}")
        if num_classes < 1:
            raise ConfigError(f"head needs at least one class, got {num_classes}")
        channels = config.feat_channels
        self.num_classes = num_classes
        self.num_levels = config.num_levels
        self.pixel_decoder = MSDeformAttnPixelDecoder(
            in_channels, channels, config.out_channels, config.num_levels, config.pixel_decoder
        )
        self.transformer_decoder = Mask2FormerTransformerDecoder(
            channels, config.transformer_decoder
        )
        self.query_embed = nn.Embedding(config.num_queries, channels)
        self.query_feat = nn.Embedding(config.num_queries, channels)
        self.level_embed = nn.Embedding(config.num_levels, channels)
        self.cls_embed = nn.Linear(channels, num_classes + 1)
        self.mask_embed = nn.Sequential(
            nn.Linear(channels, channels),
            nn.ReLU(inplace=True),
            nn.Linear(channels, channels),
            nn.ReLU(inplace=True),
            nn.Linear(channels, config.out_channels),
        )
        self.init_weights()

    def init_weights(self) -> None:
        """MMDetection's init of the pixel and transformer decoders (embeddings and prediction
        layers keep PyTorch's defaults, as there)."""
        self.pixel_decoder.init_weights()
        self.transformer_decoder.init_weights()

    def forward(self, feats: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Predictions after the query initialization and after every decoder layer.

        Args:
            feats: 4 float maps (B, in_channels[i], H / s, W / s) for strides s = 4, 8, 16, 32.

        Returns:
            cls_logits: num_layers + 1 tensors (B, Q, num_classes + 1), last column no-object.
            mask_logits: num_layers + 1 tensors (B, Q, H / 4, W / 4).

        Raises:
            ValueError: ``feats`` are not 4 maps with the configured channels.
        """
        mask_features, memories = self.pixel_decoder(feats)
        batch = mask_features.shape[0]
        sizes = [(m.shape[-2], m.shape[-1]) for m in memories]
        inputs, positions = [], []
        for level, memory in enumerate(memories):
            # MMDetection's decoder input projections are identities here (decoder width =
            # feat_channels), so the memory enters the decoder as it is.
            inputs.append(memory.flatten(2).transpose(1, 2) + self.level_embed.weight[level])
            pos = sine_position_embedding(
                batch,
                *sizes[level],
                self.level_embed.embedding_dim // 2,
                memory.device,
                memory.dtype,
            )
            positions.append(pos.flatten(2).transpose(1, 2))
        query = self.query_feat.weight.unsqueeze(0).expand(batch, -1, -1)
        query_pos = self.query_embed.weight.unsqueeze(0).expand(batch, -1, -1)

        cls_logits, mask_logits = self._predict(query, mask_features)
        cls_list, mask_list = [cls_logits], [mask_logits]
        for i, layer in enumerate(self.transformer_decoder.layers):
            level = i % self.num_levels
            attn_mask = self._attention_mask(mask_logits, sizes[level])
            query = layer(query, inputs[level], query_pos, positions[level], attn_mask)
            cls_logits, mask_logits = self._predict(query, mask_features)
            cls_list.append(cls_logits)
            mask_list.append(mask_logits)
        return cls_list, mask_list

    def predict_semantic(self, feats: Sequence[Tensor], output_size: tuple[int, int]) -> Tensor:
        """MMSegmentation's semantic inference from the last decoder layer.

        Mask logits are upsampled (bilinear, align_corners=False) to ``output_size`` and passed
        through a sigmoid; class logits go through a softmax with the no-object column dropped;
        the score of class c at a pixel is the sum over queries of class prob x mask prob.

        Args:
            feats: 4 float maps as in :meth:`forward`.
            output_size: (H_out, W_out) of the score map.

        Returns:
            (B, num_classes, H_out, W_out) float raw scores in [0, Q] (not normalized per pixel;
            per pixel they sum to at most Q).
        """
        cls_logits, mask_logits = self(feats)
        masks = F.interpolate(
            mask_logits[-1], size=output_size, mode="bilinear", align_corners=False
        ).sigmoid()
        probs = cls_logits[-1].softmax(dim=-1)[..., :-1]
        return torch.einsum("bqc,bqhw->bchw", probs, masks)

    def _predict(self, query: Tensor, mask_features: Tensor) -> tuple[Tensor, Tensor]:
        """(B, Q, C) queries, (B, C_out, h, w) mask features -> class (B, Q, K + 1) and mask
        (B, Q, h, w) logits, after the decoder's post norm."""
        query = self.transformer_decoder.post_norm(query)
        mask_logits = torch.einsum("bqc,bchw->bqhw", self.mask_embed(query), mask_features)
        return self.cls_embed(query), mask_logits

    def _attention_mask(self, mask_logits: Tensor, size: tuple[int, int]) -> Tensor:
        """Masked-attention mask for the next layer.

        Args:
            mask_logits: (B, Q, h, w) float logits of the previous prediction.
            size: (h', w') of the memory level the next layer attends to.

        Returns:
            (B * heads, Q, h' * w') bool, True where sigmoid(mask) < 0.5 (may NOT attend), with
            rows that would be all True cleared (attend everywhere); no gradient.
        """
        resized = F.interpolate(mask_logits, size=size, mode="bilinear", align_corners=False)
        masked = resized.flatten(2).sigmoid() < 0.5
        masked = masked & ~masked.all(dim=-1, keepdim=True)
        batch, num_queries, length = masked.shape
        heads = self.transformer_decoder.num_heads
        masked = masked.unsqueeze(1).expand(batch, heads, num_queries, length)
        return masked.reshape(batch * heads, num_queries, length).detach()
