"""Mask2Former training losses with deep supervision, as VLTSeg (MMSegmentation) trains.

The semantics of MMDetection's ``Mask2FormerHead.loss_by_feat`` / ``_loss_by_feat_single`` with
the loss settings of MMSegmentation's Mask2Former configs, for every prediction the head makes
(after the query initialization and after each decoder layer), each with its own matching. The
weights and the point sampling are a run config's ``loss`` section
(:class:`~vltseg_ros.training.run_config.LossSection`); the values below are its defaults, the
reference's:

- class loss (weight 2): cross-entropy over C + 1 classes, class weights 1 and ``no_object_weight``
  (0.1) for no-object; every query counts (unmatched ones have target no-object); the sum is
  divided by the sum of the class weights of the targets (a weighted mean, MMDetection's
  ``avg_factor=class_weight[labels].sum()``);
- mask loss (weight 5): sigmoid binary cross-entropy of the matched mask logits on P points per
  mask, importance sampled on the matched predicted masks (oversample 3, importance 0.75); the
  target masks are read at the same points (bilinear, so a point near a class border gets a
  soft target), summed and divided by ``num_masks * P``;
- dice loss (weight 5): ``1 - (2 * sum(p * t) + 1) / (sum(p) + sum(t) + 1)`` per matched mask
  on the same points (MMDetection's ``DiceLoss(naive_dice=True, eps=1.0)``), summed and divided
  by ``num_masks``.

``num_masks`` is the number of matched target masks in the batch, averaged over processes when
``torch.distributed`` is initialized (MMDetection's ``reduce_mean``) and clamped to >= 1. As in
MMDetection's ``weight_reduce_loss``, each average divides by (factor + float32 eps).

Ignore pixels (255) are in no target mask (see :mod:`vltseg_ros.training.targets`), so they
add nothing to the class loss and act as background points of every mask, as in the reference.

Randomness (matching points, importance sampling) comes from the ``generator`` argument or, when
it is None, from torch's global RNG; either way a fixed seed gives the same losses.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from vltseg_ros.errors import ConfigError
from vltseg_ros.training.matcher import HungarianMatcher, Match
from vltseg_ros.training.point_sampling import point_sample, uncertainty_points
from vltseg_ros.training.run_config import LossSection
from vltseg_ros.training.targets import SemanticTarget, semantic_targets

_EPS = torch.finfo(torch.float32).eps


class Mask2FormerCriterion:
    """Mask2Former losses of all decoder layers for semantic segmentation.

    Args:
        num_classes: C, classes without no-object.
        loss: the loss weights, the no-object class weight and the point sampling
            (:class:`~vltseg_ros.training.run_config.LossSection`); None: ``LossSection()``,
            the reference's settings.
        ignore_index: label of pixels that belong to no class.
        matcher: the matcher; None: ``HungarianMatcher(loss.class_weight, loss.mask_weight,
            loss.dice_weight, loss.num_points)``, the reference's same-weights matching.

    Raises:
        ConfigError: ``num_classes`` < 1 or a ``loss`` setting out of range.
    """

    def __init__(
        self,
        num_classes: int,
        loss: LossSection | None = None,
        *,
        ignore_index: int = 255,
        matcher: HungarianMatcher | None = None,
    ) -> None:
        if num_classes < 1:
            raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
        loss = LossSection() if loss is None else loss
        loss.validate()
        self.num_classes = num_classes
        self.loss = loss
        self.ignore_index = ignore_index
        self.matcher = matcher or HungarianMatcher(
            loss.class_weight, loss.mask_weight, loss.dice_weight, loss.num_points
        )

    def __call__(
        self,
        cls_logits: Sequence[Tensor],
        mask_logits: Sequence[Tensor],
        labels: Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Losses of every prediction of the head and their total.

        Args:
            cls_logits: L tensors (B, Q, C + 1) float class logits, first the query
                initialization, last the final decoder layer (``Mask2FormerHead.forward``).
            mask_logits: L tensors (B, Q, h, w) float mask logits (any resolution, usually 1/4).
            labels: (B, H, W) integer train ids in [0, C) or ``ignore_index``, any device (moved
                to the predictions' device), any resolution (usually the input image's).
            generator: source of randomness; None: torch's global RNG.

        Returns:
            Weighted float32 scalar losses (each already multiplied by its weight, as
            MMDetection logs them), all attached to the graph: ``loss_cls``, ``loss_mask``,
            ``loss_dice`` of the last prediction; ``d{i}.loss_cls``, ``d{i}.loss_mask``,
            ``d{i}.loss_dice`` of prediction i = 0 .. L-2 (d0: the query initialization);
            ``loss``: the sum of all of them, the one to back-propagate (do not add it to the
            others again).

        Raises:
            ValueError: shapes or labels do not fit.
        """
        self._check_inputs(cls_logits, mask_logits, labels)
        labels = labels.to(cls_logits[0].device)
        targets = semantic_targets(labels, self.num_classes, self.ignore_index)
        num_queries = cls_logits[0].shape[1]
        num_masks = self._num_masks(targets, num_queries, cls_logits[0].device)
        losses: dict[str, Tensor] = {}
        last = len(cls_logits) - 1
        for layer, (cls_layer, mask_layer) in enumerate(zip(cls_logits, mask_logits, strict=True)):
            prefix = "" if layer == last else f"d{layer}."
            loss_cls, loss_mask, loss_dice = self.layer_losses(
                cls_layer, mask_layer, targets, num_masks, generator
            )
            losses[f"{prefix}loss_cls"] = self.loss.class_weight * loss_cls
            losses[f"{prefix}loss_mask"] = self.loss.mask_weight * loss_mask
            losses[f"{prefix}loss_dice"] = self.loss.dice_weight * loss_dice
        losses["loss"] = torch.stack(list(losses.values())).sum()
        return losses

    def layer_losses(
        self,
        cls_logits: Tensor,
        mask_logits: Tensor,
        targets: Sequence[SemanticTarget],
        num_masks: Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Unweighted class, mask and dice losses of one prediction.

        Args:
            cls_logits: (B, Q, C + 1) float class logits.
            mask_logits: (B, Q, h, w) float mask logits.
            targets: B tuples (classes (K,), masks (K, H, W)) from ``semantic_targets``.
            num_masks: float scalar >= 1, the normalizer of the mask losses.
            generator: source of randomness; None: torch's global RNG.

        Returns:
            (loss_cls, loss_mask, loss_dice) float32 scalars >= 0.
        """
        matches = self.matcher(cls_logits, mask_logits, targets, generator=generator)
        loss_cls = self._class_loss(cls_logits, targets, matches)
        pred = torch.cat([mask_logits[b, rows] for b, (rows, _) in enumerate(matches)])
        if pred.shape[0] == 0:  # nothing matched: zero losses that keep the graph
            zero = pred.float().sum()
            return loss_cls, zero, zero.clone()
        target = torch.cat([targets[b][1][cols] for b, (_, cols) in enumerate(matches)])
        pred = pred.float()
        loss = self.loss
        points = uncertainty_points(
            pred, loss.num_points, loss.oversample_ratio, loss.importance_ratio, generator
        )
        pred_points = point_sample(pred.unsqueeze(1), points)[:, 0]
        with torch.no_grad():
            target_points = point_sample(target.unsqueeze(1).float(), points)[:, 0]
        loss_mask = F.binary_cross_entropy_with_logits(
            pred_points, target_points, reduction="sum"
        ) / (num_masks * loss.num_points + _EPS)
        probs = pred_points.sigmoid()
        dice = 1.0 - (2.0 * (probs * target_points).sum(-1) + 1.0) / (
            probs.sum(-1) + target_points.sum(-1) + 1.0
        )
        loss_dice = dice.sum() / (num_masks + _EPS)
        return loss_cls, loss_mask, loss_dice

    def _class_loss(
        self, cls_logits: Tensor, targets: Sequence[SemanticTarget], matches: Sequence[Match]
    ) -> Tensor:
        """Class-weighted mean cross-entropy over all B * Q queries (float32 scalar)."""
        target_classes = torch.full(
            cls_logits.shape[:2], self.num_classes, dtype=torch.int64, device=cls_logits.device
        )
        for b, (rows, cols) in enumerate(matches):
            target_classes[b, rows] = targets[b][0][cols].to(cls_logits.device)
        weight = torch.ones(self.num_classes + 1, device=cls_logits.device)
        weight[-1] = self.loss.no_object_weight
        target_classes = target_classes.flatten()
        loss = F.cross_entropy(
            cls_logits.flatten(0, 1).float(), target_classes, weight=weight, reduction="sum"
        )
        return loss / (weight[target_classes].sum() + _EPS)

    @staticmethod
    def _num_masks(
        targets: Sequence[SemanticTarget], num_queries: int, device: torch.device
    ) -> Tensor:
        """Matched masks in the batch, averaged over processes, clamped to >= 1."""
        count = sum(min(num_queries, classes.numel()) for classes, _ in targets)
        num_masks = torch.tensor(float(count), device=device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(num_masks)
            num_masks = num_masks / dist.get_world_size()
        return num_masks.clamp(min=1.0)

    def _check_inputs(
        self, cls_logits: Sequence[Tensor], mask_logits: Sequence[Tensor], labels: Tensor
    ) -> None:
        """Raise ValueError unless the predictions and labels have fitting shapes."""
        if len(cls_logits) == 0 or len(cls_logits) != len(mask_logits):
            raise ValueError(
                f"need as many class as mask predictions (>= 1), got {len(cls_logits)} and "
                f"{len(mask_logits)}"
            )
        batch = labels.shape[0] if labels.dim() == 3 else None
        for layer, (cls_layer, mask_layer) in enumerate(zip(cls_logits, mask_logits, strict=True)):
            if (
                cls_layer.dim() != 3
                or cls_layer.shape[-1] != self.num_classes + 1
                or mask_layer.dim() != 4
                or cls_layer.shape[:2] != mask_layer.shape[:2]
                or cls_layer.shape[0] != batch
            ):
                raise ValueError(
                    f"prediction {layer}: need cls_logits (B, Q, {self.num_classes + 1}) and "
                    f"mask_logits (B, Q, h, w) with B = labels' batch, got "
                    f"{tuple(cls_layer.shape)}, {tuple(mask_layer.shape)} and labels "
                    f"{tuple(labels.shape)}"
                )
