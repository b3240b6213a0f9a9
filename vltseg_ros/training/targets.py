"""Semantic label maps to Mask2Former targets: one class id and one binary mask per class.

This is MMSegmentation's ``Mask2FormerHead._seg_data_to_instance_data`` for semantic
segmentation: every class present in an image becomes one target whose mask covers all its
pixels. Pixels equal to ``ignore_index`` (unlabeled, and the padding of crops) belong to no mask:
they are 0 in every target mask and get no other special treatment. The mask losses therefore
push predicted masks towards 0 there, exactly as the reference does; the matcher and the mask
losses see them as ordinary background points.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vltseg_ros.evaluation.metrics import check_classes

SemanticTarget = tuple[Tensor, Tensor]
"""(classes (K,) int64 sorted ascending, masks (K, H, W) bool) of one image."""


def semantic_targets(
    labels: Tensor, num_classes: int, ignore_index: int = 255
) -> list[SemanticTarget]:
    """Split a batch of label maps into per-class binary masks.

    Args:
        labels: (B, H, W) integer train ids in [0, num_classes) or ``ignore_index``.
        num_classes: number of classes C (without the no-object class).
        ignore_index: label of pixels that belong to no class.

    Returns:
        B tuples (classes, masks): classes (K,) int64 on ``labels``' device, the K classes
        present in the image sorted ascending (K = 0 for an image that is all ignore);
        masks (K, H, W) bool, ``masks[k] = labels == classes[k]``. The masks do not overlap and
        leave the ignore pixels uncovered.

    Raises:
        ValueError: ``labels`` is not a 3-D integer tensor, ``num_classes`` < 1,
            ``ignore_index`` is a class id, or a label is neither a class id nor
            ``ignore_index`` (for Cityscapes: labelIds were not converted to trainIds).
    """
    if labels.dim() != 3 or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(
            f"labels must be a (B, H, W) integer tensor, got {tuple(labels.shape)} {labels.dtype}"
        )
    check_classes(num_classes, ignore_index)
    targets = []
    for label_map in labels:
        present = torch.unique(label_map)
        classes = present[present != ignore_index].long()
        bad = classes[(classes < 0) | (classes >= num_classes)]
        if bad.numel() > 0:
            raise ValueError(
                f"label map holds values {bad.tolist()} that are neither class ids "
                f"[0, {num_classes}) nor ignore_index {ignore_index}; convert the labels to "
                "train ids (e.g. Cityscapes labelIds -> trainIds) or fix num_classes"
            )
        masks = label_map.unsqueeze(0) == classes.to(label_map.dtype)[:, None, None]
        targets.append((classes, masks))
    return targets
