"""The iteration-based VLTSeg training loop: one process, or one per GPU under torchrun.

Per iteration: a batch of the global stream (each process its slice), the forward pass under
autocast (CUDA + ``train.amp``), the Mask2Former losses of every decoder layer in float32,
backward (DDP averages the gradients over processes), gradient-norm clipping after unscaling,
AdamW step and the per-iteration lr schedule. Every ``checkpoint.interval`` iterations (and at
the end) rank 0 writes a checkpoint (:mod:`vltseg_ros.training.state`) and redraws
``loss.png``; every ``eval.interval`` iterations (and at the end) all processes evaluate the
targets together (:mod:`vltseg_ros.training.periodic_eval`) and rank 0 appends the mIoU to
``metrics.jsonl``. A resumed run restores model, optimizer, scheduler, gradient scaler,
iteration, every process's RNG states and the data position, so on the CPU it computes exactly
what the uninterrupted run computes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.nn.utils import clip_grad_norm_
from tqdm import tqdm

from vltseg_ros.errors import TrainingError
from vltseg_ros.io.files import write_text
from vltseg_ros.model.checkpoint import read_checkpoint, save_checkpoint
from vltseg_ros.parallel.distributed import (
    DistributedContext,
    all_mean,
    barrier,
    gather_objects,
)
from vltseg_ros.training.criterion import Mask2FormerCriterion
from vltseg_ros.training.loaders import (
    build_source_dataset,
    build_target_datasets,
    build_train_loader,
    local_batch_size,
)
from vltseg_ros.training.logs import (
    ENCODER_INIT_LOG,
    LOSS_PLOT,
    METRICS_LOG,
    TRAIN_LOG,
    append_jsonl,
    loss_curve,
    truncate_jsonl,
)
from vltseg_ros.training.model_setup import (
    TrainingForward,
    build_training_model,
    freeze_unused_parameters,
    set_train_mode,
    setup_batchnorm,
)
from vltseg_ros.training.optim import build_optimizer, build_scheduler
from vltseg_ros.training.periodic_eval import evaluate_targets
from vltseg_ros.training.run_config import RunConfig
from vltseg_ros.training.state import (
    capture_rng,
    checkpoint_paths,
    load_state,
    prune_checkpoints,
    read_pointer,
    resolve_resume,
    restore_rng,
    save_state,
    seed_everything,
    write_pointer,
)

LOG = logging.getLogger(__name__)

_LOSS_KEYS = ("loss", "loss_cls", "loss_mask", "loss_dice")
_AMP_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` leaves: the iteration reached, the last model checkpoint, the
    loss history (``iteration``, ``loss``, ``lr`` lists) and the last evaluation's records."""

    iteration: int
    run_dir: Path
    checkpoint: Path | None
    history: dict[str, list[float]] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)


class Trainer:
    """Builds everything a run needs and trains it (module docstring).

    Args:
        run: the validated run config.
        context: this process's rank, world size and device
            (:func:`vltseg_ros.parallel.distributed.init_distributed`); default: one CPU
            process.
        resume: False: start a new run (refused when the run folder already holds one);
            True: continue from the run folder's ``last_checkpoint.json`` if there is one;
            a path: continue from that ``.state.pt`` / ``.safetensors`` / run folder.
        progress: show a progress bar (rank 0 only).

    Raises:
        ConfigError, DatasetError, CheckpointError, TrainingError, DeviceError: bad settings,
            data, initial weights, resume state or device.
    """

    def __init__(
        self,
        run: RunConfig,
        context: DistributedContext | None = None,
        *,
        resume: bool | str | Path = False,
        progress: bool = True,
    ) -> None:
        self.run = run
        self.context = context or DistributedContext()
        self.device = self.context.device
        self.run_dir = run.output_path
        self.progress = progress
        self.iteration = 0
        self.history: dict[str, list[float]] = {"iteration": [], "loss": [], "lr": []}
        self.metrics: list[dict[str, Any]] = []
        self.last_checkpoint: Path | None = None
        local_batch_size(run, self.context)
        resume_from = self._resume_source(resume)
        seed_everything(run.train.seed)
        model, self.encoder_init = build_training_model(run, initialize=resume_from is None)
        freeze_unused_parameters(model)
        model = setup_batchnorm(model, run.train.batchnorm, self.context)
        self.model = model.to(self.device)
        set_train_mode(self.model, run.train.batchnorm)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.criterion = Mask2FormerCriterion(self.model.config.class_set.num_classes, run.loss)
        self.optimizer = build_optimizer(self.model, run.train)
        self.scheduler = build_scheduler(self.optimizer, run.train)
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.source = build_source_dataset(run, self.model.config.normalization)
        self.targets = build_target_datasets(run)
        seed_everything(run.train.seed + self.context.rank)
        if resume_from is not None:
            self._load(*resume_from)
        self.forward = self._wrap(TrainingForward(self.model))
        self.loader = build_train_loader(self.source, run, self.context, self.iteration)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self._log_setup()

    def fit(self) -> TrainResult:
        """Train until ``train.iterations``; returns the :class:`TrainResult`."""
        run, total = self.run, self.run.train.iterations
        if self.context.is_main:
            self._prepare_run_dir()
        bar = tqdm(
            total=total,
            initial=self.iteration,
            desc=run.name,
            unit="it",
            dynamic_ncols=True,
            disable=not (self.progress and self.context.is_main),
        )
        batches = iter(self.loader)
        window: list[dict[str, float]] = []
        started = time.perf_counter()
        try:
            while self.iteration < total:
                record = self.step(next(batches))
                bar.update(1)
                bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}")
                window.append(record)
                done = self.iteration
                if done % run.train.log_interval == 0 or done == total:
                    self._log_window(window, time.perf_counter() - started)
                    window, started = [], time.perf_counter()
                if done % run.checkpoint.interval == 0 or done == total:
                    self.save()
                if self.targets and (
                    (run.eval.interval and done % run.eval.interval == 0) or done == total
                ):
                    self.evaluate()
        finally:
            bar.close()
        return TrainResult(
            self.iteration, self.run_dir, self.last_checkpoint, self.history, self.metrics
        )

    def step(self, batch: dict[str, Any]) -> dict[str, float]:
        """One optimization step on this process's batch (``image`` (b, 3, H, W) float32,
        ``labels`` (b, H, W) int64); returns the losses averaged over processes, the head lr
        used and the gradient norm before clipping.

        Raises:
            TrainingError: the loss is not finite (without a float16 gradient scaler, which
                skips such steps instead).
        """
        images = batch["image"].to(self.device, non_blocking=True)
        labels = batch["labels"].to(self.device, non_blocking=True)
        lr = max(group["lr"] for group in self.optimizer.param_groups)
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            cls_logits, mask_logits = self.forward(images)
        losses = self.criterion(cls_logits, mask_logits, labels)
        self.scaler.scale(losses["loss"]).backward()
        self.scaler.unscale_(self.optimizer)
        clip = self.run.train.grad_clip if self.run.train.grad_clip > 0 else math.inf
        grad_norm = float(clip_grad_norm_(self.trainable, clip))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.iteration += 1
        values = all_mean(torch.stack([losses[k].detach().float() for k in _LOSS_KEYS]))
        record = dict(zip(_LOSS_KEYS, values.tolist(), strict=True))
        if not math.isfinite(record["loss"]) and not self.scaler.is_enabled():
            raise TrainingError(
                f"loss is {record['loss']} at iteration {self.iteration}; training diverged "
                "(lower train.lr, check the labels)"
            )
        record.update(lr=lr, grad_norm=grad_norm)
        for key, value in (("iteration", self.iteration), ("loss", record["loss"]), ("lr", lr)):
            self.history[key].append(value)
        return record

    def save(self) -> Path | None:
        """Write the checkpoint of the current iteration (rank 0) after gathering every
        process's RNG states; all processes must call it. Returns the model file on rank 0."""
        rng_states = gather_objects(capture_rng(self.device))
        model_path = None
        if self.context.is_main:
            model_path, state_path = checkpoint_paths(self.run_dir, self.iteration)
            save_checkpoint(
                self.model,
                model_path,
                training_domain=self.run.source_name,
                source=f"vltseg train {self.run.name}, iteration {self.iteration}",
                extra_metadata={"iteration": str(self.iteration), "run": self.run.name},
            )
            save_state(state_path, self._state(rng_states))
            write_pointer(self.run_dir, self.iteration)
            prune_checkpoints(self.run_dir, self.run.checkpoint.keep)
            loss_curve(self.history, self.run_dir / LOSS_PLOT, title=self.run.name)
            LOG.info("checkpoint %s", model_path)
            self.last_checkpoint = model_path
        barrier(self.context)
        return model_path

    def evaluate(self) -> list[dict[str, Any]]:
        """Evaluate the targets now (all processes together); returns rank 0's records (also
        appended to ``metrics.jsonl``) and puts the model back into training mode."""
        records = evaluate_targets(
            self.model,
            self.targets,
            self.run,
            self.context,
            self.iteration,
            progress=self.progress,
        )
        set_train_mode(self.model, self.run.train.batchnorm)
        if self.context.is_main:
            for record in records:
                append_jsonl(self.run_dir / METRICS_LOG, record)
        self.metrics = records
        return records

    def _state(self, rng_states: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_states,
            "history": self.history,
            "world_size": self.context.world_size,
            "global_batch": self.run.train.batch_size,
            "run": self.run.name,
        }

    def _resume_source(self, resume: bool | str | Path) -> tuple[Path, Path] | None:
        if resume not in (False, True):
            return resolve_resume(Path(resume))
        found = read_pointer(self.run_dir) if self.run_dir.is_dir() else None
        if found is not None and resume is False:
            raise TrainingError(
                f"{self.run_dir} already holds a training run (its last_checkpoint.json); "
                "resume it with --resume or choose another --out"
            )
        if resume is True and found is None:
            LOG.info("nothing to resume in %s: starting a new run", self.run_dir)
        return found if resume is True else None

    def _load(self, model_path: Path, state_path: Path) -> None:
        state = load_state(state_path)
        tensors, _ = read_checkpoint(model_path)
        try:
            self.model.load_state_dict(tensors, strict=True)
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise TrainingError(
                f"cannot resume from {state_path}: it does not match this run's model or "
                f"optimizer ({str(exc).splitlines()[0]})"
            ) from exc
        self.iteration = int(state["iteration"])
        self.history = {key: list(values) for key, values in state["history"].items()}
        if state["global_batch"] != self.run.train.batch_size:
            LOG.warning("resuming with another global batch: the data order changes")
        rng_states = state["rng"]
        if len(rng_states) == self.context.world_size:
            restore_rng(rng_states[self.context.rank], self.device)
        else:
            LOG.warning("resuming on another number of processes: random streams reseeded")
            seed_everything(self.run.train.seed + self.context.rank + 7919 * self.iteration)
        LOG.info("resumed from %s at iteration %d", state_path, self.iteration)

    def _wrap(self, module: TrainingForward) -> torch.nn.Module:
        if not self.context.is_distributed:
            return module
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=device_ids)

    def _amp_dtype(self) -> torch.dtype | None:
        if not self.run.train.amp or self.device.type != "cuda":
            return None
        return _AMP_DTYPES[self.run.train.amp_dtype]

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.amp_dtype)

    def _prepare_run_dir(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(self.run.to_dict(), sort_keys=False)
        write_text(self.run_dir / "config.yaml", text)
        for name in (TRAIN_LOG, METRICS_LOG):
            truncate_jsonl(self.run_dir / name, self.iteration)
        if self.encoder_init is not None:
            text = json.dumps(self.encoder_init.to_dict(), indent=1)
            write_text(self.run_dir / ENCODER_INIT_LOG, text + "\n")

    def _log_window(self, window: list[dict[str, float]], seconds: float) -> None:
        if not window or not self.context.is_main:
            return
        mean = {key: sum(r[key] for r in window) / len(window) for key in _LOSS_KEYS}
        record = {
            "iteration": self.iteration,
            **mean,
            "lr": window[-1]["lr"],
            "grad_norm": window[-1]["grad_norm"],
            "seconds_per_iteration": seconds / len(window),
        }
        if self.device.type == "cuda":
            record["max_memory_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        append_jsonl(self.run_dir / TRAIN_LOG, record)
        LOG.info(
            "iteration %d/%d: loss %.4f (cls %.4f, mask %.4f, dice %.4f), lr %.3g, %.2f s/it",
            self.iteration,
            self.run.train.iterations,
            *(mean[key] for key in _LOSS_KEYS),
            record["lr"],
            record["seconds_per_iteration"],
        )

    def _log_setup(self) -> None:
        if not self.context.is_main:
            return
        count = sum(p.numel() for p in self.trainable)
        LOG.info(
            "run %s: %d trainable parameters, %d processes x %d images on %s, AMP %s, "
            "BatchNorm %s, iterations %d -> %d, output %s",
            self.run.name,
            count,
            self.context.world_size,
            local_batch_size(self.run, self.context),
            self.device,
            self.amp_dtype or "off",
            self.run.train.batchnorm,
            self.iteration,
            self.run.train.iterations,
            self.run_dir,
        )
        for line in self.encoder_init.summary() if self.encoder_init else ():
            LOG.info(line)
