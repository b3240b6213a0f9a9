"""One table of per-method anomaly thresholds, read by every entry point that takes no threshold:
``scores_to_result``, ``Segmenter.predict``, the output settings (CLI flags, node parameters,
the published ``anomaly_threshold``), ``fit_calibration`` (``vltseg calibrate``).

The raw scores below are built so that each method's default and the old API default (0.0)
give different anomalous shares: a function that ignored the table would fail.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from test.training.shapes import write_shapes
from vltseg_ros.cli.main import main
from vltseg_ros.config.anomaly_methods import (
    ANOMALY_METHODS,
    DEFAULT_THRESHOLDS,
    defaults_text,
    resolve_threshold,
)
from vltseg_ros.config.model_config import ClassSetConfig
from vltseg_ros.config.options import build
from vltseg_ros.demo_model import DEMO_CHECKPOINT
from vltseg_ros.errors import ConfigError
from vltseg_ros.evaluation.fit_calibration import fit_calibration
from vltseg_ros.inference.outputs import OutputSettings, frame_outputs
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.inference.result import scores_to_result
from vltseg_ros.inference.scores import anomaly_score

# 3 classes; per column of the (3, 1, 5) map: one class owns the pixel (1.0), two weak
# claims, a pixel nobody claims, a split between two classes, a fairly sure one
RAW = torch.tensor(
    [
        [[1.0, 0.30, 0.01, 0.45, 0.9]],
        [[0.0, 0.25, 0.01, 0.45, 0.1]],
        [[0.0, 0.00, 0.01, 0.10, 0.0]],
    ]
)


def test_the_table_and_its_resolution() -> None:
    assert set(DEFAULT_THRESHOLDS) == set(ANOMALY_METHODS)
    assert dict(DEFAULT_THRESHOLDS) == {
        "rba": -0.5,
        "max_logit": -0.5,
        "max_probability": 0.5,
        "entropy": 0.5,
    }
    with pytest.raises(TypeError):
        DEFAULT_THRESHOLDS["rba"] = 0.0  # type: ignore[index]  # read-only
    for method in ANOMALY_METHODS:
        assert resolve_threshold(method, None) == DEFAULT_THRESHOLDS[method]
        assert resolve_threshold(method, math.nan) == DEFAULT_THRESHOLDS[method]
        assert resolve_threshold(method, 0.25) == 0.25
    with pytest.raises(ConfigError, match="anomaly method must be one of"):
        resolve_threshold("odin", None)
    assert defaults_text() == "rba -0.5, max_logit -0.5, max_probability 0.5, entropy 0.5"


@pytest.mark.parametrize("method", ANOMALY_METHODS)
def test_scores_to_result_uses_the_method_default(method: str) -> None:
    score = anomaly_score(RAW, method)[0].numpy()
    expected = float((score > DEFAULT_THRESHOLDS[method]).mean())
    old = float((score > 0.0).mean())
    assert expected != old  # the data tell the table's default from 0.0
    result = scores_to_result(RAW, (1, 5), summarize=True, anomaly_method=method)
    assert result.summary.anomaly_fraction == pytest.approx(expected)
    given = scores_to_result(
        RAW, (1, 5), summarize=True, anomaly_method=method, anomaly_threshold=0.0
    )
    assert given.summary.anomaly_fraction == pytest.approx(old)


def test_output_settings_follow_the_method_until_a_threshold_is_set() -> None:
    settings = build(OutputSettings, {})
    assert math.isnan(settings.anomaly_threshold) and settings.threshold == -0.5
    for method in ANOMALY_METHODS:
        chosen = build(OutputSettings, {"anomaly_method": method})
        assert chosen.threshold == DEFAULT_THRESHOLDS[method]
        assert chosen.predict_options()["anomaly_threshold"] == DEFAULT_THRESHOLDS[method]
    fixed = build(OutputSettings, {"anomaly_method": "entropy", "anomaly_threshold": 0.8})
    assert fixed.threshold == 0.8 and fixed.predict_options()["anomaly_threshold"] == 0.8
    back = build(OutputSettings, {"anomaly_method": "entropy", "anomaly_threshold": math.nan})
    assert back.threshold == 0.5  # NaN: "not given" again
    with pytest.raises(ConfigError, match=r"anomaly_threshold: 5000\.0 is outside"):
        build(OutputSettings, {"anomaly_threshold": 5000.0})
    with pytest.raises(ConfigError, match="anomaly_threshold: inf is not a finite number"):
        build(OutputSettings, {"anomaly_threshold": math.inf})
    with pytest.raises(ConfigError, match="confidence_threshold: nan is not a finite number"):
        build(OutputSettings, {"confidence_threshold": math.nan})  # NaN only where it means


def test_the_published_threshold_is_the_one_in_force() -> None:
    settings = build(OutputSettings, {"anomaly_method": "max_probability"})
    options = settings.predict_options()
    del options["output_size"]  # the result's size is given here
    result = scores_to_result(RAW, (1, 5), **options)
    image = np.zeros((1, 5, 3), np.uint8)
    classes = ClassSetConfig("three", ("a", "b", "c"), ((0, 0, 0), (1, 1, 1), (2, 2, 2)))
    outputs = frame_outputs(result, image, "rgb", settings, class_set=classes, with_overlay=False)
    assert outputs.info["anomaly_method"] == "max_probability"
    assert outputs.info["anomaly_threshold"] == 0.5


@pytest.fixture(scope="module")
def demo() -> Segmenter:
    return Segmenter.load(checkpoint=DEMO_CHECKPOINT)


def test_predict_without_a_threshold_counts_unseen_objects(demo: Segmenter) -> None:
    """The finding of issue 24: with 0.0 as the API's default, RbA (never above 0) counted no
    pixel and max probability almost every one."""
    from vltseg_ros.data.scenes import synthetic_street_scene
    from vltseg_ros.data.unseen_objects import paste_unseen_objects

    image, labels = synthetic_street_scene(256, 512, seed=300000)
    pasted, _, mask = paste_unseen_objects(image, labels, seed=300000)
    share = float(mask.mean())  # 5.6 %
    rba = demo.predict(pasted, summarize=True, anomaly_method="rba").summary
    assert 0.5 * share < rba.anomaly_fraction < 2.0 * share + 0.02
    # max probability at 0.5: the objects are claimed with ~0.78 confidence, so few pixels
    # count (0.3 % measured); with 0.0, every pixel would
    msp = demo.predict(pasted, summarize=True, anomaly_method="max_probability").summary
    assert msp.anomaly_fraction < 0.05


def test_calibrate_stores_the_method_default(demo: Segmenter) -> None:
    from vltseg_ros.data.scenes import synthetic_street_scene

    image, labels = synthetic_street_scene(256, 512, seed=310000)
    frames = [(image, "rgb", labels)]
    fit = fit_calibration(
        demo, lambda: frames, source="x", anomaly_method="entropy", progress=False
    )
    assert fit.calibration.anomaly_threshold == 0.5
    assert fit.calibration.anomaly_method == "entropy"


def test_calibrate_leaves_void_pixels_out_of_the_reference(demo: Segmenter) -> None:
    """Void objects (labelled ignore) are the anomalies the score should find: counted, they
    raised the reference's anomaly fraction (1.6 % instead of 0.04 % on make-scenes data)."""
    from vltseg_ros.data.scenes import synthetic_street_scene
    from vltseg_ros.data.unseen_objects import paste_unseen_objects

    frames = []
    for seed in (310000, 310001):
        image, labels = synthetic_street_scene(256, 512, seed=seed)
        pasted, void_labels, mask = paste_unseen_objects(image, labels, seed=seed)
        frames.append((pasted, "rgb", void_labels))
        assert (void_labels[mask] == 255).all()
    fit = fit_calibration(demo, lambda: frames, source="x", progress=False)
    everything = [
        demo.predict(image, summarize=True, anomaly_method="rba").summary.anomaly_fraction
        for image, _, _ in frames
    ]
    # measured: 0.6 % (the objects' blurred rims spill onto labelled pixels) against 6.3 %
    assert fit.calibration.anomaly_fraction < 0.15 * np.mean(everything)
    assert np.mean(everything) > 0.03


def test_calibrate_cli_without_a_threshold_stores_the_method_default(tmp_path: Path) -> None:
    data = write_shapes(tmp_path / "data", count=2, size=64, split="val")
    from vltseg_ros.model.checkpoint import save_checkpoint
    from vltseg_ros.model.segmentor import build_model

    checkpoint = save_checkpoint(build_model("tiny"), tmp_path / "tiny.safetensors")
    whole = ["--inference.mode", "whole", "--inference.whole-size", "64", "64"]
    argv = ["calibrate", "--checkpoint", str(checkpoint), "--dataset", f"cityscapes:{data}"]
    report = tmp_path / "report"
    out = tmp_path / "out.safetensors"
    extra = ["--out", str(out), "--report", str(report), "--anomaly-method", "max_probability"]
    assert main([*argv, *extra, *whole]) == 0
    stored = json.loads((report / "calibration.json").read_text())["calibration"]
    assert (stored["anomaly_method"], stored["anomaly_threshold"]) == ("max_probability", 0.5)
