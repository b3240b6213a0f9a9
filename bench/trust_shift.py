"""Does the domain-shift score follow the damage a shift does? Score against mIoU drop.

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.trust_shift [--checkpoint PATH]
        [--calibration-seeds 310000 8] [--windows 300000 300100] [--frames 4]

Calibrates the checkpoint (``fit_calibration``, as ``vltseg calibrate``) on clean held-out
generated street scenes, then, for each window of scenes (``--frames`` consecutive seeds from
each ``--windows`` start), segments the clean window and every corruption kind
(:data:`vltseg_ros.data.corruptions.SHIFT_KINDS`) at strengths 0.25, 0.5, 0.75 and 1, the way
the node does (``summarize``, the calibration's anomaly method and threshold), and feeds the
frames' summaries to a :class:`ShiftMonitor` (threshold 3). Per condition it prints the mIoU
(over the classes present, :class:`ConfusionMatrix`), candidate per-frame signals (window
means: confidence, anomalous share, mean anomaly score, total-variation distance of the
predicted-class histogram from the calibration's), the score before issue 24 (``old``: the
larger z-score of confidence and anomalous share, spreads floored at 0.02 and 0.005, still the
score without a class term), the score's terms, the score and the verdict; then, per window,
the Spearman rank correlation of each signal with the mIoU drop over all conditions (the clean
one included), the kinds whose score is not monotone in strength, and whether full-strength
motion blur warns. About 5 minutes on 2 CPU cores with the demo model.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

from bench.machine import describe_machine
from vltseg_ros.config.model_config import Calibration
from vltseg_ros.data.corruptions import SHIFT_KINDS, shift_domain
from vltseg_ros.data.scenes import synthetic_street_scene
from vltseg_ros.demo_model import DEMO_CHECKPOINT
from vltseg_ros.evaluation.fit_calibration import fit_calibration
from vltseg_ros.evaluation.metrics import ConfusionMatrix
from vltseg_ros.inference.domain_shift import ShiftMonitor, ShiftTerms, shift_score
from vltseg_ros.inference.predictor import Segmenter

STRENGTHS = (0.25, 0.5, 0.75, 1.0)
SIZE = (256, 512)
SIGNALS = ("uncertainty", "anomalous", "anomaly_mean", "tv", "old", "classes", "score")
"""Signals correlated with the mIoU drop (uncertainty = 1 - mean confidence)."""


@dataclass(frozen=True)
class Condition:
    """One corrupted window: its mIoU (%), window-mean signals, score terms and verdict."""

    kind: str
    strength: float
    miou: float
    signals: dict[str, float]
    terms: ShiftTerms
    shifted: bool


def measure(
    segmenter: Segmenter,
    reference: Calibration,
    scenes: list[tuple[int, np.ndarray, np.ndarray]],
    change: Callable[[np.ndarray, int], np.ndarray],
) -> tuple[float, dict[str, float], ShiftTerms, bool]:
    """Segment a window of (seed, RGB image, train-id labels) scenes, each through ``change``;
    returns its mIoU (%), window-mean signals, the monitor's terms and verdict."""
    options = {
        "summarize": True,
        "anomaly_method": reference.anomaly_method,
        "anomaly_threshold": reference.anomaly_threshold,
        "return_anomaly": True,
    }
    matrix = ConfusionMatrix(segmenter.class_set.num_classes, segmenter.class_set.ignore_index)
    monitor = ShiftMonitor(reference, window=60.0, threshold=3.0)
    anomaly_means, histograms = [], []
    for t, (seed, image, labels) in enumerate(scenes):
        result = segmenter.predict(change(image, seed), **options)
        summary = result.summary
        matrix.update(result.labels, labels)
        monitor.add(
            float(t), summary.mean_confidence, summary.anomaly_fraction, summary.class_fraction
        )
        anomaly_means.append(float(result.anomaly.mean()))
        histograms.append(summary.class_fraction)
    status = monitor.status()
    shares = np.mean(histograms, axis=0)
    signals = {
        "conf": status.mean_confidence,
        "uncertainty": 1.0 - status.mean_confidence,
        "anomalous": status.anomaly_fraction,
        "anomaly_mean": float(np.mean(anomaly_means)),
        "tv": 0.5 * float(np.abs(shares - np.asarray(reference.class_fraction)).sum()),
        "old": shift_score(
            status.mean_confidence, status.anomaly_fraction, reference, compare_classes=False
        ),
        "classes": status.terms.classes,
        "score": status.score,
    }
    return 100.0 * matrix.miou(), signals, status.terms, status.shifted


def run_window(
    segmenter: Segmenter, reference: Calibration, start: int, frames: int
) -> list[Condition]:
    """The clean window of seeds ``start``.. and every kind x strength of it."""
    scenes = [(s, *synthetic_street_scene(*SIZE, seed=s)) for s in range(start, start + frames)]
    conditions = [Condition("none", 0.0, *measure(segmenter, reference, scenes, _unchanged))]
    for kind, strength in itertools.product(SHIFT_KINDS, STRENGTHS):

        def change(image: np.ndarray, seed: int, k: str = kind, s: float = strength) -> np.ndarray:
            return shift_domain(image, k, s, seed=seed)

        conditions.append(
            Condition(kind, strength, *measure(segmenter, reference, scenes, change))
        )
    return conditions


def _unchanged(image: np.ndarray, seed: int) -> np.ndarray:
    return image


def report(conditions: list[Condition], start: int, frames: int) -> None:
    """Print the window's table, Spearman correlations, monotonicity and the blur verdict."""
    clean = conditions[0].miou
    print(f"\n### Window: seeds {start}-{start + frames - 1}\n")
    print(
        "| kind | strength | mIoU | mean confidence | anomalous | mean anomaly | class TV | "
        "old score | confidence term | anomaly term | class term | score | verdict |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for c in conditions:
        s, t = c.signals, c.terms
        print(
            f"| {c.kind} | {c.strength:g} | {c.miou:.1f} | {s['conf']:.4f} | "
            f"{100 * s['anomalous']:.1f} % | {s['anomaly_mean']:.3f} | {s['tv']:.3f} | "
            f"{s['old']:.1f} | {t.confidence:.2f} | {t.anomaly:.2f} | {t.classes:.2f} | "
            f"{t.score:.2f} | {'WARN' if c.shifted else 'OK'} |"
        )
    drops = [clean - c.miou for c in conditions]
    rhos = {
        name: spearmanr([c.signals[name] for c in conditions], drops).statistic for name in SIGNALS
    }
    print(
        f"\nSpearman with the mIoU drop over {len(conditions)} conditions: "
        + ", ".join(f"{name} {rho:.3f}" for name, rho in rhos.items())
    )
    print(f"not monotone in strength (score): {', '.join(_not_monotone(conditions)) or 'none'}")
    blur = next(c for c in conditions if (c.kind, c.strength) == ("motion_blur", 1.0))
    print(f"full-strength motion blur: score {blur.terms.score:.2f}, {_verdict(blur)}")


def _not_monotone(conditions: list[Condition]) -> list[str]:
    """Kinds whose score falls somewhere from the clean window to strength 1."""
    clean = conditions[0].terms.score
    kinds = []
    for kind in SHIFT_KINDS:
        scores = [clean] + [c.terms.score for c in conditions if c.kind == kind]
        if any(b < a for a, b in itertools.pairwise(scores)):
            kinds.append(kind)
    return kinds


def _verdict(condition: Condition) -> str:
    return "WARN" if condition.shifted else "OK"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(DEMO_CHECKPOINT))
    parser.add_argument(
        "--calibration-seeds", type=int, nargs=2, default=(310000, 8), metavar=("START", "N")
    )
    parser.add_argument("--windows", type=int, nargs="+", default=(300000, 300100))
    parser.add_argument("--frames", type=int, default=4)
    args = parser.parse_args()
    segmenter = Segmenter.load(checkpoint=args.checkpoint)
    start, count = args.calibration_seeds
    clean = [
        (image, "rgb", labels)
        for image, labels in (
            synthetic_street_scene(*SIZE, seed=s) for s in range(start, start + count)
        )
    ]
    fit = fit_calibration(segmenter, lambda: clean, source="held-out scenes", progress=False)
    reference = fit.calibration
    print(f"machine: {describe_machine()}")
    print(
        f"checkpoint {args.checkpoint}; calibrated on seeds {start}-{start + count - 1}: "
        f"temperature {reference.temperature:.3f}, mean confidence "
        f"{reference.mean_confidence:.4f}, anomalous pixels "
        f"{100 * reference.anomaly_fraction:.2f} % ({reference.anomaly_method} > "
        f"{reference.anomaly_threshold:g}); frames {SIZE[0]}x{SIZE[1]}"
    )
    for window in args.windows:
        report(run_window(segmenter, reference, window, args.frames), window, args.frames)


if __name__ == "__main__":
    main()
