"""Median latency of ``Segmenter.predict`` per model and inference mode, as a Markdown table.

    .venv/bin/python bench/predict_latency.py [--models tiny vit-b-16] [--repeats 5]

The frame is a real 1024x512 Cityscapes frame from ../shared/data when present, else a
synthetic street scene of that size. Slide mode uses each model's crop / stride (512 / 426 for
the built-in models); whole mode runs the frame once at its own size. All rows are measured in
one run, so their ratios are comparable; absolute numbers depend on the machine (printed).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from vltseg_ros.data.scenes import synthetic_street_scene
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.inference.tiling import tile

FRAME = (
    Path(__file__).resolve().parents[2]
    / "shared/data/frames/cityscapes_zurich_000087_000019_leftImg8bit_1024x512.png"
)


def load_frame() -> tuple[np.ndarray, str]:
    """A (512, 1024, 3) uint8 RGB frame and a description of where it came from."""
    if FRAME.is_file():
        return cv2.imread(str(FRAME), cv2.IMREAD_COLOR)[..., ::-1].copy(), FRAME.name
    return synthetic_street_scene(512, 1024, seed=0)[0], "synthetic street scene 1024x512"


def measure(segmenter: Segmenter, frame: np.ndarray, repeats: int) -> tuple[float, int]:
    """Median seconds of ``predict`` over ``repeats`` runs after one warm-up, and crop count."""
    segmenter.predict(frame)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        segmenter.predict(frame)
        if segmenter.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    with torch.inference_mode():
        crops = len(tile(torch.zeros(3, *frame.shape[:2]), segmenter.inference).inputs)
    return statistics.median(times), crops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny", "vit-b-16"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()

    frame, source = load_frame()
    cpu = platform.processor() or platform.machine()
    print(
        f"machine: {platform.node()} {cpu}, {os.cpu_count()} cores, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads, device {args.device}"
        + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else "")
    )
    print(f"frame: {source}, {frame.shape[1]}x{frame.shape[0]}; {args.repeats} runs, median\n")
    print("| model | mode | network inputs | input size | latency (s) | vs slide |")
    print("|---|---|---|---|---|---|")
    for name in args.models:
        torch.manual_seed(0)
        segmenter = Segmenter.load(
            name, device=args.device, precision=args.precision, batch_size=args.batch_size
        )
        slide = dataclasses.replace(segmenter.config.inference, mode="slide")
        whole = dataclasses.replace(slide, mode="whole", whole_size=frame.shape[:2])
        baseline = None
        for inference in (slide, whole):
            segmenter.inference = inference
            seconds, crops = measure(segmenter, frame, args.repeats)
            baseline = baseline or seconds
            size = "x".join(map(str, inference.input_size))
            print(
                f"| {name} | {inference.mode} | {crops} | {size} | {seconds:.3f} | "
                f"{seconds / baseline:.2f} |"
            )


if __name__ == "__main__":
    main()
