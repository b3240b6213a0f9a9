"""Conversion of other projects' checkpoints into this project's safetensors format.

- :mod:`vltseg_ros.convert.safe_load`: read MMSegmentation / MMEngine ``.pth`` files without
  running code (metadata objects become inert stand-ins).
- :mod:`vltseg_ros.convert.vltseg_mmseg`: the key mapping of the VLTSeg reference checkpoints.
- :mod:`vltseg_ros.convert.pipeline`: read, map, write and verify (``vltseg convert-checkpoint``).
"""

from __future__ import annotations

from vltseg_ros.convert.pipeline import (
    ConversionResult,
    convert_vltseg_checkpoint,
    guess_training_domain,
    infer_model_name,
)
from vltseg_ros.convert.safe_load import load_with_inert_metadata
from vltseg_ros.convert.vltseg_mmseg import convert_state_dict, map_keys

SOURCES = ("vltseg-mmseg",)
"""Checkpoint kinds ``vltseg convert-checkpoint --source`` accepts."""

__all__ = [
    "SOURCES",
    "ConversionResult",
    "convert_state_dict",
    "convert_vltseg_checkpoint",
    "guess_training_domain",
    "infer_model_name",
    "load_with_inert_metadata",
    "map_keys",
]
