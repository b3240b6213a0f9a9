"""Single-process and torchrun data-parallel setup: ranks, devices, process group, collectives.

``torchrun`` (or any launcher that sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT``) starts one process per GPU; :func:`init_distributed` reads
those variables and joins the process group: by default NCCL on CUDA, gloo on the CPU
(training); evaluation asks for gloo whatever the device, since it only exchanges counts.
Without them (``WORLD_SIZE`` unset or 1) the run is a single process, no process group is
made, and the collectives below are no-ops.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

from vltseg_ros.errors import ConfigError, DeviceError

LOG = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands: its rank among ``world_size`` processes and its device."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """True on the process that logs, evaluates and writes files (rank 0)."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        """True when several processes share the work."""
        return self.world_size > 1


def launched_world_size() -> int:
    """The number of processes the launcher started (``WORLD_SIZE``; 1 when unset).

    Raises:
        ConfigError: ``WORLD_SIZE`` is not a positive integer.
    """
    value = os.environ.get("WORLD_SIZE", "1")
    try:
        world_size = int(value)
    except ValueError:
        world_size = 0
    if world_size < 1:
        raise ConfigError(f"bad WORLD_SIZE environment {value!r}: a positive integer expected")
    return world_size


def init_distributed(
    device: str | None = None,
    *,
    backend: str | None = None,
    timeout: timedelta | None = None,
) -> DistributedContext:
    """Join the torchrun process group (if launched so) and pick this process's device.

    Args:
        device: ``cpu``, ``cuda`` or ``cuda:N`` (N only for single-process runs); None: CUDA
            when available, else the CPU. Under torchrun, ``cuda`` is ``cuda:LOCAL_RANK``.
        backend: ``gloo`` or ``nccl``; None: NCCL on CUDA, gloo on the CPU.
        timeout: how long a collective waits for the slowest process (None: PyTorch's
            default, 30 min for gloo); evaluation, whose shares can end hours apart, sets more.

    Returns:
        The context; the process group is initialized when ``WORLD_SIZE`` > 1.

    Raises:
        DeviceError: CUDA requested but unavailable, or fewer GPUs than local ranks.
        ConfigError: the launcher's environment variables are malformed.
    """
    world_size = launched_world_size()
    try:
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError as exc:
        raise ConfigError(f"bad RANK / LOCAL_RANK environment: {exc}") from exc
    if not 0 <= rank < world_size:
        raise ConfigError(f"RANK {rank} / WORLD_SIZE {world_size} are inconsistent")
    resolved = _resolve_device(device, local_rank, world_size)
    if world_size > 1 and not dist.is_initialized():
        backend = backend or ("nccl" if resolved.type == "cuda" else "gloo")
        if resolved.type == "cuda":
            torch.cuda.set_device(resolved)
        options = {} if timeout is None else {"timeout": timeout}
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size, **options)
        LOG.info("process group %s: rank %d of %d on %s", backend, rank, world_size, resolved)
    return DistributedContext(rank, local_rank, world_size, resolved)


def shutdown_distributed() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _resolve_device(device: str | None, local_rank: int, world_size: int) -> torch.device:
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise DeviceError(f"unknown device {device!r}: use cpu, cuda or cuda:N") from exc
    if resolved.type == "cpu":
        return resolved
    if resolved.type != "cuda":
        raise DeviceError(f"the processes run on cpu or cuda, not {device!r}")
    if not torch.cuda.is_available():
        raise DeviceError("CUDA was requested but is not available; use --device cpu")
    if world_size > 1:
        if resolved.index is not None:
            raise DeviceError("under torchrun give --device cuda (each process takes LOCAL_RANK)")
        resolved = torch.device("cuda", local_rank)
    index = resolved.index if resolved.index is not None else 0
    if index >= torch.cuda.device_count():
        raise DeviceError(f"{resolved} requested but only {torch.cuda.device_count()} GPU(s)")
    return torch.device("cuda", index)


def all_mean(values: Tensor) -> Tensor:
    """The element-wise mean of ``values`` over all processes (``values`` itself when alone);
    a float tensor of any shape, on this process's device for NCCL."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    values = values.clone()
    dist.all_reduce(values)
    return values / dist.get_world_size()


def gather_objects(obj: Any) -> list[Any]:
    """Every process's ``obj`` (picklable, sent between our own processes), in rank order, on
    every process (``[obj]`` when alone)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def gather_to_main(obj: Any) -> list[Any] | None:
    """Every process's ``obj`` (picklable, sent between our own processes), in rank order, on
    rank 0 only; None on the other ranks (``[obj]`` when alone)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    main = dist.get_rank() == 0
    gathered: list[Any] | None = [None] * dist.get_world_size() if main else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered


def shard(items: Sequence[T], context: DistributedContext) -> list[T]:
    """This process's share of ``items``: every ``world_size``-th item from index ``rank``
    (all of them in a single process)."""
    return list(items[context.rank :: context.world_size])


def barrier(context: DistributedContext) -> None:
    """Wait until every process gets here."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    if context.device.type == "cuda":
        dist.barrier(device_ids=[context.device.index])
    else:
        dist.barrier()
