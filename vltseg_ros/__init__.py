"""vltseg_ros: domain-generalized semantic segmentation (VLTSeg) for ROS 2.

The main entry points are imported lazily, so ``import vltseg_ros.msg`` (ROS messages) and
light tools do not pay for importing torch:

    from vltseg_ros import Segmenter, build_model, load_model_config, available_models
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Segmenter": "vltseg_ros.inference.predictor",
    "SegmentationResult": "vltseg_ros.inference.predictor",
    "build_model": "vltseg_ros.model.segmentor",
    "load_model_config": "vltseg_ros.config.model_config",
    "available_models": "vltseg_ros.config.model_config",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vltseg_ros' has no attribute {name!r}")
