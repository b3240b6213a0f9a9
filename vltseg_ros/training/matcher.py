"""Hungarian matching of Mask2Former queries to target masks, on sampled points.

The same matching as MMDetection's ``HungarianAssigner`` with the match costs MMSegmentation's
Mask2Former configs use (``ClassificationCost`` weight 2, ``CrossEntropyLossCost`` weight 5 with
``use_sigmoid=True``, ``DiceCost`` weight 5 with ``pred_act=True, eps=1.0``) and the point
sampling of MMDetection's ``Mask2FormerHead._get_target_single`` (also detectron2 Mask2Former's
``HungarianMatcher``). Per image, with P uniform random points shared by the predictions
(1/4 resolution) and the targets (label resolution):

- class cost: ``-softmax(cls_logits)[q, class_k]``;
- mask cost: mean over the points of sigmoid binary cross-entropy of mask logit q against
  target mask k;
- dice cost: ``1 - (2 * sum(p * t) + 1) / (sum(p) + sum(t) + 1)`` with ``p = sigmoid(logit)``;

cost = w_class * class + w_mask * mask + w_dice * dice, solved by
``scipy.optimize.linear_sum_assignment``. Costs are computed in float32 without autocast; NaN or
infinite costs are replaced by the largest float32 (with a warning) instead of failing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from vltseg_ros.errors import ConfigError
from vltseg_ros.training.point_sampling import point_sample, random_points
from vltseg_ros.training.targets import SemanticTarget

logger = logging.getLogger(__name__)

Match = tuple[Tensor, Tensor]
"""(pred_indices (M,) int64 ascending, target_indices (M,) int64) of one image."""


class HungarianMatcher:
    """One-to-one assignment of queries to targets with minimal total cost.

    Args:
        cost_class: weight of the class cost (>= 0).
        cost_mask: weight of the sigmoid cross-entropy mask cost (>= 0).
        cost_dice: weight of the dice cost (>= 0).
        num_points: P >= 1, uniform random points per image the mask costs are computed on.

    Raises:
        ConfigError: a negative weight, all weights zero, or ``num_points`` < 1.
    """

    def __init__(
        self,
        cost_class: float = 2.0,
        cost_mask: float = 5.0,
        cost_dice: float = 5.0,
        num_points: int = 12544,
    ) -> None:
        weights = (cost_class, cost_mask, cost_dice)
        if min(weights) < 0 or max(weights) == 0:
            raise ConfigError(
                f"matching cost weights must be >= 0 and not all 0, got class {cost_class}, "
                f"mask {cost_mask}, dice {cost_dice}"
            )
        if num_points < 1:
            raise ConfigError(f"num_points must be >= 1, got {num_points}")
        self.cost_class = cost_class
        self.cost_mask = cost_mask
        self.cost_dice = cost_dice
        self.num_points = num_points

    @torch.no_grad()
    def __call__(
        self,
        cls_logits: Tensor,
        mask_logits: Tensor,
        targets: Sequence[SemanticTarget],
        generator: torch.Generator | None = None,
    ) -> list[Match]:
        """Match the queries of every image to its targets.

        Args:
            cls_logits: (B, Q, C + 1) float class logits, last column no-object.
            mask_logits: (B, Q, h, w) float mask logits at any resolution.
            targets: B tuples (classes (K,) int64 in [0, C), masks (K, H, W) bool or float in
                [0, 1]), as from :func:`~vltseg_ros.training.targets.semantic_targets`.
            generator: source of the random points; None: torch's global RNG. One set of P
                points is drawn per image, in batch order.

        Returns:
            B tuples (pred_indices, target_indices), int64 on ``cls_logits``' device, each of
            length min(Q, K): query ``pred_indices[i]`` is matched to target
            ``target_indices[i]``; pred_indices ascending. Empty for an image without targets.

        Raises:
            ValueError: the shapes do not fit.
        """
        if cls_logits.dim() != 3 or mask_logits.dim() != 4:
            raise ValueError(
                f"need cls_logits (B, Q, C+1) and mask_logits (B, Q, h, w), got "
                f"{tuple(cls_logits.shape)} and {tuple(mask_logits.shape)}"
            )
        if cls_logits.shape[:2] != mask_logits.shape[:2] or len(targets) != cls_logits.shape[0]:
            raise ValueError(
                f"batch/query sizes differ: cls_logits {tuple(cls_logits.shape)}, mask_logits "
                f"{tuple(mask_logits.shape)}, {len(targets)} targets"
            )
        matches = []
        for b, (classes, masks) in enumerate(targets):
            if classes.numel() == 0:
                empty = torch.empty(0, dtype=torch.int64, device=cls_logits.device)
                matches.append((empty, empty.clone()))
                continue
            points = random_points(1, self.num_points, mask_logits.device, generator)[0]
            cost = self.cost_matrix(cls_logits[b], mask_logits[b], classes, masks, points)
            matches.append(_solve(cost, cls_logits.device))
        return matches

    def cost_matrix(
        self,
        cls_logits: Tensor,
        mask_logits: Tensor,
        classes: Tensor,
        masks: Tensor,
        points: Tensor,
    ) -> Tensor:
        """Weighted matching cost of one image.

        Args:
            cls_logits: (Q, C + 1) float class logits.
            mask_logits: (Q, h, w) float mask logits.
            classes: (K,) int64 target classes.
            masks: (K, H, W) bool or float target masks in [0, 1].
            points: (P, 2) float points (x, y) in [0, 1], used for predictions and targets.

        Returns:
            (Q, K) float32 cost.
        """
        with torch.autocast(device_type=cls_logits.device.type, enabled=False):
            probs = cls_logits.float().softmax(-1)
            class_cost = -probs[:, classes]
            pred = _sample(mask_logits, points)
            target = _sample(masks, points)
            # BCE(x, t) = softplus(x) - x * t, so the mean over the points of all pairs is
            # (sum softplus(x) - x @ t) / P: one softplus and one product.
            mask_cost = (F.softplus(pred).sum(-1)[:, None] - pred @ target.T) / pred.shape[1]
            pred = pred.sigmoid()
            dice_cost = 1.0 - (2.0 * pred @ target.T + 1.0) / (
                pred.sum(-1)[:, None] + target.sum(-1)[None, :] + 1.0
            )
            return (
                self.cost_class * class_cost
                + self.cost_mask * mask_cost
                + self.cost_dice * dice_cost
            )


def _sample(maps: Tensor, points: Tensor) -> Tensor:
    """(N, H, W) maps, (P, 2) points -> (N, P) float32 values."""
    maps = maps.float().unsqueeze(1)
    return point_sample(maps, points.unsqueeze(0).expand(maps.shape[0], -1, -1))[:, 0]


def _solve(cost: Tensor, device: torch.device) -> Match:
    """Minimal-cost assignment of a (Q, K) cost; indices on ``device``.

    NaN and infinite costs (from non-finite predictions, e.g. an fp16 overflow) become the
    largest float32, so such pairs are matched only when nothing else is left (as Hugging Face's
    matcher does); the loss of that step is then not finite either and a gradient scaler skips it.
    """
    if not torch.isfinite(cost).all():
        logger.warning("matching cost holds NaN or infinity: the predictions are not finite")
        big = torch.finfo(torch.float32).max
        cost = torch.nan_to_num(cost, nan=big, posinf=big, neginf=big)
    rows, cols = linear_sum_assignment(cost.cpu().double().numpy())
    return (
        torch.as_tensor(rows, dtype=torch.int64, device=device),
        torch.as_tensor(cols, dtype=torch.int64, device=device),
    )
