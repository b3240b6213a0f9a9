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

from vltseg_ros.data.dataset import Sample, SegmentationDataset, load_sample, read_label_file
from vltseg_ros.data.factory import (
    DATASET_NAMES,
    build_dataset,
    canonical_name,
    parse_dataset_spec,
)
from vltseg_ros.data.label_maps import IGNORE_INDEX
from vltseg_ros.data.sampler import InfiniteKeyedSampler
from vltseg_ros.data.transforms import (
    REFERENCE_TRAIN_SIZES,
    EvalTransform,
    PhotoMetricDistortion,
    TrainTransform,
)

__all__ = [
    "DATASET_NAMES",
    "IGNORE_INDEX",
    "REFERENCE_TRAIN_SIZES",
    "EvalTransform",
    "InfiniteKeyedSampler",
    "PhotoMetricDistortion",
    "Sample",
    "SegmentationDataset",
    "TrainTransform",
    "build_dataset",
    "canonical_name",
    "load_sample",
    "parse_dataset_spec",
    "read_label_file",
]
