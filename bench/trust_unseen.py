"""Anomaly scores on the hard unseen objects, per scenario and pooled: AUROC, AP, FPR95.

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.trust_unseen [--checkpoint PATH] \\
        [--seeds START COUNT] [--size H W]

Scenes ``START`` ... ``START + COUNT - 1`` of :func:`synthetic_street_scene` (no void objects,
256x512 by default: the demo model's input size, as test/test_trust_on_demo_model.py) each get
the objects of every scenario of :func:`paste_hard_unseen_objects` (pasted with the scene's
seed) and, for reference, the shipped striped animals (:func:`paste_unseen_objects`, not
pooled). Each frame is segmented once per method of rba, max_logit, entropy (max probability
comes with each: the same forward pass); the pixels of all frames of a row are pooled
(:class:`AnomalyScoring`). Use seeds the checkpoint never trained on (>= 300000 for the demo
model). Prints a Markdown table. On a 2-core AMD EPYC with OMP_NUM_THREADS=1, ~0.55 s per
forward pass: ~10 s per seed (6 rows x 3 passes), ~3.5 min for the default 20 seeds alone
(~9 min beside a training run and a test run).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.machine import describe_machine
from vltseg_ros.config.anomaly_methods import ANOMALY_METHODS
from vltseg_ros.data.scenes import synthetic_street_scene
from vltseg_ros.data.unseen_objects import (
    HARD_SCENARIOS,
    paste_hard_unseen_objects,
    paste_unseen_objects,
)
from vltseg_ros.demo_model import DEMO_CHECKPOINT
from vltseg_ros.evaluation.anomaly import AnomalyMetrics
from vltseg_ros.evaluation.anomaly_eval import AnomalyScoring
from vltseg_ros.evaluation.report import BASELINE_METHOD
from vltseg_ros.inference.predictor import Segmenter

_PASSES = tuple(m for m in ANOMALY_METHODS if m != BASELINE_METHOD)
_REFERENCE = "animals (shipped kind)"
_POOLED = "**pooled hard**"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(DEMO_CHECKPOINT))
    parser.add_argument("--seeds", type=int, nargs=2, default=(400000, 20), metavar=("START", "N"))
    parser.add_argument("--size", type=int, nargs=2, default=(256, 512), metavar=("H", "W"))
    parser.add_argument("--scenarios", nargs="+", default=list(HARD_SCENARIOS))
    args = parser.parse_args()
    start, count = args.seeds
    segmenter = Segmenter.load(checkpoint=args.checkpoint)
    rows = [_REFERENCE, *args.scenarios, _POOLED]
    scoring = {row: {m: AnomalyScoring(m) for m in _PASSES} for row in rows}
    shares: dict[str, list[float]] = {row: [] for row in rows}
    began = time.perf_counter()
    for seed in range(start, start + count):
        image, labels = synthetic_street_scene(*args.size, seed=seed)
        for row in (_REFERENCE, *args.scenarios):
            if row == _REFERENCE:
                pasted, _, mask = paste_unseen_objects(image, labels, seed=seed)
            else:
                pasted, _, mask = paste_hard_unseen_objects(image, labels, seed, row)
            truth = mask.astype(np.uint8)
            targets = (row,) if row == _REFERENCE else (row, _POOLED)
            for method in _PASSES:
                result = segmenter.predict(pasted, **scoring[row][method].predict_options())
                for target in targets:
                    scoring[target][method].add(result, truth)
            for target in targets:
                shares[target].append(float(mask.mean()))
    lines = []
    for row in rows:
        metrics = {m: s.accumulators[m].result() for m, s in scoring[row].items()}
        metrics[BASELINE_METHOD] = scoring[row][_PASSES[0]].accumulators[BASELINE_METHOD].result()
        cells = " | ".join(_cell(metrics[m]) for m in ANOMALY_METHODS)
        frames = scoring[row][_PASSES[0]].frames
        lines.append(f"| {row} | {frames} | {100 * np.mean(shares[row]):.2f} | {cells} |")
    seconds = time.perf_counter() - began
    print(
        f"machine: {describe_machine()}\ncheckpoint {args.checkpoint}; scenes "
        f"{args.size[0]}x{args.size[1]}, seeds {start}-{start + count - 1}; {seconds:.0f} s\n"
    )
    print("Each cell: AUROC / AP (%) / FPR at 95 % TPR (%); higher score = more anomalous.\n")
    print(f"| objects | frames | anomaly pixels (%) | {' | '.join(ANOMALY_METHODS)} |")
    print("|---|---:|---:|" + "---|" * len(ANOMALY_METHODS))
    print("\n".join(lines))


def _cell(metrics: AnomalyMetrics) -> str:
    return (
        f"{metrics.auroc:.3f} / {100 * metrics.average_precision:.1f} / "
        f"{100 * metrics.fpr_at_95_tpr:.1f}"
    )


if __name__ == "__main__":
    main()
