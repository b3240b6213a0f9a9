"""Command lines that used to surprise: train overrides after options, slide-only inference
overrides in whole mode, and calibrate's default output."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from vltseg_ros.cli.main import main, parse_args
from vltseg_ros.config.model_config import InferenceConfig
from vltseg_ros.errors import ConfigError
from vltseg_ros.inference.settings import InferenceOverrides
from vltseg_ros.model.checkpoint import save_checkpoint
from vltseg_ros.model.segmentor import build_model

WHOLE = ["--model", "tiny", "--inference.mode", "whole", "--inference.whole-size", "64", "128"]


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "tiny", "a=1", "b=2", "--out", "x", "--no-progress"],
        ["train", "tiny", "--out", "x", "a=1", "--no-progress", "b=2"],
        ["train", "--out", "x", "tiny", "a=1", "b=2", "--no-progress"],
        ["train", "--out", "x", "--no-progress", "tiny", "a=1", "b=2"],
    ],
)
def test_train_overrides_go_before_or_after_options(argv) -> None:
    args = parse_args(argv)
    assert args.config == "tiny" and args.overrides == ["a=1", "b=2"]
    assert args.out == Path("x") and args.no_progress


def test_an_override_after_options_is_applied(tmp_path: Path, capsys) -> None:
    """The run really gets it: an invalid value after --out is refused by the run config."""
    code = main(["train", "tiny", "--out", str(tmp_path / "run"), "train.iterations=-5"])
    err = capsys.readouterr().err
    assert code == 2 and "train.iterations" in err, err


@pytest.mark.parametrize(
    ("argv", "unknown"),
    [
        (["train", "tiny", "--out", "x", "--bogus"], "--bogus"),
        (["segment", "a.png", "--out", "x", "key=value"], "key=value"),
    ],
)
def test_other_unknown_arguments_are_usage_errors(argv, unknown, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)
    assert exited.value.code == 2
    assert f"unrecognized arguments: {unknown}" in capsys.readouterr().err


# --- slide-only overrides in whole mode ---------------------------------------------------------

WHOLE_CONFIG = InferenceConfig(mode="whole", crop_size=(64, 64), stride=(48, 48))


@pytest.mark.parametrize(
    ("overrides", "ignored"),
    [
        ({"test_scale": (256, 128)}, "inference.test_scale"),
        ({"stride": (32, 32)}, "inference.stride"),
        ({"test_scale": (256, 128), "stride": (32, 32)}, "inference.test_scale and inference."),
        ({"crop_size": (48, 48), "whole_size": (64, 128)}, "inference.crop_size"),
        ({"mode": "whole", "test_scale": (256, 128)}, "inference.test_scale"),
    ],
)
def test_slide_only_overrides_are_refused_in_whole_mode(overrides, ignored) -> None:
    base = (
        WHOLE_CONFIG
        if "mode" not in overrides
        else dataclasses.replace(WHOLE_CONFIG, mode="slide")
    )
    with pytest.raises(ConfigError, match="would do nothing") as caught:
        InferenceOverrides(**overrides).apply(base)
    assert ignored in str(caught.value) and "inference.mode slide" in str(caught.value)


@pytest.mark.parametrize(
    "overrides",
    [
        {"crop_size": (48, 48)},  # whole mode without a whole_size runs at the crop size
        {"whole_size": (64, 128)},
        {"mode": "slide", "test_scale": (256, 128), "stride": (32, 32)},
    ],
)
def test_overrides_that_act_are_accepted(overrides) -> None:
    config = InferenceOverrides(**overrides).apply(WHOLE_CONFIG)
    for name, value in overrides.items():
        assert getattr(config, name) == value
    if overrides == {"crop_size": (48, 48)}:
        assert config.input_size == (48, 48)


def test_segment_refuses_test_scale_for_a_whole_mode_model(tmp_path: Path, capsys) -> None:
    argv = ["segment", "--synthetic", "--out", str(tmp_path), *WHOLE]
    code = main([*argv, "--inference.test-scale", "256", "128"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        "vltseg segment: error: inference.test_scale would do nothing: the model runs in whole "
        "mode (each frame resized to 64x128 (HxW) and run once); drop it, or set inference.mode "
        "slide"
    )


# --- calibrate's default output -----------------------------------------------------------------


def test_calibrate_writes_into_the_working_directory_by_default(
    tmp_path: Path, monkeypatch
) -> None:
    """Not beside the input checkpoint (for the demo model: inside the installed package)."""
    package = tmp_path / "site-packages" / "weights"
    checkpoint = save_checkpoint(build_model("tiny"), package / "tiny.safetensors")
    bag, work = tmp_path / "scenes", tmp_path / "work"
    synthetic = ["--synthetic", "2", "--synthetic-size", "64", "128"]
    assert main(["make-bag", "-", str(bag), *synthetic]) == 0
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["calibrate", "--checkpoint", str(checkpoint), "--bag", str(bag), *WHOLE]) == 0
    assert sorted(p.name for p in work.iterdir()) == [
        "calibration_tiny",
        "tiny_calibrated.safetensors",
    ]
    assert sorted(p.name for p in (work / "calibration_tiny").iterdir()) == [
        "calibration.json",
        "reliability_after.png",
        "reliability_before.png",
    ]
    assert [p.name for p in package.iterdir()] == ["tiny.safetensors"]
