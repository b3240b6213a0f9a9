"""The VLTSeg segmentor: CLIP / EVA-CLIP encoder -> simple feature pyramid -> Mask2Former head."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from vltseg_ros.config.model_config import ModelConfig, load_model_config
from vltseg_ros.model.encoder import ClipEncoder
from vltseg_ros.model.mask2former_head import Mask2FormerHead
from vltseg_ros.model.pyramid import SimpleFeaturePyramid


class VLTSeg(nn.Module):
    """Encoder, pyramid and head built from one :class:`ModelConfig`.

    State-dict layout: ``encoder.visual.*`` (open_clip's tower keys), ``neck.fpn1.*`` /
    ``neck.fpn2.*`` and ``head.*`` (MMDetection's Mask2Former key names).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.encoder = ClipEncoder(config.encoder)
        self.neck = SimpleFeaturePyramid(self.encoder.width)
        self.head = Mask2FormerHead(
            [self.encoder.width] * 4, config.class_set.num_classes, config.head
        )

    @property
    def min_input_size(self) -> tuple[int, int]:
        """Smallest (H, W) the network accepts: 2 patches, so the 2x max-pooled level exists."""
        ph, pw = self.encoder.patch_size
        return 2 * ph, 2 * pw

    def features(self, images: Tensor) -> list[Tensor]:
        """Pyramid features (4 levels, high to low resolution) of normalized RGB images."""
        return self.neck(self.encoder(images))

    def forward(self, images: Tensor) -> Tensor:
        """Raw Mask2Former semantic scores at the input resolution.

        Args:
            images: (N, 3, H, W) float, RGB normalized with the config's mean / std.

        Returns:
            (N, num_classes, H, W) float, sum over queries of class probability (no-object
            dropped) times sigmoid mask; not normalized over classes (see Segmenter).
        """
        return self.head.predict_semantic(self.features(images), tuple(images.shape[-2:]))


def build_model(config: ModelConfig | str | Path) -> VLTSeg:
    """Build a model with freshly initialized (random) weights.

    Args:
        config: a :class:`ModelConfig`, a built-in model name (``vltseg_ros.available_models()``)
            or the path of a YAML / JSON model config file.
    """
    if not isinstance(config, ModelConfig):
        config = load_model_config(config)
    return VLTSeg(config)
