"""Training and evaluation data: data set readers in their downloaded layouts, label-id tables
to the 19 Cityscapes train ids, and the reference (VLTSeg) augmentation.

- :mod:`~vltseg_ros.data.factory`: :func:`build_dataset` by name, ``NAME:ROOT`` parsing.
- :mod:`~vltseg_ros.data.dataset`: :class:`SegmentationDataset` and file reading.
- :mod:`~vltseg_ros.data.cityscapes` (Cityscapes, ACDC), :mod:`~vltseg_ros.data.gta5_synthia`
  (GTA5, SYNTHIA), :mod:`~vltseg_ros.data.bdd100k`, :mod:`~vltseg_ros.data.mapillary`: layouts.
- :mod:`~vltseg_ros.data.label_maps`: id -> train id lookup tables and their sources.
- :mod:`~vltseg_ros.data.transforms`: :class:`TrainTransform`, :class:`EvalTransform`.
- :mod:`~vltseg_ros.data.sampler`: :class:`InfiniteKeyedSampler` (reproducible, resumable).
"""

from __future__ import annotations

import importlib
from typing import Any

# Lazy re-exports (PEP 562): ``vltseg_ros.data.scenes``, ``label_maps`` and ``frame_files`` need
# no torch, and the bag tools and the Python 3.12 core tests import them without it. Importing
# the names below loads their module (and torch) on first use only.
_EXPORTS = {
    "Sample": "dataset",
    "SegmentationDataset": "dataset",
    "load_sample": "dataset",
    "read_label_file": "dataset",
    "DATASET_NAMES": "factory",
    "build_dataset": "factory",
    "canonical_name": "factory",
    "parse_dataset_spec": "factory",
    "IGNORE_INDEX": "label_maps",
    "InfiniteKeyedSampler": "sampler",
    "REFERENCE_TRAIN_SIZES": "transforms",
    "EvalTransform": "transforms",
    "PhotoMetricDistortion": "transforms",
    "TrainTransform": "transforms",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Load an exported name's module on first access (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
