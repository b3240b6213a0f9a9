"""Pixel-level segmentation metrics: a confusion matrix with per-class IoU, mIoU, accuracy.

Conventions (the same as cityscapesscripts' ``evalPixelLevelSemanticLabeling``):

- target pixels equal to ``ignore_index`` (255) are not evaluated at all;
- a prediction outside the classes (``>= num_classes``, e.g. 255 = below the confidence
  threshold) is "unlabeled": a false negative of the target class, a false positive of none;
- IoU of class c = TP / (TP + FP + FN), NaN where c occurs neither in the (non-ignored) target
  nor in the prediction on non-ignored pixels;
- mIoU is the mean over the classes whose IoU is not NaN.
"""

from __future__ import annotations

import numpy as np


def check_classes(num_classes: int, ignore_index: int) -> None:
    """Validate a label space: train ids 0 .. ``num_classes`` - 1 plus ``ignore_index``.

    Shared by the metrics and the training targets (:mod:`vltseg_ros.training.targets`).

    Raises:
        ValueError: ``num_classes`` < 1, or ``ignore_index`` is a class id.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if 0 <= ignore_index < num_classes:
        raise ValueError(
            f"ignore_index {ignore_index} is a class id (num_classes {num_classes}); "
            "use a value outside the classes such as 255"
        )


class ConfusionMatrix:
    """Accumulates (target class, predicted class) pixel counts over frames.

    Args:
        num_classes: number of classes C (train ids 0 .. C-1).
        ignore_index: target value of pixels that are not evaluated.

    Attributes:
        matrix: (C, C + 1) int64 counts; rows are target classes, columns predicted classes,
            the last column counts "unlabeled" predictions (any value >= C).
    """

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        check_classes(num_classes, ignore_index)
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes + 1), dtype=np.int64)

    def update(self, prediction: np.ndarray, target: np.ndarray) -> None:
        """Add one frame.

        Args:
            prediction: (H, W) uint8 predicted train ids; values >= num_classes are unlabeled.
            target: (H, W) uint8 ground-truth train ids; ``ignore_index`` pixels are skipped.

        Raises:
            ValueError: the shapes differ, an array is not 2-D integer, or the target holds
                a value that is neither a class id nor ``ignore_index``.
        """
        prediction = np.asarray(prediction)
        target = np.asarray(target)
        if prediction.shape != target.shape:
            raise ValueError(
                f"prediction shape {prediction.shape} differs from target shape {target.shape}"
            )
        for name, array in (("prediction", prediction), ("target", target)):
            if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
                raise ValueError(
                    f"{name} must be a 2-D integer (H, W) array, got {array.dtype} {array.shape}"
                )
        valid = target != self.ignore_index
        classes = target[valid].astype(np.int64)
        predicted = prediction[valid].astype(np.int64)
        bad = (classes < 0) | (classes >= self.num_classes)
        if bad.any():
            raise ValueError(
                f"target holds values {sorted(np.unique(classes[bad]).tolist())[:10]} that are "
                f"neither class ids 0-{self.num_classes - 1} nor the ignore index "
                f"{self.ignore_index} (train ids expected, not Cityscapes labelIds?)"
            )
        unlabeled = self.num_classes
        predicted[(predicted < 0) | (predicted >= unlabeled)] = unlabeled
        width = unlabeled + 1
        counts = np.bincount(classes * width + predicted, minlength=self.num_classes * width)
        self.matrix += counts.reshape(self.num_classes, width)

    def merge(self, other: ConfusionMatrix) -> None:
        """Add another matrix's counts (same number of classes and ignore index)."""
        if (other.num_classes, other.ignore_index) != (self.num_classes, self.ignore_index):
            raise ValueError(
                f"cannot merge a {other.num_classes}-class matrix (ignore {other.ignore_index}) "
                f"into a {self.num_classes}-class one (ignore {self.ignore_index})"
            )
        self.matrix += other.matrix

    @property
    def pixels(self) -> int:
        """Number of evaluated (non-ignored target) pixels."""
        return int(self.matrix.sum())

    def iou(self) -> np.ndarray:
        """(C,) float64 intersection over union per class; NaN where the class is absent."""
        true_pos = np.diag(self.matrix[:, : self.num_classes]).astype(np.float64)
        false_neg = self.matrix.sum(axis=1) - true_pos
        false_pos = self.matrix[:, : self.num_classes].sum(axis=0) - true_pos
        union = true_pos + false_pos + false_neg
        out = np.full(self.num_classes, np.nan)
        np.divide(true_pos, union, out=out, where=union > 0)
        return out

    def miou(self) -> float:
        """Mean IoU over the classes present (non-NaN IoU); NaN when none is."""
        iou = self.iou()
        present = iou[~np.isnan(iou)]
        return float(present.mean()) if present.size else float("nan")

    def pixel_accuracy(self) -> float:
        """Correct pixels / evaluated pixels; NaN when no pixel was evaluated."""
        total = self.pixels
        if total == 0:
            return float("nan")
        return float(np.trace(self.matrix[:, : self.num_classes]) / total)

    def row_normalized(self) -> np.ndarray:
        """(C, C + 1) float64: each row divided by its sum (rows of absent classes are 0)."""
        rows = self.matrix.sum(axis=1, keepdims=True).astype(np.float64)
        out = np.zeros(self.matrix.shape, dtype=np.float64)
        np.divide(self.matrix, rows, out=out, where=rows > 0)
        return out
