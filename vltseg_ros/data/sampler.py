"""An endless, shuffled, resumable sampler that numbers its draws for reproducible augmentation.

:class:`InfiniteKeyedSampler` yields ``(index, key)`` pairs: ``key`` = n for the n-th sample
drawn since training began, ``index`` its position in a fresh permutation of the data set each
pass (``default_rng([seed, pass])``), like MMEngine's shuffled ``InfiniteSampler``.
:class:`~vltseg_ros.data.dataset.SegmentationDataset` accepts the pairs and hands ``key`` to the
transform, so sample n always gets the same image and the same augmentation: a run resumed with
``start`` = iterations done x batch size continues exactly, whatever the number of workers.

Data-parallel training shares one global stream of draws: with ``world_size`` processes and
``chunk`` = the per-process batch size, process ``rank`` takes draws
``[g * B + rank * chunk, g * B + (rank + 1) * chunk)`` of every global batch g (B = ``chunk *
world_size``), so the processes' batches put side by side are exactly the batch one process
would draw with batch size B.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

from vltseg_ros.errors import DatasetError


class InfiniteKeyedSampler(Sampler[tuple[int, int]]):
    """Endless ``(index, key)`` pairs over a data set of ``size`` samples.

    Args:
        size: number of samples in the data set.
        seed: seed of the per-pass permutations.
        start: the key to begin with (samples already drawn by an interrupted run, by all
            processes together); a multiple of ``chunk * world_size``.
        shuffle: permute each pass (True) or go in order.
        rank: this process's index in [0, world_size).
        world_size: number of data-parallel processes sharing the stream.
        chunk: consecutive draws each process takes in turn (its batch size).

    Raises:
        DatasetError: ``size`` < 1, ``start`` < 0, ``chunk`` < 1, ``rank`` outside
            [0, world_size), or ``start`` not at a global-batch boundary.
    """

    def __init__(
        self,
        size: int,
        seed: int = 0,
        start: int = 0,
        shuffle: bool = True,
        *,
        rank: int = 0,
        world_size: int = 1,
        chunk: int = 1,
    ) -> None:
        if size < 1 or start < 0:
            raise DatasetError(f"sampler needs size >= 1 and start >= 0, got {size}, {start}")
        if chunk < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise DatasetError(
                f"sampler needs chunk >= 1 and 0 <= rank < world_size, got chunk {chunk}, "
                f"rank {rank}, world_size {world_size}"
            )
        if start % (chunk * world_size):
            raise DatasetError(
                f"sampler start {start} is not a multiple of the global batch "
                f"{chunk * world_size} (chunk {chunk} x world_size {world_size})"
            )
        self.size = size
        self.seed = seed
        self.start = start
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.chunk = chunk

    def order(self, epoch: int) -> np.ndarray:
        """(size,) int64 sample indices of pass ``epoch``."""
        if not self.shuffle:
            return np.arange(self.size)
        return np.random.default_rng([self.seed, epoch]).permutation(self.size)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        key = self.start
        epoch, position = divmod(key, self.size)
        order = self.order(epoch)
        while True:
            if (key // self.chunk) % self.world_size == self.rank:
                yield int(order[position]), key
            key += 1
            position += 1
            if position == self.size:
                epoch, position = epoch + 1, 0
                order = self.order(epoch)
