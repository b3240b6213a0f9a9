"""What the per-pixel anomaly score costs per frame, measured side by side with the frame.

    .venv/bin/python -m bench.anomaly_cost [--models tiny vit-b-16] [--repeats 5] [--device cpu]

For each model, one camera frame (1024x2048 by default, a generated street scene) is segmented
the way the node does (``summarize``, labels and confidence at the frame's resolution). Beside
it, interleaved, ``--repeats`` times: the post-processing of that frame's raw scores
(:func:`scores_to_result`, as the Segmenter runs it) without and with each anomaly method; the
difference is the method's cost, given as a share of the whole frame (budget: at most 2 %).
The last column is the end-to-end difference of whole frames with and without rba (noisier:
frame times vary by more than the score costs). Random weights (timing does not depend on
them).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench.machine import describe_machine
from vltseg_ros.config.anomaly_methods import ANOMALY_METHODS
from vltseg_ros.data.scenes import synthetic_street_scene
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.inference.result import scores_to_result


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny"])
    parser.add_argument("--size", type=int, nargs=2, default=(1024, 2048), metavar=("H", "W"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    image, _ = synthetic_street_scene(*args.size, seed=0)
    print(
        f"machine: {describe_machine()}; frame {args.size[0]}x{args.size[1]}, device "
        f"{args.device}, {args.repeats} interleaved runs, median\n"
    )
    methods = " | ".join(f"{m} (ms, % of frame)" for m in ANOMALY_METHODS)
    print(f"| model | inference | frame (ms) | {methods} | frame with rba - without (ms) |")
    print("|---|---|---|" + "---|" * len(ANOMALY_METHODS) + "---|")
    for model in args.models:
        segmenter = Segmenter.load(model, device=args.device)
        with torch.inference_mode():
            raw = segmenter._run([segmenter.prepare(image).tiling])[0].result()
        variants = (None, *ANOMALY_METHODS)
        frames: dict[str | None, list[float]] = {None: [], "rba": []}
        post: dict[str | None, list[float]] = {v: [] for v in variants}
        segmenter.predict(image, summarize=True)  # warm-up
        for _ in range(args.repeats):
            for method in frames:
                frames[method].append(
                    _timed(
                        args.device,
                        segmenter.predict,
                        image,
                        summarize=True,
                        anomaly_method=method,
                    )
                )
            for method in variants:
                post[method].append(
                    _timed(
                        args.device,
                        scores_to_result,
                        raw,
                        tuple(args.size),
                        summarize=True,
                        anomaly_method=method,
                    )
                )
        base = statistics.median(frames[None])
        plain = statistics.median(post[None])
        cells = []
        for method in ANOMALY_METHODS:
            extra = statistics.median(post[method]) - plain
            cells.append(f"{extra * 1e3:.1f} ({100 * extra / base:.2f} %)")
        difference = (statistics.median(frames["rba"]) - base) * 1e3
        shape = "x".join(map(str, raw.shape[-2:]))
        print(
            f"| {model} | {segmenter.inference.mode}, scores {shape} | {base * 1e3:.0f} | "
            f"{' | '.join(cells)} | {difference:+.0f} |",
            flush=True,
        )
        segmenter.close()


def _timed(device: str, function, *args, **kwargs) -> float:
    _synchronize(device)
    start = time.perf_counter()
    function(*args, **kwargs)
    _synchronize(device)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
