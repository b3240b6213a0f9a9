"""CLIP / EVA-CLIP image towers from open_clip model configs, returning per-block feature maps.

The tower is kept under the attribute ``visual`` with open_clip's own module structure, so the
``visual.*`` weights of an open_clip CLIP or EVA-CLIP checkpoint load into :class:`ClipEncoder`
with ``strict=True``. Inputs of any size serve: the stored absolute position embedding (sized
by the config's ``image_size``) is resampled to the input's patch grid on the fly, as
open_clip's and timm's own input-size APIs do, without changing any checkpoint key or shape.
"""

from __future__ import annotations

import copy
from typing import Any

import open_clip
import timm
import torch
from open_clip.model import _build_vision_tower
from open_clip.transformer import VisionTransformer
from timm.layers import resample_abs_pos_embed
from torch import Tensor, nn

from vltseg_ros.config.model_config import EncoderConfig
from vltseg_ros.errors import ConfigError, UnknownModelError


class TimmTower(nn.Module):
    """open_clip's ``TimmModel`` layout (``trunk``) built with timm's dynamic input size on.

    Only towers whose projection is the trunk's own classifier (``timm_proj: null``, as in
    open_clip's EVA02 configs) are supported; their state dict is exactly ``trunk.*``.
    """

    def __init__(
        self,
        vision_cfg: dict[str, Any],
        embed_dim: int,
        drop_path: float,
        timm_kwargs: dict[str, Any],
    ) -> None:
        super().__init__()
        proj = vision_cfg.get("timm_proj")
        if proj not in (None, "none"):
            raise ConfigError(
                f"timm towers with a separate projection (timm_proj={proj!r}) are not "
                "supported; use an open_clip config with timm_proj: null (e.g. EVA02-*)"
            )
        kwargs = {
            "pretrained": False,
            "num_classes": 0 if proj == "none" else embed_dim,
            "global_pool": vision_cfg.get("timm_pool", "avg"),
            "img_size": vision_cfg.get("image_size", 224),
            "dynamic_img_size": True,
        }
        if drop_path > 0:
            kwargs["drop_path_rate"] = drop_path
        kwargs.update(timm_kwargs)
        try:
            self.trunk = timm.create_model(vision_cfg["timm_model_name"], **kwargs)
        except (RuntimeError, TypeError) as exc:
            raise ConfigError(
                f"cannot build timm tower {vision_cfg['timm_model_name']!r}: {exc}"
            ) from exc


class ClipEncoder(nn.Module):
    """Image tower returning the token features of 4 blocks as maps on the patch grid.

    Attributes:
        width: channels of every returned feature map.
        patch_size: (h, w) pixels per patch; features are at 1/patch_size of the input.
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        config.validate()
        vision_cfg, embed_dim, quick_gelu = _resolve_open_clip_config(config)
        self.out_indices = tuple(config.out_indices)
        if vision_cfg.get("timm_model_name"):
            self.visual: nn.Module = TimmTower(
                vision_cfg, embed_dim, config.drop_path, config.timm_kwargs
            )
            trunk = self.visual.trunk
            self.width = int(trunk.embed_dim)
            self.patch_size = tuple(trunk.patch_embed.patch_size)
            depth = len(trunk.blocks)
        else:
            if config.drop_path > 0:
                raise ConfigError("encoder.drop_path is only supported for timm (EVA02) towers")
            if config.timm_kwargs:
                raise ConfigError("encoder.timm_kwargs apply only to timm (EVA02) towers")
            visual = _build_vision_tower(embed_dim, vision_cfg, quick_gelu=quick_gelu)
            if not isinstance(visual, VisionTransformer):
                raise ConfigError(
                    f"encoder must be a ViT; {config.open_clip_model or 'vision_cfg'} builds "
                    f"{type(visual).__name__}"
                )
            self.visual = visual
            self.width = int(visual.conv1.out_channels)
            self.patch_size = tuple(visual.patch_size)
            self._native_grid = tuple(visual.grid_size)
            depth = len(visual.transformer.resblocks)
        if self.out_indices[-1] >= depth:
            raise ConfigError(
                f"encoder.out_indices {list(self.out_indices)} exceed the tower's {depth} blocks"
            )

    def forward(self, images: Tensor) -> list[Tensor]:
        """Features of the configured blocks.

        Args:
            images: (B, 3, H, W) float, normalized RGB, H and W at least one patch. Pixels
                beyond the last whole patch are ignored, as a stride-p convolution does.

        Returns:
            4 tensors (B, width, H // p, W // p), the tokens after each block (no final norm).
        """
        ph, pw = self.patch_size
        grid = (images.shape[-2] // ph, images.shape[-1] // pw)
        images = images[..., : grid[0] * ph, : grid[1] * pw]
        if isinstance(self.visual, TimmTower):
            return self.visual.trunk.forward_intermediates(
                images,
                indices=list(self.out_indices),
                norm=False,
                stop_early=True,
                output_fmt="NCHW",
                intermediates_only=True,
            )
        return self._vit_intermediates(images, grid)

    def _vit_intermediates(self, images: Tensor, grid: tuple[int, int]) -> list[Tensor]:
        visual = self.visual
        batch = images.shape[0]
        x = visual.conv1(images).flatten(2).transpose(1, 2)
        cls = visual.class_embedding.view(1, 1, -1).expand(batch, -1, -1).to(x.dtype)
        x = torch.cat([cls, x], dim=1)
        pos = visual.positional_embedding.unsqueeze(0)
        if grid != self._native_grid:
            pos = resample_abs_pos_embed(
                pos, new_size=list(grid), old_size=list(self._native_grid), num_prefix_tokens=1
            )
        x = visual.ln_pre(visual.patch_dropout(x + pos.to(x.dtype)))
        _, blocks = visual.transformer.forward_intermediates(
            x, indices=list(self.out_indices), stop_early=True
        )
        return [
            t[:, 1:].transpose(1, 2).reshape(batch, self.width, grid[0], grid[1]) for t in blocks
        ]


def _resolve_open_clip_config(config: EncoderConfig) -> tuple[dict[str, Any], int, bool]:
    """The vision config, CLIP embedding dim and QuickGELU flag open_clip would use."""
    vision_cfg: dict[str, Any] = {}
    embed_dim = config.embed_dim
    quick_gelu = config.quick_gelu
    if config.open_clip_model is not None:
        model_cfg = open_clip.get_model_config(config.open_clip_model)
        if model_cfg is None:
            raise UnknownModelError(
                f"open_clip has no model config {config.open_clip_model!r} "
                "(see open_clip.list_models())"
            )
        vision_cfg = copy.deepcopy(model_cfg["vision_cfg"])
        embed_dim = embed_dim or model_cfg["embed_dim"]
        quick_gelu = quick_gelu or bool(model_cfg.get("quick_gelu", False))
    vision_cfg.update(copy.deepcopy(config.vision_cfg))
    if embed_dim is None:
        raise ConfigError("encoder.embed_dim is required when open_clip_model is not given")
    return vision_cfg, int(embed_dim), quick_gelu
