"""The encoder computes what open_clip's own image tower computes, at any input size.

The reference is open_clip itself (``open_clip.create_model``, random weights): its tower's
``forward_intermediates`` at the native size, and at other sizes the same tower resized with
open_clip's (``force_image_size`` + ``resize_pos_embed``) or timm's (``set_input_size``) own
input-size API.
"""

from __future__ import annotations

import copy

import open_clip
import pytest
import torch
from open_clip.model import CLIP, CustomTextCLIP, resize_pos_embed

from vltseg_ros.config.model_config import EncoderConfig, load_model_config
from vltseg_ros.errors import ConfigError, UnknownModelError
from vltseg_ros.model.encoder import ClipEncoder


def _encoder_like(clip: torch.nn.Module, config_name: str) -> ClipEncoder:
    encoder = ClipEncoder(load_model_config(config_name).encoder).eval()
    encoder.load_state_dict(
        {f"visual.{k}": v for k, v in clip.visual.state_dict().items()}, strict=True
    )
    return encoder


@pytest.fixture(scope="module")
def vit_b16() -> torch.nn.Module:
    torch.manual_seed(0)
    return open_clip.create_model("ViT-B-16", pretrained=None).eval()


@pytest.fixture(scope="module")
def eva02_b16() -> torch.nn.Module:
    torch.manual_seed(0)
    return open_clip.create_model("EVA02-B-16", pretrained=None).eval()


@torch.no_grad()
def test_vit_matches_open_clip_at_native_size(vit_b16) -> None:
    encoder = _encoder_like(vit_b16, "vit-b-16")
    x = torch.randn(1, 3, 224, 224)
    ours = encoder(x)
    theirs = vit_b16.visual.forward_intermediates(
        x, indices=list(encoder.out_indices), intermediates_only=True
    )["image_intermediates"]
    assert len(ours) == 4
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == (1, 768, 14, 14)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


@torch.no_grad()
def test_vit_matches_open_clip_resized_tower_at_non_square_size(vit_b16) -> None:
    encoder = _encoder_like(vit_b16, "vit-b-16")
    size = (96, 160)
    resized = open_clip.create_model("ViT-B-16", pretrained=None, force_image_size=size).eval()
    state = {"visual." + k: v for k, v in vit_b16.visual.state_dict().items()}
    resize_pos_embed(state, resized)
    resized.visual.load_state_dict({k[len("visual.") :]: v for k, v in state.items()})
    x = torch.randn(1, 3, *size)
    ours = encoder(x)
    theirs = resized.visual.forward_intermediates(
        x, indices=list(encoder.out_indices), intermediates_only=True
    )["image_intermediates"]
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == (1, 768, 6, 10)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


@torch.no_grad()
def test_eva02_matches_open_clip_at_native_size(eva02_b16) -> None:
    encoder = _encoder_like(eva02_b16, "eva02-b-16")
    x = torch.randn(1, 3, 224, 224)
    ours = encoder(x)
    theirs = eva02_b16.visual.trunk.forward_intermediates(
        x, indices=list(encoder.out_indices), norm=False, intermediates_only=True
    )
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == (1, 768, 14, 14)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


@torch.no_grad()
def test_eva02_matches_timm_resized_tower_at_non_square_size(eva02_b16) -> None:
    encoder = _encoder_like(eva02_b16, "eva02-b-16")
    size = (96, 160)
    trunk = copy.deepcopy(eva02_b16.visual.trunk)
    trunk.set_input_size(img_size=size)
    x = torch.randn(1, 3, *size)
    ours = encoder(x)
    theirs = trunk.forward_intermediates(
        x, indices=list(encoder.out_indices), norm=False, intermediates_only=True
    )
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == (1, 768, 6, 10)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


@torch.no_grad()
@pytest.mark.parametrize("name", ["tiny", "tiny-eva"])
def test_pixels_beyond_the_last_patch_are_ignored(name: str) -> None:
    encoder = ClipEncoder(load_model_config(name).encoder).eval()
    x = torch.randn(1, 3, 40, 56)  # patch 8: 5 x 7 patches
    extended = torch.cat([x, torch.randn(1, 3, 7, 56)], dim=2)
    extended = torch.cat([extended, torch.randn(1, 3, 47, 5)], dim=3)
    for a, b in zip(encoder(x), encoder(extended), strict=True):
        assert a.shape[-2:] == (5, 7)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_state_dict_keys_are_open_clips(vit_b16, eva02_b16) -> None:
    for clip, name in ((vit_b16, "vit-b-16"), (eva02_b16, "eva02-b-16")):
        ours = ClipEncoder(load_model_config(name).encoder).state_dict()
        theirs = {f"visual.{k}": v.shape for k, v in clip.visual.state_dict().items()}
        assert {k: v.shape for k, v in ours.items()} == theirs


def test_large_configs_match_open_clip_key_sets() -> None:
    """ViT-L-14 and EVA02-L-14 built on the meta device: no memory, same keys and shapes."""
    for name, open_clip_name, width, patch in (
        ("vit-l-14", "ViT-L-14", 1024, (14, 14)),
        ("eva02-l-14", "EVA02-L-14", 1024, (14, 14)),
    ):
        model_cfg = dict(open_clip.get_model_config(open_clip_name))
        clip_class = CustomTextCLIP if model_cfg.pop("custom_text", False) else CLIP
        with torch.device("meta"):
            ours = ClipEncoder(load_model_config(name).encoder)
            theirs = clip_class(**model_cfg).visual
        assert (ours.width, ours.patch_size) == (width, patch)
        assert {k: v.shape for k, v in ours.state_dict().items()} == {
            f"visual.{k}": v.shape for k, v in theirs.state_dict().items()
        }


def test_bad_encoder_configs() -> None:
    with pytest.raises(UnknownModelError, match="open_clip has no model config"):
        ClipEncoder(EncoderConfig(open_clip_model="ViT-Q-99"))
    with pytest.raises(ConfigError, match="exceed"):
        ClipEncoder(EncoderConfig(open_clip_model="ViT-B-16", out_indices=(4, 7, 9, 12)))
    with pytest.raises(ConfigError, match="must be a ViT"):
        ClipEncoder(EncoderConfig(open_clip_model="RN50", out_indices=(0, 1, 2, 3)))
    with pytest.raises(ConfigError, match="drop_path"):
        ClipEncoder(EncoderConfig(open_clip_model="ViT-B-16", drop_path=0.2))
