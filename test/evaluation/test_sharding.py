"""What the processes of a torchrun launch add up: confusion matrices and calibration counts
summed exactly, anomaly pixels pooled (the same metrics while they fit the cap), against one
accumulator given every frame. The launches themselves: test/cli/test_*_torchrun.py."""

from __future__ import annotations

import numpy as np
import pytest

from vltseg_ros.errors import ConfigError
from vltseg_ros.evaluation.anomaly import AnomalyAccumulator
from vltseg_ros.evaluation.calibration import CalibrationAccumulator
from vltseg_ros.evaluation.dataset_eval import DatasetScores
from vltseg_ros.evaluation.metrics import ConfusionMatrix
from vltseg_ros.evaluation.sharding import gather_anomaly, gather_scores, merge_scores
from vltseg_ros.parallel.distributed import DistributedContext, shard

SHAPE = (12, 16)


def _frames(count: int) -> list[dict[str, np.ndarray]]:
    """Random frames: prediction, label (4 classes + 255), confidence, anomaly score, truth."""
    rng = np.random.default_rng(3)
    frames = []
    for _ in range(count):
        label = rng.choice(np.array([0, 1, 2, 3, 255], np.uint8), SHAPE)
        prediction = np.where(rng.random(SHAPE) < 0.7, label, rng.integers(0, 4, SHAPE))
        truth = rng.choice(np.array([0, 0, 1, 255], np.uint8), SHAPE)
        frames.append(
            {
                "prediction": np.where(prediction == 255, 0, prediction).astype(np.uint8),
                "label": label,
                "confidence": rng.random(SHAPE).astype(np.float32),
                "score": (truth == 1) * 0.3 + rng.random(SHAPE).astype(np.float32),
                "truth": truth,
            }
        )
    return frames


def _scores(frames: list[dict[str, np.ndarray]], domain: str = "d") -> DatasetScores:
    matrix, calibration = ConfusionMatrix(4, 255), CalibrationAccumulator()
    for frame in frames:
        matrix.update(frame["prediction"], frame["label"])
        valid = frame["label"] != 255
        calibration.add(frame["confidence"], frame["prediction"] == frame["label"], valid)
    return DatasetScores({domain: matrix}, {domain: calibration})


def test_shares_are_every_world_size_th_item() -> None:
    items = list(range(7))
    shares = [shard(items, DistributedContext(rank=r, world_size=3)) for r in range(3)]
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]
    assert shard(items, DistributedContext()) == items


def test_summed_shares_equal_one_pass_over_all_frames() -> None:
    frames = _frames(7)
    whole = _scores(frames)
    parts = [_scores(frames[r::3]) for r in range(3)]
    merged = merge_scores([parts[0], None, parts[1], parts[2]])  # None: an empty share
    assert np.array_equal(merged.matrices["d"].matrix, whole.matrices["d"].matrix)
    assert merged.matrices["d"].matrix.dtype == np.int64
    calibration, alone = merged.calibration["d"], whole.calibration["d"]
    assert np.array_equal(calibration.counts, alone.counts)
    assert np.array_equal(calibration.correct_counts, alone.correct_counts)
    np.testing.assert_allclose(calibration.confidence_sums, alone.confidence_sums, rtol=1e-14)
    assert abs(calibration.result().ece - alone.result().ece) <= 1e-14
    assert merged.matrices["d"].miou() == whole.matrices["d"].miou()
    # the parts are left as they were
    assert parts[0].matrices["d"].pixels == _scores(frames[0::3]).matrices["d"].pixels
    # domains only some shares saw are kept, sorted
    other = merge_scores([_scores(frames[:2], "z"), _scores(frames[2:3], "a")])
    assert list(other.matrices) == list(other.calibration) == ["a", "z"]
    # alone, gathering is merging its own scores
    gathered = gather_scores(whole)
    assert np.array_equal(gathered.matrices["d"].matrix, whole.matrices["d"].matrix)
    assert gathered.matrices["d"] is not whole.matrices["d"]


def _pool(frames: list[dict[str, np.ndarray]], max_pixels: int, seed: int) -> AnomalyAccumulator:
    accumulator = AnomalyAccumulator(max_pixels, seed)
    for frame in frames:
        accumulator.add(frame["score"], frame["truth"])
    return accumulator


def test_pooled_anomaly_shares_give_the_metrics_of_one_pool_under_the_cap() -> None:
    frames = _frames(5)
    whole = _pool(frames, 10_000, 0).result()
    merged = _pool(frames[0::2], 10_000, 0)
    merged.merge(_pool(frames[1::2], 10_000, 1))
    assert merged.result() == whole  # AUROC, AP, FPR95 and the pixel counts, exactly
    with pytest.raises(ConfigError, match="give both the same max_pixels"):
        merged.merge(AnomalyAccumulator(99))


def test_pooled_anomaly_shares_over_the_cap_keep_a_sample_of_all_pixels() -> None:
    frames = _frames(6)
    exact = _pool(frames, 10_000, 0).result()
    merged = _pool(frames[0::2], 300, 0)
    merged.merge(_pool(frames[1::2], 300, 1))
    result = merged.result()
    assert result.sampled_pixels == 300 < result.pixels == exact.pixels
    assert result.anomaly_pixels == exact.anomaly_pixels  # counted over all pixels
    assert abs(result.auroc - exact.auroc) < 0.1  # a uniform sample: close, not equal
    # adding frames after a merge keeps the sample at the cap
    merged.add(frames[0]["score"], frames[0]["truth"])
    assert merged.result().sampled_pixels == 300


def test_gather_anomaly_alone_is_its_own_pool() -> None:
    from vltseg_ros.evaluation.anomaly_eval import AnomalyScoring

    scoring = AnomalyScoring("max_probability")
    assert gather_anomaly(scoring) is scoring
