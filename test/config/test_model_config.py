"""Model configs are data: built-ins load, files load, bad content fails with its path."""

from __future__ import annotations

import json

import pytest

from vltseg_ros.config.model_config import (
    InferenceConfig,
    ModelConfig,
    available_models,
    load_class_set,
    load_model_config,
)
from vltseg_ros.errors import ConfigError, UnknownModelError


def test_builtin_models_are_listed_and_valid() -> None:
    names = available_models()
    assert {"vit-b-16", "vit-l-14", "eva02-b-16", "eva02-l-14", "tiny", "tiny-eva"} <= set(names)
    for name in names:
        config = load_model_config(name)
        assert config.name == name
        assert config.class_set.num_classes == 19


def test_reference_architecture_values() -> None:
    config = load_model_config("eva02-l-14")
    assert config.encoder.open_clip_model == "EVA02-L-14"
    assert config.encoder.out_indices == (9, 14, 19, 23)
    head = config.head
    assert (head.feat_channels, head.num_queries, head.num_levels) == (256, 100, 3)
    assert (head.pixel_decoder.num_layers, head.pixel_decoder.num_heads) == (6, 8)
    assert (head.pixel_decoder.num_points, head.pixel_decoder.num_groups) == (4, 32)
    assert (head.transformer_decoder.num_layers, head.transformer_decoder.ffn_channels) == (
        9,
        2048,
    )
    assert config.normalization.mean == (123.675, 116.28, 103.53)
    assert config.normalization.std == (58.395, 57.12, 57.375)
    assert config.inference.crop_size == (512, 512) and config.inference.stride == (426, 426)


def test_cityscapes_class_set() -> None:
    classes = load_class_set("cityscapes")
    assert classes.names[0] == "road" and classes.names[18] == "bicycle"
    assert classes.palette[0] == (128, 64, 128) and classes.palette[13] == (0, 0, 142)
    assert classes.ignore_index == 255


def test_cityscapes_class_set_matches_cityscapesscripts() -> None:
    labels = pytest.importorskip("cityscapesscripts.helpers.labels")
    train = sorted(
        (lab.trainId, lab.name, lab.color) for lab in labels.labels if 0 <= lab.trainId < 255
    )
    classes = load_class_set("cityscapes")
    assert [name for _, name, _ in train] == list(classes.names)
    assert [tuple(color) for _, _, color in train] == list(classes.palette)


def test_round_trip_through_dict() -> None:
    config = load_model_config("tiny-eva")
    data = json.loads(json.dumps(config.to_dict()))
    assert ModelConfig.from_dict(data) == config


def test_load_from_file(tmp_path) -> None:
    data = load_model_config("tiny").to_dict()
    data["inference"]["mode"] = "whole"
    path = tmp_path / "mine.yaml"
    path.write_text(json.dumps(data))  # JSON is valid YAML
    config = load_model_config(path)
    assert config.inference.mode == "whole"
    assert config.name == "tiny"


def test_unknown_model_lists_builtins() -> None:
    with pytest.raises(UnknownModelError, match="vit-b-16"):
        load_model_config("no-such-model")
    with pytest.raises(UnknownModelError, match="does not exist"):
        load_model_config("missing/file.yaml")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"head": {"feat_channels": 30}}, "divisible"),
        ({"head": {"bogus": 1}}, r"model\.head: unknown key"),
        ({"encoder": {"out_indices": [1, 2, 3]}}, "4 blocks"),
        ({"encoder": {"out_indices": [3, 2, 1, 0]}}, "increasing"),
        ({"inference": {"mode": "tiles"}}, r"model\.inference\.mode must be one of"),
        ({"inference": {"crop_size": [64, 64], "stride": [65, 10]}}, "must not exceed"),
        ({"inference": {"crop_size": [64]}}, "2 entries"),
        ({"head": {"num_queries": "many"}}, "must be a number"),
        ({"classes": "no-such-classes"}, "unknown class set"),
    ],
)
def test_invalid_configs_fail_with_their_path(change: dict, message: str) -> None:
    data = load_model_config("tiny").to_dict()
    for section, value in change.items():
        if isinstance(value, dict) and isinstance(data.get(section), dict):
            data[section] = {**data[section], **value}
        else:
            data[section] = value
    with pytest.raises(ConfigError, match=message):
        ModelConfig.from_dict(data)


def test_unparsable_file(tmp_path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("encoder: [unclosed")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_model_config(path)


def test_inference_input_size() -> None:
    assert InferenceConfig(mode="whole", whole_size=(256, 512)).input_size == (256, 512)
    assert InferenceConfig(mode="whole").input_size == (512, 512)
    assert InferenceConfig(mode="slide", whole_size=(1, 1)).input_size == (512, 512)


def test_a_calibration_class_histogram_must_fit_the_class_set() -> None:
    """A checkpoint whose calibration stores a class histogram of another length (a forged or
    mismatched file) is refused when loaded, instead of the node silently dropping the shift
    score's class term."""
    data = load_model_config("tiny").to_dict()
    fits = dict(data, calibration={"class_fraction": [1.0 / 19] * 19})
    assert len(ModelConfig.from_dict(fits).calibration.class_fraction) == 19
    assert ModelConfig.from_dict(dict(data, calibration={})).calibration.class_fraction == ()
    wrong = dict(data, calibration={"class_fraction": [0.5, 0.5]})
    with pytest.raises(ConfigError, match="class_fraction holds 2 shares for 19 classes"):
        ModelConfig.from_dict(wrong)
