"""The per-pixel anomaly scores and each one's default threshold: the one table that the
Python API, the CLIs, the node and ``vltseg calibrate`` read.

A pixel whose score exceeds the threshold counts as anomalous (``anomaly_fraction``, the
domain-shift monitor). The scores live on different scales (:mod:`vltseg_ros.inference.scores`),
so a threshold only means something for its method: where none is given, the method's default
below applies. Defaults are starting points; tune them per model (``vltseg calibrate`` and
``vltseg evaluate --anomaly`` measure what a threshold does). Nothing here imports torch.
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Literal

from vltseg_ros.errors import ConfigError

AnomalyMethod = Literal["rba", "max_logit", "max_probability", "entropy"]
ANOMALY_METHODS: tuple[AnomalyMethod, ...] = ("rba", "max_logit", "max_probability", "entropy")
DEFAULT_THRESHOLDS: MappingProxyType[str, float] = MappingProxyType(
    {
        "rba": -0.5,  # in [-C, 0]; about -0.76 where one class owns the pixel, 0 where none
        "max_logit": -0.5,  # in [-num_queries, 0]; about -1 where one query claims the pixel
        "max_probability": 0.5,  # 1 - max probability, in [0, 1 - 1/C]
        "entropy": 0.5,  # normalized, in [0, 1]
    }
)
"""The default threshold of each method (a score above it = an anomalous pixel)."""


def check_method(method: str) -> AnomalyMethod:
    """``method`` if it is one of :data:`ANOMALY_METHODS`.

    Raises:
        ConfigError: any other value.
    """
    if method not in ANOMALY_METHODS:
        raise ConfigError(
            f"anomaly method must be one of {', '.join(ANOMALY_METHODS)}, got {method!r}"
        )
    return method  # type: ignore[return-value]


def resolve_threshold(method: str, threshold: float | None) -> float:
    """``threshold``, or ``method``'s default from :data:`DEFAULT_THRESHOLDS` when it is None
    or NaN (how a node parameter or a flag says "not given": both must hold a number).

    Raises:
        ConfigError: an unknown method.
    """
    if threshold is None or math.isnan(threshold):
        return DEFAULT_THRESHOLDS[check_method(method)]
    check_method(method)
    return float(threshold)


def defaults_text() -> str:
    """``rba -0.5, max_logit -0.5, max_probability 0.5, entropy 0.5``, for help texts."""
    return ", ".join(f"{name} {value:g}" for name, value in DEFAULT_THRESHOLDS.items())
