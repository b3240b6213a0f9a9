"""Several bags in one ``bag-eval`` run (a fleet), and the shares of a torchrun launch.

Bags: each path given is a rosbag2 (a folder with a ``metadata.yaml``, or a ``.mcap`` /
``.db3`` file) or a folder of bags (its subfolders with a ``metadata.yaml`` and its ``.mcap`` /
``.db3`` files, sorted by name). A bag's name is its folder's name or its file's stem; names
must differ (they name the per-bag reports and written bags).

Shares (N processes, this one of rank r; one process: N = 1, r = 0):

- at least N bags: whole bags, bag i (in the order found) on rank i % N;
- fewer bags: every bag's frames are split, frame k of each bag on rank k % N.

Rank 0 gathers every share's counts (:class:`~vltseg_ros.bag.evaluate.BagScores`), adds up
each bag's shares in rank order and the bags in bag order into the total; a bag's counts, and
so the total's, are the same whatever N (:mod:`vltseg_ros.evaluation.sharding` says how
exactly).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vltseg_ros.bag.evaluate import BagEvalOptions, BagScores, Progress, score_bag
from vltseg_ros.errors import BagError
from vltseg_ros.evaluation.report import EvaluationReport
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.parallel.distributed import DistributedContext, gather_to_main

LOG = logging.getLogger(__name__)
BAG_SUFFIXES = (".mcap", ".db3")
"""Suffixes of single-file bags."""


def is_bag(path: Path) -> bool:
    """True for a folder with a ``metadata.yaml`` and a ``.mcap`` / ``.db3`` file."""
    path = Path(path)
    if path.is_dir():
        return (path / "metadata.yaml").is_file()
    return path.is_file() and path.suffix.lower() in BAG_SUFFIXES


def find_bags(paths: Sequence[Path]) -> list[Path]:
    """The bags of ``paths`` (module docstring), in the order given, a folder's sorted.

    Raises:
        BagError: a path that does not exist, a folder that is neither a bag nor holds one, a
            bag given twice, or two bags of the same name.
    """
    bags: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise BagError(f"bag {path} does not exist")
        if is_bag(path) or path.is_file():  # a file of another kind: its reader says why
            bags.append(path)
            continue
        inside = sorted(p for p in path.iterdir() if is_bag(p))
        if not inside:
            raise BagError(
                f"{path} is not a rosbag2: expected a bag directory with metadata.yaml, or a "
                ".mcap / .db3 file, or a folder of such bags, but it holds none"
            )
        bags += inside
    _check_names(bags)
    return bags


def bag_name(bag: Path) -> str:
    """The name of a bag's reports: its folder's name, or its file's stem."""
    bag = Path(bag)
    return bag.stem if bag.is_file() else bag.name


def _check_names(bags: Sequence[Path]) -> None:
    seen: dict[str, Path] = {}
    for bag in bags:
        other = seen.setdefault(bag_name(bag), bag)
        if other is bag:
            continue
        what = "is given twice" if other.resolve() == bag.resolve() else f"and {other}"
        raise BagError(
            f"bag {bag} {what}: the bags of one run need different names (their reports and "
            "written bags are named after them)"
        )


def shares(count: int, context: DistributedContext) -> list[tuple[int, tuple[int, int]]]:
    """(bag index, share of its frames for :func:`score_bag`) of what this process segments
    among ``count`` bags (module docstring)."""
    rank, world = context.rank, context.world_size
    if count >= world:
        return [(i, (0, 1)) for i in range(rank, count, world)]
    return [(i, (rank, world)) for i in range(count)]


def splits_bags(count: int, context: DistributedContext) -> bool:
    """True when the processes split the bags' frames (fewer bags than processes)."""
    return count < context.world_size


@dataclass(frozen=True)
class FleetReports:
    """The reports of a run over several bags.

    Attributes:
        bags: bag name -> its report, in the order found.
        total: all bags' counts added up (confusion matrix = the sum of theirs, latencies
            of every frame, calibration and anomaly pixels pooled).
    """

    bags: dict[str, EvaluationReport]
    total: EvaluationReport


def evaluate_fleet(
    bags: Sequence[Path],
    segmenter: Segmenter,
    options: Sequence[BagEvalOptions],
    context: DistributedContext,
    *,
    checkpoint: str = "",
    progress: Progress | None = None,
) -> FleetReports | None:
    """Segment this process's shares of ``bags`` and, on rank 0, report every bag and the
    total (every process of the launch must call this).

    Args:
        options: per bag (each its own ``write_bag``, None for bags whose frames are split).
        checkpoint: as :func:`~vltseg_ros.bag.evaluate.evaluate_bag`'s.
        progress: wraps this process's frames of each bag (rank 0 only, by the caller).

    Returns:
        The reports on rank 0 (``processes`` = world size recorded); None on the others.

    Raises:
        As :func:`~vltseg_ros.bag.evaluate.evaluate_bag`.
    """
    local = []
    for index, share in shares(len(bags), context):
        if len(bags) > 1:
            LOG.info("bag %d of %d: %s", index + 1, len(bags), bags[index])
        scores = score_bag(
            bags[index],
            segmenter,
            options[index],
            checkpoint=checkpoint,
            progress=progress,
            share=share,
        )
        local.append((index, scores))
    gathered = gather_to_main(local)
    if gathered is None:
        return None
    per_bag: dict[int, BagScores] = {}
    for index, scores in (item for part in gathered for item in part):  # in rank order
        if index in per_bag:
            per_bag[index].merge(scores)
        else:
            per_bag[index] = scores
    processes = context.world_size
    reports = {bag_name(bags[i]): per_bag[i].report(processes) for i in range(len(bags))}
    if len(bags) == 1:
        return FleetReports(reports, next(iter(reports.values())))
    total = copy.deepcopy(per_bag[0])
    for index in range(1, len(bags)):
        total.merge(per_bag[index])
    total.counts.source = f"{len(bags)} bags"
    return FleetReports(reports, total.report(processes, warn=False))


def written_bag(write_dir: Path, bag: Path) -> Path:
    """Where a fleet run writes ``bag``'s segmented copy: ``write_dir/<bag's file or folder
    name>`` (``run1`` -> ``DIR/run1``, ``run2.mcap`` -> ``DIR/run2.mcap``)."""
    return Path(write_dir) / Path(bag).name
