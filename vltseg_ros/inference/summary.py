"""Per-class statistics of a segmentation result (what the node's info message reports).

Computed with torch on the device that holds the result (two ``bincount`` passes: a fraction
of a millisecond on a GPU, ~5 ms for 2 MP on a CPU core), before labels and confidence are
copied to the host.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class ResultSummary:
    """Shares and mean confidences of one result's pixels.

    Attributes:
        class_fraction: (C,) float32, share of all pixels labelled with each class.
        class_mean_confidence: (C,) float32, mean confidence of each class's pixels (0 if none).
        unlabeled_fraction: share of pixels labelled ``ignore_index`` (below the threshold).
        mean_confidence: mean winning-class confidence over all pixels.
        anomaly_fraction: share of pixels marked anomalous, or None when no anomaly score was
            computed.
    """

    class_fraction: np.ndarray
    class_mean_confidence: np.ndarray
    unlabeled_fraction: float
    mean_confidence: float
    anomaly_fraction: float | None = None


def summarize(
    labels: Tensor, confidence: Tensor, num_classes: int, anomalous: Tensor | None = None
) -> ResultSummary:
    """Statistics of (H, W) uint8 labels, (H, W) float32 confidence and, optionally, an (H, W)
    bool map of anomalous pixels, on any device.

    Labels >= ``num_classes`` (the ignore index 255) count as unlabeled.
    """
    flat = labels.reshape(-1)
    total = max(flat.numel(), 1)
    counts = torch.bincount(flat, minlength=256).double()
    sums = torch.bincount(flat, weights=confidence.reshape(-1).double(), minlength=256)
    per_class = counts[:num_classes]
    means = torch.where(per_class > 0, sums[:num_classes] / per_class.clamp_min(1), 0.0)
    stats = [counts[num_classes:].sum() / total, sums.sum() / total]
    if anomalous is not None:
        stats.append(anomalous.double().mean())  # its own resolution (the model's)
    values = torch.stack(stats).cpu().tolist()  # one copy to the host
    return ResultSummary(
        class_fraction=(per_class / total).float().cpu().numpy(),
        class_mean_confidence=means.float().cpu().numpy(),
        unlabeled_fraction=values[0],
        mean_confidence=values[1],
        anomaly_fraction=values[2] if anomalous is not None else None,
    )
