"""Training and evaluation data of a run: the augmented source stream and the target sets.

The source stream is endless and keyed (:class:`InfiniteKeyedSampler`): draw n of the run always
gets the same image and augmentation, so a resumed run (sampler ``start`` = iterations done x
global batch) continues exactly. Under data parallelism every process reads its slice of every
global batch. The DataLoader's own seed comes from a private generator, so creating it draws
nothing from torch's global RNG (which the training state saves and restores).
"""

from __future__ import annotations

import logging

import torch
from torch.utils.data import DataLoader

from vltseg_ros.config.model_config import Normalization
from vltseg_ros.data.dataset import SegmentationDataset
from vltseg_ros.data.factory import build_dataset, parse_dataset_spec
from vltseg_ros.data.sampler import InfiniteKeyedSampler
from vltseg_ros.data.transforms import PhotoMetricDistortion, TrainTransform
from vltseg_ros.errors import ConfigError
from vltseg_ros.parallel.distributed import DistributedContext
from vltseg_ros.training.run_config import RunConfig

LOG = logging.getLogger(__name__)


def local_batch_size(run: RunConfig, context: DistributedContext) -> int:
    """Images per process and iteration: the global batch split evenly.

    Raises:
        ConfigError: the global batch is not divisible by the number of processes.
    """
    if run.train.batch_size % context.world_size:
        raise ConfigError(
            f"train.batch_size {run.train.batch_size} is not divisible by the "
            f"{context.world_size} processes"
        )
    return run.train.batch_size // context.world_size


def build_source_dataset(run: RunConfig, normalization: Normalization) -> SegmentationDataset:
    """The source split with the reference augmentation (resize ``run.scale``, random
    ``run.crop_size`` crop, flip, photometric distortion, normalization).

    Raises:
        DatasetError: the data set is missing or malformed.
    """
    name, root = parse_dataset_spec(run.data.source)
    transform = TrainTransform(
        run.scale,
        run.crop_size,
        normalization,
        cat_max_ratio=run.data.cat_max_ratio,
        flip_prob=run.data.flip_prob,
        photometric=PhotoMetricDistortion() if run.data.photometric else None,
        seed=run.train.seed,
    )
    return build_dataset(name, root, run.data.split, transform=transform)


def build_train_loader(
    dataset: SegmentationDataset,
    run: RunConfig,
    context: DistributedContext,
    start_iteration: int = 0,
) -> DataLoader:
    """Endless loader of this process's batches, beginning after ``start_iteration`` iterations.

    Batches are dicts: ``image`` (b, 3, H, W) float32 normalized RGB, ``labels`` (b, H, W) int64
    train ids (255 = ignore), ``name`` and ``domain`` lists; b = :func:`local_batch_size`.
    """
    batch = local_batch_size(run, context)
    sampler = InfiniteKeyedSampler(
        len(dataset),
        seed=run.train.seed,
        start=start_iteration * run.train.batch_size,
        rank=context.rank,
        world_size=context.world_size,
        chunk=batch,
    )
    workers = run.data.num_workers
    return DataLoader(
        dataset,
        batch_size=batch,
        sampler=sampler,
        num_workers=workers,
        pin_memory=context.device.type == "cuda",
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(run.train.seed),
    )


def build_target_datasets(run: RunConfig) -> list[tuple[str, SegmentationDataset]]:
    """(``NAME:ROOT`` spec, raw data set of ``data.target_split``) per evaluation target.

    Raises:
        DatasetError: a target is missing or malformed (raised before training starts).
    """
    targets = []
    for spec in run.data.targets:
        name, root = parse_dataset_spec(spec)
        targets.append((spec, build_dataset(name, root, run.data.target_split)))
    return targets
