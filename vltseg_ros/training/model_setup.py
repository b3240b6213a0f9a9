"""The network as training needs it: built from a run config, encoder initialized from open_clip,
parameters outside the segmentation forward pass frozen, BatchNorm set up for data parallelism.

BatchNorm (only the feature pyramid's ``neck.fpn1`` has one) follows ``train.batchnorm``:

- ``auto``: SyncBatchNorm on multi-GPU CUDA runs (the reference's ``nn.SyncBatchNorm``:
  statistics over the global batch), per-process BatchNorm otherwise (single process: the
  whole batch; CPU / gloo data parallelism: each process's share of it, because PyTorch's
  SyncBatchNorm runs only on GPUs; DDP then broadcasts rank 0's running statistics);
- ``sync``: SyncBatchNorm (CUDA only); ``local``: per-process BatchNorm;
- ``frozen``: BatchNorm layers stay in eval mode (running statistics used, never updated;
  their affine weights still train), so a data-parallel run computes exactly what one process
  with the whole batch computes.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from vltseg_ros.errors import ConfigError
from vltseg_ros.model.segmentor import VLTSeg
from vltseg_ros.parallel.distributed import DistributedContext
from vltseg_ros.training.encoder_init import EncoderInit, initialize_encoder
from vltseg_ros.training.run_config import RunConfig, resolve_model_config

LOG = logging.getLogger(__name__)


class TrainingForward(nn.Module):
    """The forward pass training back-propagates through (what DDP wraps).

    ``forward(images)``: (B, 3, H, W) float normalized RGB -> (class logits, mask logits) of
    every decoder layer, lists of (B, Q, C + 1) and (B, Q, H / 4, W / 4) float tensors.
    """

    def __init__(self, model: VLTSeg) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Head outputs of all decoder layers (see the class docstring)."""
        return self.model.head(self.model.features(images))


def build_training_model(
    run: RunConfig, *, initialize: bool = True
) -> tuple[VLTSeg, EncoderInit | None]:
    """The run's model with random weights and, when ``initialize`` and ``model.init`` are set,
    the encoder initialized from that open_clip / EVA-CLIP file as the VLTSeg reference does
    (:func:`vltseg_ros.training.encoder_init.initialize_encoder`).

    Returns:
        The model, and what the initialization loaded, dropped and left random (None when the
        encoder was not initialized from a file).

    Raises:
        ConfigError: invalid model settings.
        CheckpointError: the file is missing or does not fit the encoder.
    """
    model = VLTSeg(resolve_model_config(run))
    init = None
    if initialize:
        if run.model.init:
            init = initialize_encoder(model.encoder, model.config.encoder, run.model.init)
        else:
            LOG.warning("model.init is not set: the encoder starts from RANDOM weights")
    return model, init


def _probe_input(model: VLTSeg) -> Tensor:
    height, width = model.min_input_size
    return torch.zeros(1, 3, height, width, device=next(model.parameters()).device)


def unused_parameters(model: VLTSeg) -> list[str]:
    """Names of the trainable parameters the segmentation forward pass does not use (e.g.
    open_clip's final norm and projection), found by differentiating one small input through
    the model in eval mode (no state changes, no random numbers drawn)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            cls_logits, mask_logits = model.head(model.features(_probe_input(model)))
            total = sum(t.sum() for t in [*cls_logits, *mask_logits])
            grads = torch.autograd.grad(total, [p for _, p in named], allow_unused=True)
    finally:
        model.train(was_training)
    return [name for (name, _), grad in zip(named, grads, strict=True) if grad is None]


def freeze_unused_parameters(model: VLTSeg) -> list[str]:
    """Set ``requires_grad=False`` on :func:`unused_parameters` (so DDP needs no unused-
    parameter search and AdamW holds no state for them); returns their names."""
    names = unused_parameters(model)
    params = dict(model.named_parameters())
    for name in names:
        params[name].requires_grad_(False)
    if names:
        LOG.info("not trained (unused by segmentation): %s", ", ".join(names))
    return names


def setup_batchnorm(model: VLTSeg, mode: str, context: DistributedContext) -> nn.Module:
    """Apply ``train.batchnorm`` (module docstring); returns the model (converted in place
    or a copy with SyncBatchNorm layers sharing the parameters).

    Raises:
        ConfigError: ``sync`` requested off CUDA.
    """
    if mode == "sync" and context.device.type != "cuda":
        raise ConfigError(
            "train.batchnorm=sync needs CUDA (PyTorch's SyncBatchNorm runs only on GPUs); "
            "use local or frozen on the CPU"
        )
    sync = mode == "sync" or (mode == "auto" and context.device.type == "cuda")
    if sync and context.is_distributed:
        LOG.info("BatchNorm: SyncBatchNorm over %d processes", context.world_size)
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if mode == "frozen":
        LOG.info("BatchNorm: frozen (eval-mode running statistics)")
    elif context.is_distributed:
        LOG.info("BatchNorm: per-process batch statistics (%d processes)", context.world_size)
    return model


def set_train_mode(model: nn.Module, batchnorm: str) -> None:
    """``model.train()``, with BatchNorm layers back in eval mode when ``batchnorm`` is
    ``frozen``."""
    model.train()
    if batchnorm == "frozen":
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
