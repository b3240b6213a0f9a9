"""``vltseg calibrate``: the temperature it fits is stored in the checkpoint and applied by the
Segmenter, the domain-shift reference is the frames' own statistics, and bad use exits 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from test.training.shapes import write_shapes
from vltseg_ros.cli.main import main
from vltseg_ros.config.model_config import InferenceConfig
from vltseg_ros.data.factory import build_dataset
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.model.checkpoint import save_checkpoint
from vltseg_ros.model.segmentor import build_model

WHOLE = ["--inference.mode", "whole", "--inference.whole-size", "64", "64"]
INFERENCE = InferenceConfig("whole", whole_size=(64, 64))


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory) -> tuple[Path, Path, Path, dict]:
    root = tmp_path_factory.mktemp("calibrate")
    data = write_shapes(root / "data", count=4, size=64, split="val")
    checkpoint = save_checkpoint(build_model("tiny"), root / "tiny.safetensors")
    out, report = root / "calibrated.safetensors", root / "report"
    argv = ["calibrate", "--checkpoint", str(checkpoint), "--dataset", f"cityscapes:{data}"]
    assert main([*argv, "--out", str(out), "--report", str(report), *WHOLE]) == 0
    return checkpoint, out, data, json.loads((report / "calibration.json").read_text())


def test_the_calibrated_checkpoint_tempers_the_probabilities(calibrated) -> None:
    checkpoint, out, data, summary = calibrated
    fitted = summary["calibration"]
    assert 0.05 < fitted["temperature"] < 20 and fitted["temperature"] != pytest.approx(1.0)
    original = Segmenter.load(checkpoint=checkpoint, inference=INFERENCE)
    tempered = Segmenter.load(checkpoint=out, inference=INFERENCE)
    assert original.temperature == 1.0
    assert tempered.temperature == pytest.approx(fitted["temperature"], rel=1e-12)
    assert tempered.config.calibration.source.startswith("cityscapes:")
    image = build_dataset("cityscapes", data, "val")[0]["image"]
    p = original.predict(image, return_scores=True).scores.astype(np.float64)
    q = tempered.predict(image, return_scores=True).scores
    expected = p ** (1 / fitted["temperature"])
    np.testing.assert_allclose(q, expected / expected.sum(0), atol=2e-5)


def test_the_reference_is_the_frames_own_statistics(calibrated) -> None:
    _, out, data, summary = calibrated
    fitted = summary["calibration"]
    tempered = Segmenter.load(checkpoint=out, inference=INFERENCE)
    dataset = build_dataset("cityscapes", data, "val")
    means = [
        tempered.predict(dataset[i]["image"], summarize=True).summary.mean_confidence
        for i in range(len(dataset))
    ]
    assert fitted["frames"] == 4
    assert fitted["mean_confidence"] == pytest.approx(np.mean(means), abs=1e-6)
    assert fitted["mean_confidence_std"] == pytest.approx(np.std(means), abs=1e-6)
    assert fitted["ece_before"] == pytest.approx(summary["before"]["ece"])
    assert fitted["ece_after"] == pytest.approx(summary["after"]["ece"])
    assert summary["before"]["pixels"] == 4 * 64 * 64


def test_reliability_diagrams_are_written(calibrated) -> None:
    _, out, _, _ = calibrated
    report = out.parent / "report"
    for name in ("reliability_before.png", "reliability_after.png"):
        assert (report / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_bag_with_labels_calibrates_too(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the calibrated checkpoint goes into the working directory
    bag = tmp_path / "scenes"
    assert (
        main(["make-bag", "-", str(bag), "--synthetic", "2", "--synthetic-size", "64", "128"]) == 0
    )
    checkpoint = save_checkpoint(build_model("tiny"), tmp_path / "tiny.safetensors")
    argv = ["calibrate", "--checkpoint", str(checkpoint), "--bag", str(bag), *WHOLE]
    assert main([*argv, "--report", str(tmp_path / "report")]) == 0
    calibrated = Segmenter.load(checkpoint=tmp_path / "tiny_calibrated.safetensors")
    assert calibrated.config.calibration.frames == 2
    assert calibrated.config.calibration.source == f"bag {bag}"


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ([], "needs --checkpoint"),
        (["--checkpoint", "model.onnx"], "then export it"),
        (["--checkpoint", "w.safetensors", "--pixels-per-frame", "0"], "must be >= 1"),
        (["--checkpoint", "w.safetensors", "--out", "w.pt"], "must be a .safetensors"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, capsys, extra, problem) -> None:
    code = main(["calibrate", "--dataset", f"cityscapes:{tmp_path}", *extra])
    err = capsys.readouterr().err
    assert code == 2 and problem in err and "Traceback" not in err


def test_an_onnx_export_carries_the_calibration(calibrated, tmp_path: Path) -> None:
    from vltseg_ros.export.onnx_export import export_onnx
    from vltseg_ros.model.checkpoint import load_model

    _, out, _, summary = calibrated
    path = tmp_path / "calibrated.onnx"
    export_onnx(load_model(out), path, input_size=(64, 64), batch=1)
    exported = Segmenter.load(checkpoint=path)
    assert exported.temperature == pytest.approx(summary["calibration"]["temperature"])
    assert exported.config.calibration.mean_confidence == pytest.approx(
        summary["calibration"]["mean_confidence"]
    )
