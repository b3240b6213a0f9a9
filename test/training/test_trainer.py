"""The training loop on a generated shapes data set: it overfits (loss falls, mIoU > 0.8),
its checkpoint reproduces the logged mIoU, a resumed run continues exactly, and the CLI runs.

The loop runs with one torch thread: on the 2 shared cores of the test machine, OpenMP's
2-thread barriers made each tiny step ~100x slower whenever another process was busy.
"""

from __future__ import annotations

import json

import pytest
import torch

from test.training.shapes import shapes_run_config, write_shapes
from vltseg_ros.cli.main import main
from vltseg_ros.data.factory import build_dataset
from vltseg_ros.engines.torch_engine import TorchEngine
from vltseg_ros.errors import TrainingError
from vltseg_ros.evaluation.dataset_eval import evaluate_dataset
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.model.checkpoint import load_model, read_checkpoint
from vltseg_ros.training.trainer import Trainer

SIZE = 32


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _mean(values):
    return sum(values) / len(values)


def test_overfits_shapes_and_its_checkpoint_reproduces_the_miou(tmp_path):
    data = write_shapes(tmp_path / "data", count=16, size=SIZE)
    run = shapes_run_config(
        data,
        tmp_path / "run",
        SIZE,
        "model.config=tiny-eva",
        "model.drop_path=0.2",
        "train.iterations=240",
        "train.batch_size=4",
        "train.constant_iterations=60",
        "train.log_interval=40",
        "checkpoint.interval=120",
        "eval.interval=120",
    )
    result = Trainer(run, progress=False).fit()

    losses = result.history["loss"]
    assert result.iteration == 240 and len(losses) == 240
    assert _mean(losses[-20:]) < 0.4 * _mean(losses[:20])
    lrs = result.history["lr"]
    assert lrs[:61] == [1e-3] * 61 and 0 < lrs[-1] < lrs[100] < 1e-3
    final = {r["domain"]: r for r in result.metrics}["cityscapes"]
    assert final["iteration"] == 240 and final["miou"] > 0.8, final
    assert final["pixels"] == 16 * SIZE * SIZE

    run_dir = tmp_path / "run"
    names = sorted(p.name for p in run_dir.iterdir())
    assert names == [
        "config.yaml",
        "iter_000240.safetensors",  # keep=1: iteration 120's pair was deleted
        "iter_000240.state.pt",
        "last_checkpoint.json",
        "loss.png",
        "metrics.jsonl",
        "train_log.jsonl",
    ]
    assert (run_dir / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["iteration"] for m in metrics] == [120, 240]
    log = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in log] == [40, 80, 120, 160, 200, 240]

    _, metadata = read_checkpoint(result.checkpoint)
    assert metadata["training_domain"] == "cityscapes" and metadata["iteration"] == "240"
    segmenter = Segmenter(TorchEngine(load_model(result.checkpoint)))
    matrices = evaluate_dataset(
        segmenter, build_dataset("cityscapes", data, "train"), progress=False
    )
    assert matrices["cityscapes"].miou() == pytest.approx(final["miou"])


def test_resumed_run_continues_exactly(tmp_path):
    data = write_shapes(tmp_path / "data", count=6, size=SIZE)
    common = (
        "model.config=tiny-eva",
        "model.drop_path=0.2",  # draws random numbers: the RNG state must be restored
        "train.iterations=8",
        "train.batch_size=2",
        "train.constant_iterations=2",
        "checkpoint.interval=4",
        "checkpoint.keep=2",
        "eval.interval=4",
        "eval.limit=2",
    )
    full = Trainer(shapes_run_config(data, tmp_path / "full", SIZE, *common), progress=False).fit()

    state_file = tmp_path / "full" / "iter_000004.state.pt"
    state = torch.load(state_file, weights_only=True)  # plain data: no code is unpickled
    assert state["iteration"] == 4 and len(state["rng"]) == 1 and state["global_batch"] == 2
    resumed_run = shapes_run_config(
        data, tmp_path / "resumed", SIZE, *common, "data.num_workers=1"
    )
    trainer = Trainer(resumed_run, resume=state_file, progress=False)
    assert trainer.iteration == 4
    resumed = trainer.fit()

    assert resumed.history == full.history
    weights_full, _ = read_checkpoint(full.checkpoint)
    weights_resumed, _ = read_checkpoint(resumed.checkpoint)
    assert weights_full.keys() == weights_resumed.keys()
    assert all(torch.equal(weights_full[k], weights_resumed[k]) for k in weights_full)
    summary = [(r["iteration"], r["domain"], r["pixels"], r["miou"]) for r in resumed.metrics]
    assert summary == [(r["iteration"], r["domain"], r["pixels"], r["miou"]) for r in full.metrics]

    again = shapes_run_config(data, tmp_path / "full", SIZE, *common)
    with pytest.raises(TrainingError, match="--resume"):
        Trainer(again, progress=False)
    finished = Trainer(again, resume=True, progress=False).fit()  # nothing left to do
    assert finished.iteration == 8 and finished.history == full.history


def test_cli_trains_refuses_to_overwrite_and_resumes(tmp_path, capsys):
    data = write_shapes(tmp_path / "data", count=4, size=SIZE)
    out = tmp_path / "run"
    overrides = [
        f"data.source=cityscapes:{data}",
        f"data.scale=[{SIZE},{SIZE}]",
        f"data.crop_size=[{SIZE},{SIZE}]",
        "train.iterations=2",
        "checkpoint.interval=1",
        "loss.num_points=64",
    ]
    options = ["--out", str(out), "--device", "cpu", "--no-progress"]
    args = ["train", "tiny", *overrides, *options]
    assert main(args) == 0
    assert "trained tiny to iteration 2" in capsys.readouterr().out
    assert json.loads((out / "last_checkpoint.json").read_text())["iteration"] == 2
    assert main(args) == 2  # the folder already holds a run
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "tiny", *overrides, "train.iterations=3", *options, "--resume"]) == 0
    assert json.loads((out / "last_checkpoint.json").read_text())["iteration"] == 3
    assert sorted(p.name for p in out.glob("iter_*")) == [
        "iter_000003.safetensors",
        "iter_000003.state.pt",
    ]
