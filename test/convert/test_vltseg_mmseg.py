"""The VLTSeg reference's checkpoints convert exactly: golden reference outputs, full-size keys.

The golden file holds the reference EVA02 backbone (random weights, small configuration) and
its 4 pyramid outputs on a fixed input, produced by running the reference code outside this
repository (test/golden/vltseg_reference_eva02_tiny.json says how). Converted with the real key
mapping into our encoder + pyramid, the same input must give the same 4 maps.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from test.convert.mmseg_fixtures import FULL_KEYS, golden, reference_state_dict, tiny_config
from vltseg_ros.config.model_config import available_models, load_model_config
from vltseg_ros.convert import convert_state_dict, guess_training_domain, infer_model_name
from vltseg_ros.convert.vltseg_mmseg import map_keys
from vltseg_ros.errors import CheckpointError
from vltseg_ros.model.segmentor import VLTSeg


def _converted_tiny(config=None) -> VLTSeg:
    model = VLTSeg(config or tiny_config()).eval()
    model.load_state_dict(convert_state_dict(reference_state_dict(), model), strict=True)
    return model


@torch.no_grad()
def test_converted_backbone_reproduces_the_reference_pyramid() -> None:
    reference = golden()
    features = _converted_tiny().features(reference["input"])
    assert [tuple(f.shape) for f in features] == [
        (1, 32, 20, 20),
        (1, 32, 10, 10),
        (1, 32, 5, 5),
        (1, 32, 2, 2),
    ]
    for i, ours in enumerate(features):
        expected = reference[f"output.{i}"]
        assert expected.abs().mean() > 0.5  # the reference output is not trivially small
        torch.testing.assert_close(ours, expected, rtol=0, atol=1e-4)


@torch.no_grad()
def test_golden_outputs_depend_on_the_rope_grid() -> None:
    """Negative control: timm's EVA02-B default RoPE grid (14, not the reference's 16) is caught
    by the RoPE check, and with that check bypassed it changes the features grossly."""
    base = tiny_config()
    encoder = dataclasses.replace(
        base.encoder, timm_kwargs={**base.encoder.timm_kwargs, "ref_feat_shape": [14, 14]}
    )
    model = VLTSeg(base.replace(encoder=encoder)).eval()
    source = reference_state_dict()
    with pytest.raises(CheckpointError, match=r"10 RoPE table\(s\) that differ"):
        convert_state_dict(source, model)
    mapping = map_keys(source)
    model.load_state_dict({ours: source[k] for k, ours in mapping.mapped.items()}, strict=True)
    reference = golden()
    errors = [
        (ours - reference[f"output.{i}"]).abs().max().item()
        for i, ours in enumerate(model.features(reference["input"]))
    ]
    assert min(errors) > 0.1


def test_mapping_of_every_reference_key_kind() -> None:
    t, b = "encoder.visual.trunk.", "encoder.visual.trunk.blocks.7."
    expected = {
        "backbone.cls_token": t + "cls_token",
        "backbone.pos_embed": t + "pos_embed",
        "backbone.patch_embed.proj.weight": t + "patch_embed.proj.weight",
        "backbone.blocks.7.norm1.bias": b + "norm1.bias",
        "backbone.blocks.7.norm2.weight": b + "norm2.weight",
        "backbone.blocks.7.attn.q_bias": b + "attn.q_proj.bias",
        "backbone.blocks.7.attn.v_bias": b + "attn.v_proj.bias",
        "backbone.blocks.7.attn.k_proj.weight": b + "attn.k_proj.weight",
        "backbone.blocks.7.attn.proj.bias": b + "attn.proj.bias",
        "backbone.blocks.7.mlp.w1.weight": b + "mlp.fc1_g.weight",
        "backbone.blocks.7.mlp.w2.bias": b + "mlp.fc1_x.bias",
        "backbone.blocks.7.mlp.ffn_ln.weight": b + "mlp.norm.weight",
        "backbone.blocks.7.mlp.w3.weight": b + "mlp.fc2.weight",
        "backbone.fpn1.1.running_var": "neck.fpn1.1.running_var",
        "backbone.fpn1.3.weight": "neck.fpn1.3.weight",
        "backbone.fpn2.0.bias": "neck.fpn2.0.bias",
        "decode_head.level_embed.weight": "head.level_embed.weight",
        "decode_head.pixel_decoder.mask_feature.bias": "head.pixel_decoder.mask_feature.bias",
    }
    others = [
        "backbone.rope.freqs_cos",
        "backbone.blocks.3.attn.rope.freqs_sin",
        "backbone.norm.weight",
        "backbone.blocks.0.attn.inner_attn_ln.weight",
        "backbone.fpn2.1.weight",
        "auxiliary_head.conv.weight",
    ]
    mapping = map_keys([*expected, *others])
    assert mapping.mapped == expected
    assert mapping.derived == ("backbone.blocks.3.attn.rope.freqs_sin", "backbone.rope.freqs_cos")
    assert set(mapping.unmapped) == set(others[2:])


def _full_size(img_size: int) -> dict[str, torch.Tensor]:
    note = json.loads(FULL_KEYS.read_text())
    shapes = dict(note["shapes"])
    if img_size == 1024:
        shapes.update(note["shapes_at_img_size_1024"])
    return {k: torch.empty(shape, device="meta") for k, shape in shapes.items()}


@pytest.mark.parametrize("crop", [512, 1024])
def test_full_reference_checkpoint_keys_convert_completely(crop: int) -> None:
    """Every key of a real EVA02-L + Mask2Former checkpoint, as meta tensors (no memory)."""
    source = _full_size(crop)
    assert len(source) == 813
    name = infer_model_name(source)
    assert name == f"vltseg-eva02-l-{crop}"
    with torch.device("meta"):
        model = VLTSeg(load_model_config(name))
    converted = convert_state_dict(source, model)
    own = model.state_dict()
    assert {k: v.shape for k, v in converted.items()} == {k: v.shape for k, v in own.items()}
    mapping = map_keys(source)
    assert len(mapping.derived) == 2 * 25  # the shared RoPE tables, top level + 24 blocks
    assert sum(k.startswith("decode_head.") for k in mapping.mapped) == 292
    assert len(converted) == 813 - 50 == len(own)


def test_checkpoint_of_the_other_crop_size_is_refused() -> None:
    with torch.device("meta"):
        model = VLTSeg(load_model_config("vltseg-eva02-l-1024"))
    with pytest.raises(CheckpointError) as info:
        convert_state_dict(_full_size(512), model)
    message = str(info.value)
    assert "backbone.pos_embed (1, 1297, 1024) vs model" in message
    assert "50 RoPE table(s) that differ from the model's" in message
    assert "backbone.blocks.0.attn.rope.freqs_cos: shape (1296, 64) vs model (5329, 64)" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("extra", "1 reference key(s) with no counterpart in the model:\n    backbone.norm.bias"),
        ("missing", "model key(s) without a value in the checkpoint:\n    encoder.visual.trunk.b"),
        ("shape", "decode_head.cls_embed.weight (5, 32) vs model head.cls_embed.weight (20, 32)"),
        ("head", "decode_head.cls_embed.extra -> head.cls_embed.extra"),
        ("rope", "backbone.blocks.1.attn.rope.freqs_cos: values differ by up to 0.5"),
    ],
)
def test_bad_state_dicts_list_the_offending_keys(change: str, expected: str) -> None:
    source = reference_state_dict()
    if change == "extra":
        source["backbone.norm.bias"] = torch.ones(32)
    elif change == "missing":
        del source["backbone.blocks.2.mlp.w3.weight"]
        expected += "locks.2.mlp.fc2.weight"
    elif change == "shape":
        source["decode_head.cls_embed.weight"] = torch.zeros(5, 32)
    elif change == "head":
        source["decode_head.cls_embed.extra"] = torch.zeros(1)
    else:
        source["backbone.blocks.1.attn.rope.freqs_cos"] = source["backbone.rope.freqs_cos"] + 0.5
    with pytest.raises(CheckpointError) as info:
        convert_state_dict(source, VLTSeg(tiny_config()))
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("name", "domain"),
    [
        ("vltseg_checkpoint_gta_1.pth", "gta5"),
        ("vltseg_checkpoint_gta_2.pth", "gta5"),
        ("vltseg_checkpoint_synthia_1.pth", "synthia"),
        ("vltseg_checkpoint_acdc_1.pth", "acdc"),
        ("vltseg_checkpoint_bdd100k_1.pth", "bdd100k"),
        ("vltseg_checkpoint_cityscapes_2.pth", "cityscapes"),
        ("vltseg_checkpoint_mapillary+cityscapes_1.pth", "mapillary+cityscapes"),
        ("vltseg_checkpoint_mapillary_1.pth", "mapillary"),
        ("iter_5000.pth", "unknown"),
    ],
)
def test_training_domain_from_file_name(name: str, domain: str) -> None:
    assert guess_training_domain(f"/downloads/{name}") == domain


def test_reference_model_configs() -> None:
    assert {"vltseg-eva02-l-512", "vltseg-eva02-l-1024"} <= set(available_models())
    for crop, stride, scale, grid in ((512, 426, (1024, 512), 36), (1024, 768, (2048, 1024), 73)):
        config = load_model_config(f"vltseg-eva02-l-{crop}")
        assert config.inference.crop_size == (crop, crop)
        assert config.inference.stride == (stride, stride)
        assert config.inference.test_scale == scale
        assert config.encoder.out_indices == (9, 14, 19, 23)
        with torch.device("meta"):
            trunk = VLTSeg(config).encoder.visual.trunk
        assert tuple(trunk.patch_embed.grid_size) == (grid, grid)
        assert tuple(trunk.rope.ref_feat_shape) == (16, 16)
        # the reference block: no LayerNorm inside attention, no final norm, no projection
        assert isinstance(trunk.blocks[0].attn.norm, torch.nn.Identity)
        assert isinstance(trunk.norm, torch.nn.Identity)
        assert isinstance(trunk.head, torch.nn.Identity)
        assert isinstance(trunk.fc_norm, torch.nn.Identity)
