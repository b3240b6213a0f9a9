"""Cost and accuracy of the two ways results reach the camera resolution (``upsample``).

    .venv/bin/python bench/upsample_modes.py [--repeats 5]

"scores" resizes the 19 class-score maps bilinearly to the camera resolution and takes the
argmax there (the reference's order); "labels" takes the argmax at model resolution and resizes
labels and confidence by nearest neighbour. To measure the accuracy cost without trained
weights, the model-resolution scores are those of a perfect model: the one-hot ground truth of
the real Cityscapes frame in ../shared/data (a synthetic scene when absent), area-averaged down
to the model resolution (soft class boundaries, as real scores have). mIoU is against the
full-resolution ground truth; time is ``scores_to_result`` on this machine's CPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vltseg_ros.data.scenes import synthetic_street_scene
from vltseg_ros.inference.result import scores_to_result

GT = (
    Path(__file__).resolve().parents[2]
    / "shared/data/frames/cityscapes_frankfurt_000001_055709_gtFine_labelTrainIds.png"
)
NUM_CLASSES = 19


def ground_truth() -> tuple[np.ndarray, str]:
    """(1024, 2048) uint8 train ids (255 = ignore) and where they came from."""
    if GT.is_file():
        return cv2.imread(str(GT), cv2.IMREAD_UNCHANGED), GT.name
    return synthetic_street_scene(1024, 2048, seed=0)[1], "synthetic street scene"


def miou(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """Mean IoU over classes present in gt or pred, and pixel accuracy (ignore 255)."""
    valid = gt < NUM_CLASSES
    confusion = np.bincount(
        gt[valid].astype(np.int64) * NUM_CLASSES + pred[valid], minlength=NUM_CLASSES**2
    ).reshape(NUM_CLASSES, NUM_CLASSES)
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    present = union > 0
    return float((tp[present] / union[present]).mean()), float(tp.sum() / confusion.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    gt, source = ground_truth()
    onehot = F.one_hot(torch.from_numpy(np.where(gt < NUM_CLASSES, gt, 0)).long(), NUM_CLASSES)
    onehot = onehot.permute(2, 0, 1).float()[None]
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, CPU, torch "
        f"{torch.__version__}; ground truth: {source}, output 1024x2048; "
        f"{args.repeats} runs, median\n"
    )
    print("| model resolution | upsample | time (ms) | mIoU | pixel acc. |")
    print("|---|---|---|---|---|")
    for factor in (2, 4):
        size = (gt.shape[0] // factor, gt.shape[1] // factor)
        raw = F.interpolate(onehot, size=size, mode="area")[0] + 1e-3
        for mode in ("scores", "labels"):
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                result = scores_to_result(raw, gt.shape, resize=mode)
                times.append(time.perf_counter() - start)
            m, acc = miou(result.labels, gt)
            print(
                f"| {size[0]}x{size[1]} | {mode} | {statistics.median(times) * 1e3:.0f} | "
                f"{m:.4f} | {acc:.4f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
