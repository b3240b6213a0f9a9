"""``vltseg evaluate`` under torchrun: 2 gloo processes on the CPU, each scoring every other
frame, give the reports one process gives, the confusion matrices bit for bit.

The demo model on 5 generated scenes with unseen objects (a data set and an anomaly set); both
runs use ``--batch-size 1``, so every frame goes through the network alone, as one process
computes it (with larger batches a frame's class scores can differ in their last float bits
with the frames that share its batch, which differ between the runs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from test.cli.torchrun import torchrun
from vltseg_ros.cli.main import main


def _read(out: Path, path: str) -> dict:
    return json.loads((out / path).read_text())


def test_two_gloo_processes_give_one_process_reports(tmp_path: Path) -> None:
    scenes = tmp_path / "scenes"
    make = ["make-scenes", str(scenes), "--count", "5", "--seed", "100000", "--size", "256x128"]
    assert main([*make, "--split", "val", "--unseen-objects", "animals"]) == 0
    args = ["evaluate", "--model", "synthetic-scenes-demo", "--batch-size", "1"]
    args += ["--dataset", f"cityscapes:{scenes}", "--anomaly", f"road_anomaly21:{scenes}"]
    done = torchrun([*args, "--out", str(tmp_path / "two")], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    two, one = _read(tmp_path / "two", "summary.json"), _read(tmp_path / "one", "summary.json")

    assert (one["processes"], two["processes"]) == (1, 2)
    assert list(two["domains"]) == list(one["domains"]) == ["cityscapes"]
    mine, theirs = (
        _read(tmp_path / "one", "cityscapes/report.json"),
        _read(tmp_path / "two", "cityscapes/report.json"),
    )
    assert (mine["processes"], theirs["processes"]) == (1, 2)
    assert theirs["confusion"]["matrix"] == mine["confusion"]["matrix"]  # bit for bit
    assert theirs["frames"] == mine["frames"] == 5
    assert theirs["pixels"] == mine["pixels"] > 0
    assert 0.5 < mine["miou"] == theirs["miou"]  # a learned model: a matrix worth comparing
    for key in ("pixel_accuracy", "iou"):
        assert theirs[key] == mine[key], key
    split, alone = theirs["calibration"], mine["calibration"]
    for key in ("pixels", "bin_counts", "bin_accuracy"):  # from int64 counts: exact
        assert split[key] == alone[key], key
    # the per-bin confidence sums are float64 sums added in another order
    confidences = [split["bin_confidence"], alone["bin_confidence"]]
    assert np.allclose(
        *(np.array(c, dtype=float) for c in confidences), rtol=1e-14, atol=0, equal_nan=True
    )
    assert abs(theirs["ece"] - mine["ece"]) <= 1e-12
    assert "| processes | 2 |" in (tmp_path / "two" / "cityscapes" / "report.md").read_text()

    split, alone = two["anomaly"]["road_anomaly21"], one["anomaly"]["road_anomaly21"]
    assert split["frames"] == alone["frames"] == 5 and alone["anomaly_pixels"] > 0
    for key in ("pixels", "anomaly_pixels", "auroc", "average_precision", "fpr_at_95_tpr"):
        assert split[key] == alone[key], key  # all pixels pooled: the same metrics exactly
    assert _read(tmp_path / "two", "anomaly/road_anomaly21/report.json")["processes"] == 2
    assert "processes: 2" in (tmp_path / "two" / "summary.md").read_text()
    assert "Traceback" not in done.stderr
