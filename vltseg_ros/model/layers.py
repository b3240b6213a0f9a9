"""Small building blocks shared by the Mask2Former pixel decoder and transformer decoder."""

from __future__ import annotations

from torch import Tensor, nn


class FFN(nn.Module):
    """Residual two-layer MLP: ``x + Linear(ReLU(Linear(x)))`` (mmcv ``FFN``, no dropout).

    State-dict keys (as mmcv): ``layers.0.0.weight/bias`` (expansion) and
    ``layers.1.weight/bias`` (projection back).

    Args:
        embed_dims: input and output channels C.
        hidden_channels: hidden channels of the MLP.
    """

    def __init__(self, embed_dims: int, hidden_channels: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Sequential(nn.Linear(embed_dims, hidden_channels), nn.ReLU(inplace=True)),
            nn.Linear(hidden_channels, embed_dims),
        )

    def forward(self, x: Tensor) -> Tensor:
        """(..., C) float -> (..., C), the MLP output plus ``x``."""
        return x + self.layers(x)
