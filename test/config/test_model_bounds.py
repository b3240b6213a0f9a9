"""What a model config may declare is bounded (so that no YAML file or checkpoint metadata can
ask for an absurd model), and the bounds leave every real architecture alone."""

from __future__ import annotations

import time

import pytest
import torch

from vltseg_ros.config.model_config import (
    MAX_PARAMETERS,
    ModelConfig,
    available_models,
    load_model_config,
)
from vltseg_ros.errors import ConfigError
from vltseg_ros.model.segmentor import build_model, expected_layout


def _tiny_with(**changes) -> dict:
    data = load_model_config("tiny").to_dict()
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        owner = data
        for key in parents:
            owner = owner.setdefault(key, {})
        owner[last] = value
    return data


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"encoder__vision_cfg__width": 8192}, r"encoder\.vision_cfg\.width = 8192 .* 2048"),
        ({"encoder__vision_cfg__layers": 500}, r"encoder\.vision_cfg\.layers = 500 .* 48"),
        ({"encoder__vision_cfg__image_size": [64, 100_000]}, r"image_size = \[64, 100000\]"),
        ({"encoder__vision_cfg__width": "wide"}, r"width must be a finite number"),
        ({"encoder__timm_kwargs__depth": 1000}, r"encoder\.timm_kwargs\.depth = 1000 .* 48"),
        ({"encoder__embed_dim": 10**6}, r"encoder\.embed_dim = 1000000"),
        ({"head__num_queries": 100_000}, r"head\.num_queries = 100000 .* 1000 .* has 100"),
        ({"head__transformer_decoder__num_layers": 90}, r"transformer_decoder\.num_layers"),
        ({"head__pixel_decoder__ffn_channels": 10**6}, r"pixel_decoder\.ffn_channels"),
        ({"inference__crop_size": [8192, 8192]}, r"inference\.crop_size .* 4096 pixels"),
        ({"inference__test_scale": [20000, 10000]}, r"inference\.test_scale .* 8192 pixels"),
    ],
)
def test_declared_sizes_are_bounded(changes, message) -> None:
    with pytest.raises(ConfigError, match=message) as refused:
        ModelConfig.from_dict(_tiny_with(**changes))
    assert "finite number" in message or "EVA02-L/14 + Mask2Former" in str(refused.value)


def test_every_built_in_architecture_is_within_the_bounds() -> None:
    for name in available_models():
        config = load_model_config(name)
        assert expected_layout(config).weights <= MAX_PARAMETERS, name


def test_a_named_architecture_over_the_bound_is_refused_before_allocation() -> None:
    """ViT-bigG/14 (1.8 G weights, 7 GB) passes the per-size bounds by name alone; its build on
    the meta device counts it, and nothing real is allocated."""
    data = _tiny_with(encoder={"open_clip_model": "ViT-bigG-14", "out_indices": [9, 19, 29, 47]})
    config = ModelConfig.from_dict(data)
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=r"declares \d+ M weights .* bound of 700 M"):
        build_model(config)
    assert time.perf_counter() - started < 30


def test_an_architecture_open_clip_cannot_build_is_a_config_error() -> None:
    config = ModelConfig.from_dict(
        _tiny_with(encoder__vision_cfg__width=100, encoder__vision_cfg__head_width=7)
    )
    with pytest.raises(ConfigError, match="cannot be built from its config"):
        build_model(config)


def test_the_meta_build_leaves_the_random_stream_alone() -> None:
    """Checking a config first must not change the weights a seeded build gets."""
    config = ModelConfig.from_dict(_tiny_with(head__num_queries=7))  # not cached yet
    torch.manual_seed(0)
    first = build_model(config).state_dict()
    torch.manual_seed(0)
    second = build_model(config).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
