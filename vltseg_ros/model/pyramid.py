"""The simple feature pyramid that turns 4 same-resolution ViT feature maps into 4 scales.

As in the VLTSeg reference (EVA02 backbone's ``fpn1``-``fpn4``): the first map is upsampled 4x
by two stride-2 transposed convolutions with BatchNorm + GELU between, the second 2x by one
transposed convolution, the third is kept, the fourth max-pooled 2x. With patch size p the
outputs are at strides p/4, p/2, p and 2p (4, 8, 16, 32 for p = 16).
"""

from __future__ import annotations

from torch import Tensor, nn


class SimpleFeaturePyramid(nn.Module):
    """4 maps (B, C, h, w) -> (B, C, 4h, 4w), (B, C, 2h, 2w), (B, C, h, w), (B, C, h//2, w//2)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fpn1 = nn.Sequential(
            nn.ConvTranspose2d(channels, channels, kernel_size=2, stride=2),
            nn.BatchNorm2d(channels),
            nn.GELU(),
            nn.ConvTranspose2d(channels, channels, kernel_size=2, stride=2),
        )
        self.fpn2 = nn.Sequential(nn.ConvTranspose2d(channels, channels, kernel_size=2, stride=2))
        self.fpn3 = nn.Identity()
        self.fpn4 = nn.MaxPool2d(kernel_size=2, stride=2)

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        """Apply one branch per level; ``features`` are the encoder's 4 block outputs."""
        branches = (self.fpn1, self.fpn2, self.fpn3, self.fpn4)
        return [branch(x) for branch, x in zip(branches, features, strict=True)]
