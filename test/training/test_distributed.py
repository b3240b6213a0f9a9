"""Two-process data-parallel training on the CPU (gloo) against one process with the same
global batch.

What makes the comparison exact:

- data: the keyed sampler gives rank r the r-th half of every global batch, with the same
  augmentation draws as the single process;
- BatchNorm (the pyramid's only one): ``train.batchnorm=frozen`` (eval-mode running
  statistics), because per-process BatchNorm statistics over half the batch differ from the
  single process's and PyTorch's SyncBatchNorm runs only on GPUs;
- point sampling: the matcher's and the losses' random points are replaced by one fixed set
  (:func:`_fixed_points`), so each mask gets the same points however the batch is split;
- losses: ``num_masks`` is averaged over processes by the criterion and every frame holds the
  same 4 classes, so the class-loss normalizer is equal on both ranks; DDP's gradient mean then
  equals the single process's gradient.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp

from test.training.shapes import shapes_run_config, write_shapes
from vltseg_ros.training import matcher, point_sampling
from vltseg_ros.training.trainer import Trainer

SIZE = 32
WORLD = 2


def _fixed_points(num_sets, num_points, device, generator=None):
    """The same ``num_points`` points for every set (replaces ``random_points``)."""
    points = torch.rand((1, num_points, 2), generator=torch.Generator().manual_seed(7))
    return points.expand(num_sets, -1, -1).to(device)


def _run_config(data: Path, out: Path):
    return shapes_run_config(
        data,
        out,
        SIZE,
        "model.config=tiny-eva",
        "model.drop_path=0.0",
        "train.iterations=1",
        "train.batch_size=4",
        "train.batchnorm=frozen",
        "checkpoint.interval=1",
    )


def _trained_state(trainer: Trainer) -> dict:
    result = trainer.fit()
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    return {"loss": result.history["loss"], "grads": grads, "metrics": result.metrics}


def _worker(rank: int, port: int, data: Path, out: Path, results: Path) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(WORLD),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    matcher.random_points = _fixed_points
    point_sampling.random_points = _fixed_points
    from vltseg_ros.parallel.distributed import init_distributed, shutdown_distributed

    context = init_distributed("cpu")
    try:
        state = _trained_state(Trainer(_run_config(data, out), context, progress=False))
        torch.save(state, results / f"rank{rank}.pt")
    finally:
        shutdown_distributed()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_ddp_matches_one_process_with_the_global_batch(tmp_path, monkeypatch):
    data = write_shapes(tmp_path / "data", count=8, size=SIZE)
    results = tmp_path / "results"
    results.mkdir()
    ddp_out = tmp_path / "ddp"
    mp.spawn(_worker, args=(_free_port(), data, ddp_out, results), nprocs=WORLD, join=True)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setattr(matcher, "random_points", _fixed_points)
    monkeypatch.setattr(point_sampling, "random_points", _fixed_points)
    try:
        single = _trained_state(Trainer(_run_config(data, tmp_path / "single"), progress=False))
    finally:
        torch.set_num_threads(threads)
    ranks = [torch.load(results / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]

    # the first step's loss (mean over processes) and gradients match the single process
    assert abs(ranks[0]["loss"][0] - single["loss"][0]) <= 1e-5 * single["loss"][0]
    assert ranks[0]["grads"].keys() == single["grads"].keys()
    for name, grad in single["grads"].items():
        scale = grad.abs().max().item()
        torch.testing.assert_close(ranks[0]["grads"][name], grad, rtol=1e-4, atol=1e-5 * scale)
        assert torch.equal(ranks[1]["grads"][name], ranks[0]["grads"][name])  # all-reduced

    # rank 0 alone wrote one checkpoint, holding both processes' RNG states
    files = sorted(p.name for p in ddp_out.glob("iter_*"))
    assert files == ["iter_000001.safetensors", "iter_000001.state.pt"]
    state = torch.load(ddp_out / "iter_000001.state.pt", weights_only=True)
    assert state["world_size"] == WORLD and len(state["rng"]) == WORLD

    # the evaluation was split between the processes and merged on rank 0
    assert ranks[1]["metrics"] == []
    merged = {r["domain"]: r for r in ranks[0]["metrics"]}["cityscapes"]
    assert merged["pixels"] == 8 * SIZE * SIZE
