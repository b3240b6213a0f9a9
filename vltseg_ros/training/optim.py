"""AdamW with the VLTSeg reference's per-parameter lr and weight decay, and its lr schedule.

The reference (``configs/_base_/schedules/schedule_5k.py``) uses MMEngine's
``DefaultOptimWrapperConstructor`` with ``custom_keys`` and ``norm_decay_mult=0``. A custom key
matches when it is a substring of the parameter name (longest key first) and then replaces
every other rule, so with the reference's keys:

- backbone (its EVA02 module holds the encoder and the feature pyramid ``fpn1``-``fpn4``; here
  ``encoder.*`` and ``neck.*``): lr x ``backbone_lr_mult`` (0.1), weight decay kept, except
  the position embedding, the tower-level norm and every block's ``norm1`` / ``norm2``
  (no decay). Other backbone norms (EVA02's sub-LN norms inside attention and MLP, the
  pyramid's BatchNorm) match only ``backbone`` and keep their decay, as in the reference.
  open_clip ViT towers map the same way: ``positional_embedding``, ``ln_pre`` / ``ln_post``
  and ``ln_1`` / ``ln_2``.
- head: lr x 1; no decay for ``query_embed``, ``query_feat``, ``level_embed`` and for the
  weights and biases of normalization layers (GroupNorm, LayerNorm, BatchNorm); decay for all
  other parameters (biases included).

Schedule (``PolyLR(eta_min=0, power=0.9, begin=500, end=iterations, by_epoch=False)``, no
scheduler before ``begin``): the lr of iteration i (0-based) is the base lr times
:func:`lr_factor`: 1 for i < 500, then ``(1 - (i - 500) / (iterations - 500)) ** 0.9``.
"""

from __future__ import annotations

import re
from typing import Any

from torch import nn
from torch.optim import AdamW, Optimizer
from torch.optim.lr_scheduler import LambdaLR

from vltseg_ros.training.run_config import TrainSection

_BACKBONE_PREFIXES = ("encoder.", "neck.")
_BACKBONE_NO_DECAY = re.compile(
    r"^encoder\.visual\.("
    r"trunk\.pos_embed$|positional_embedding$"  # absolute position embeddings
    r"|trunk\.norm\.|ln_pre\.|ln_post\."  # tower-level norms (reference: backbone.norm)
    r"|trunk\.blocks\.\d+\.norm[12]\.|transformer\.resblocks\.\d+\.ln_[12]\."  # block norms
    r")"
)
_HEAD_NO_DECAY_KEYS = ("query_embed", "query_feat", "level_embed")
_NORM_TYPES = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.GroupNorm,
    nn.LayerNorm,
)


def parameter_rule(name: str, module: nn.Module, backbone_lr_mult: float) -> tuple[float, float]:
    """(lr multiplier, weight-decay multiplier) of one parameter (module docstring).

    Args:
        name: the parameter's name in the :class:`VLTSeg` state dict (``encoder.*``,
            ``neck.*``, ``head.*``).
        module: the module that owns the parameter directly.
        backbone_lr_mult: lr multiplier of the encoder and the pyramid (reference 0.1).

    Returns:
        (lr_mult, decay_mult), each 0 or positive; decay_mult is 0 or 1.
    """
    if name.startswith(_BACKBONE_PREFIXES):
        return backbone_lr_mult, 0.0 if _BACKBONE_NO_DECAY.search(name) else 1.0
    if any(key in name for key in _HEAD_NO_DECAY_KEYS) or isinstance(module, _NORM_TYPES):
        return 1.0, 0.0
    return 1.0, 1.0


def param_groups(
    model: nn.Module, lr: float, weight_decay: float, backbone_lr_mult: float
) -> list[dict[str, Any]]:
    """AdamW parameter groups of the trainable parameters: backbone / head x decay / none.

    Returns:
        Groups in a fixed order (first appearance in ``model.named_modules()``), each with
        ``params``, ``lr``, ``weight_decay``, ``name`` (e.g. ``backbone_decay``) and
        ``param_names`` (the parameters' state-dict names). Parameters with
        ``requires_grad=False`` are left out.
    """
    groups: dict[str, dict[str, Any]] = {}
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            name = f"{module_name}.{param_name}" if module_name else param_name
            lr_mult, decay_mult = parameter_rule(name, module, backbone_lr_mult)
            group_name = _group_name(name, decay_mult)
            group = groups.setdefault(
                group_name,
                {
                    "params": [],
                    "param_names": [],
                    "lr": lr * lr_mult,
                    "weight_decay": weight_decay * decay_mult,
                    "name": group_name,
                },
            )
            group["params"].append(param)
            group["param_names"].append(name)
    return list(groups.values())


def build_optimizer(model: nn.Module, train: TrainSection) -> AdamW:
    """AdamW (betas 0.9 / 0.999, eps 1e-8) over :func:`param_groups` of ``model``."""
    groups = param_groups(model, train.lr, train.weight_decay, train.backbone_lr_mult)
    return AdamW(
        groups, lr=train.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=train.weight_decay
    )


def lr_factor(iteration: int, iterations: int, constant_iterations: int, power: float) -> float:
    """Multiplier in [0, 1] of the base lr for 0-based ``iteration``: 1 before
    ``constant_iterations``, then poly decay with ``power`` reaching 0 at ``iterations``."""
    if iteration < constant_iterations:
        return 1.0
    span = iterations - constant_iterations
    if span <= 0:
        return 0.0
    return (1.0 - min(iteration - constant_iterations, span) / span) ** power


def build_scheduler(optimizer: Optimizer, train: TrainSection) -> LambdaLR:
    """Per-iteration :class:`LambdaLR` of :func:`lr_factor`; call ``step()`` after each
    optimizer step. Its state dict holds only numbers (the schedule itself comes from
    ``train``), so it checkpoints and resumes with ``torch.load(weights_only=True)``."""

    def factor(iteration: int) -> float:
        return lr_factor(iteration, train.iterations, train.constant_iterations, train.poly_power)

    return LambdaLR(optimizer, factor)


def _group_name(name: str, decay_mult: float) -> str:
    part = "backbone" if name.startswith(_BACKBONE_PREFIXES) else "head"
    return f"{part}_{'decay' if decay_mult else 'no_decay'}"
