"""Mask2Former head: deformable sampling, positional encoding, key names and head semantics."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from vltseg_ros.config.model_config import HeadConfig, PixelDecoderConfig, TransformerDecoderConfig
from vltseg_ros.errors import ConfigError
from vltseg_ros.model.deformable_attention import (
    MultiScaleDeformableAttention,
    multi_scale_deformable_attn,
)
from vltseg_ros.model.mask2former_head import Mask2FormerHead
from vltseg_ros.model.pixel_decoder import MSDeformAttnPixelDecoder, encoder_reference_points
from vltseg_ros.model.positional_encoding import sine_position_embedding

TINY = HeadConfig(
    feat_channels=32,
    out_channels=32,
    num_queries=8,
    pixel_decoder=PixelDecoderConfig(
        num_layers=2, num_heads=4, num_points=2, ffn_channels=64, num_groups=8
    ),
    transformer_decoder=TransformerDecoderConfig(num_layers=3, num_heads=4, ffn_channels=64),
)
IN_CHANNELS = [48, 48, 48, 48]
NUM_CLASSES = 5
IMAGE_SIZE = (64, 96)


def _feats(batch: int, seed: int = 0) -> list[torch.Tensor]:
    """Pyramid maps at strides 4..32 of an IMAGE_SIZE input."""
    gen = torch.Generator().manual_seed(seed)
    h, w = IMAGE_SIZE
    return [
        torch.randn(batch, c, h // s, w // s, generator=gen)
        for c, s in zip(IN_CHANNELS, (4, 8, 16, 32), strict=True)
    ]


def _tiny_head(config: HeadConfig = TINY) -> Mask2FormerHead:
    torch.manual_seed(0)
    return Mask2FormerHead(IN_CHANNELS, NUM_CLASSES, config).eval()


# --- deformable attention ---------------------------------------------------------------------


def _naive_deformable_attn(value, shapes, locations, weights):
    """Explicit bilinear sampling with zero padding, pixel coords (x * w - 0.5, y * h - 0.5)."""
    batch, _, heads, dims = value.shape
    _, queries, _, _, points, _ = locations.shape
    out = torch.zeros(batch, queries, heads, dims, dtype=value.dtype)
    starts = [0]
    for h, w in shapes:
        starts.append(starts[-1] + h * w)
    for b in range(batch):
        for q in range(queries):
            for m in range(heads):
                for lvl, (h, w) in enumerate(shapes):
                    for p in range(points):
                        x = locations[b, q, m, lvl, p, 0].item() * w - 0.5
                        y = locations[b, q, m, lvl, p, 1].item() * h - 0.5
                        x0, y0 = math.floor(x), math.floor(y)
                        sample = torch.zeros(dims, dtype=value.dtype)
                        for xi in (x0, x0 + 1):
                            for yi in (y0, y0 + 1):
                                if 0 <= xi < w and 0 <= yi < h:
                                    bilinear = (1 - abs(x - xi)) * (1 - abs(y - yi))
                                    sample += bilinear * value[b, starts[lvl] + yi * w + xi, m]
                        out[b, q, m] += weights[b, q, m, lvl, p] * sample
    return out.reshape(batch, queries, heads * dims)


def test_deformable_sampling_matches_naive_bilinear() -> None:
    gen = torch.Generator().manual_seed(1)
    shapes = [(3, 5), (2, 4), (4, 3)]
    batch, heads, dims, queries, points = 2, 2, 3, 4, 3
    value = torch.randn(batch, sum(h * w for h, w in shapes), heads, dims, generator=gen)
    # Locations spread beyond [0, 1] so some points fall partly or wholly outside the maps.
    locations = torch.rand(batch, queries, heads, len(shapes), points, 2, generator=gen) * 1.6
    locations = locations - 0.3
    locations[0, 0, 0, 0, 0] = torch.tensor([-0.5, 1.7])  # entirely outside
    locations[1, 1, 1, 2, 1] = torch.tensor([0.01, 0.99])  # straddles the border
    weights = torch.rand(batch, queries, heads, len(shapes), points, generator=gen)

    got = multi_scale_deformable_attn(value, shapes, locations, weights)
    expected = _naive_deformable_attn(value, shapes, locations, weights)
    assert got.shape == (batch, queries, heads * dims)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_deformable_attention_init_points_each_head_in_its_direction() -> None:
    attn = MultiScaleDeformableAttention(embed_dims=16, num_heads=4, num_levels=2, num_points=3)
    bias = attn.sampling_offsets.bias.view(4, 2, 3, 2)
    directions = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    for point in range(3):
        for level in range(2):
            torch.testing.assert_close(
                bias[:, level, point], directions * (point + 1), atol=1e-6, rtol=0
            )
    assert not attn.sampling_offsets.weight.any()
    assert not attn.attention_weights.weight.any() and not attn.attention_weights.bias.any()
    assert not attn.value_proj.bias.any() and not attn.output_proj.bias.any()


def test_zero_offsets_read_each_query_at_its_own_pixel_center() -> None:
    """With no offsets, a query samples exactly its reference point: its own pixel."""
    torch.manual_seed(0)
    attn = MultiScaleDeformableAttention(embed_dims=8, num_heads=2, num_levels=1, num_points=3)
    torch.nn.init.zeros_(attn.sampling_offsets.bias)
    torch.nn.init.normal_(attn.attention_weights.weight)  # any softmax weights sum to 1
    shapes = [(3, 5)]
    query = torch.randn(2, 15, 8)
    pos = torch.randn(2, 15, 8)
    refs = encoder_reference_points(shapes, batch=2)
    assert refs.shape == (2, 15, 1, 2)
    torch.testing.assert_close(refs[0, 6, 0], torch.tensor([1.5 / 5, 1.5 / 3]))  # pixel (1, 1)
    got = attn(query, query, pos, refs, shapes)
    expected = query + attn.output_proj(attn.value_proj(query))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_deformable_attention_rejects_wrong_spatial_shapes() -> None:
    attn = MultiScaleDeformableAttention(embed_dims=8, num_heads=2, num_levels=1, num_points=1)
    x = torch.zeros(1, 6, 8)
    with pytest.raises(ValueError, match="spatial_shapes"):
        attn(x, x, x, encoder_reference_points([(2, 3)], 1), [(2, 4)])
    with pytest.raises(ConfigError):
        MultiScaleDeformableAttention(embed_dims=10, num_heads=4, num_levels=1, num_points=1)


# --- positional encoding ----------------------------------------------------------------------


def test_sine_position_embedding_values() -> None:
    pos = sine_position_embedding(2, 3, 5, num_feats=4)
    assert pos.shape == (2, 8, 3, 5) and pos.dtype == torch.float32
    torch.testing.assert_close(pos[0], pos[1])
    y_norm = lambda y: (y + 1) / (3 + 1e-6) * 2 * math.pi  # noqa: E731
    x_norm = lambda x: (x + 1) / (5 + 1e-6) * 2 * math.pi  # noqa: E731
    expected = {
        (0, 0, 0): math.sin(y_norm(0)),  # y channels first: sin, cos with period 1
        (1, 0, 0): math.cos(y_norm(0)),
        (2, 2, 4): math.sin(y_norm(2) / 100.0),  # period 10000 ** (2 / 4)
        (3, 1, 0): math.cos(y_norm(1) / 100.0),
        (4, 1, 2): math.sin(x_norm(2)),  # then x channels
        (7, 0, 4): math.cos(x_norm(4) / 100.0),
    }
    for (c, y, x), value in expected.items():
        assert pos[0, c, y, x].item() == pytest.approx(value, abs=1e-6), (c, y, x)
    # y channels do not vary along x, x channels not along y.
    torch.testing.assert_close(pos[:, :4], pos[:, :4, :, :1].expand_as(pos[:, :4]))
    torch.testing.assert_close(pos[:, 4:], pos[:, 4:, :1].expand_as(pos[:, 4:]))
    with pytest.raises(ValueError):
        sine_position_embedding(1, 2, 2, num_feats=3)


# --- key names of the reference configuration -------------------------------------------------


def _expected_mmdet_keys() -> dict[str, tuple[int, ...]]:
    c, levels, classes = 256, 3, 19
    keys: dict[str, tuple[int, ...]] = {}
    for i in range(levels):
        keys |= {
            f"pixel_decoder.input_convs.{i}.conv.weight": (c, 1024, 1, 1),
            f"pixel_decoder.input_convs.{i}.conv.bias": (c,),
            f"pixel_decoder.input_convs.{i}.gn.weight": (c,),
            f"pixel_decoder.input_convs.{i}.gn.bias": (c,),
        }
    for j in range(6):
        p = f"pixel_decoder.encoder.layers.{j}."
        shapes = {
            "self_attn.sampling_offsets": (8 * levels * 4 * 2, c),
            "self_attn.attention_weights": (8 * levels * 4, c),
            "self_attn.value_proj": (c, c),
            "self_attn.output_proj": (c, c),
            "ffn.layers.0.0": (1024, c),
            "ffn.layers.1": (c, 1024),
            "norms.0": (c,),
            "norms.1": (c,),
        }
        for name, shape in shapes.items():
            keys |= {p + name + ".weight": shape, p + name + ".bias": shape[:1]}
    keys |= {
        "pixel_decoder.level_encoding.weight": (levels, c),
        "pixel_decoder.lateral_convs.0.conv.weight": (c, 1024, 1, 1),
        "pixel_decoder.lateral_convs.0.gn.weight": (c,),
        "pixel_decoder.lateral_convs.0.gn.bias": (c,),
        "pixel_decoder.output_convs.0.conv.weight": (c, c, 3, 3),
        "pixel_decoder.output_convs.0.gn.weight": (c,),
        "pixel_decoder.output_convs.0.gn.bias": (c,),
        "pixel_decoder.mask_feature.weight": (c, c, 1, 1),
        "pixel_decoder.mask_feature.bias": (c,),
    }
    for i in range(9):
        p = f"transformer_decoder.layers.{i}."
        for attn in ("cross_attn", "self_attn"):
            keys |= {
                p + f"{attn}.attn.in_proj_weight": (3 * c, c),
                p + f"{attn}.attn.in_proj_bias": (3 * c,),
                p + f"{attn}.attn.out_proj.weight": (c, c),
                p + f"{attn}.attn.out_proj.bias": (c,),
            }
        shapes = {"ffn.layers.0.0": (2048, c), "ffn.layers.1": (c, 2048)}
        shapes |= {f"norms.{n}": (c,) for n in range(3)}
        for name, shape in shapes.items():
            keys |= {p + name + ".weight": shape, p + name + ".bias": shape[:1]}
    keys |= {
        "transformer_decoder.post_norm.weight": (c,),
        "transformer_decoder.post_norm.bias": (c,),
        "query_embed.weight": (100, c),
        "query_feat.weight": (100, c),
        "level_embed.weight": (levels, c),
        "cls_embed.weight": (classes + 1, c),
        "cls_embed.bias": (classes + 1,),
    }
    for k in (0, 2, 4):
        keys |= {f"mask_embed.{k}.weight": (c, c), f"mask_embed.{k}.bias": (c,)}
    return keys


def test_reference_head_has_mmdetection_keys_and_shapes() -> None:
    head = Mask2FormerHead([1024] * 4, 19, HeadConfig())
    state = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    expected = _expected_mmdet_keys()
    assert len(state) == len(expected) == 292
    assert state == expected
    assert state["pixel_decoder.encoder.layers.0.self_attn.sampling_offsets.weight"] == (192, 256)
    assert state["transformer_decoder.layers.8.ffn.layers.0.0.weight"] == (2048, 256)
    assert state["cls_embed.weight"] == (20, 256)


# --- head semantics ---------------------------------------------------------------------------


def test_forward_shapes_and_deep_supervision_outputs() -> None:
    head = _tiny_head()
    with torch.no_grad():
        cls_list, mask_list = head(_feats(2))
    assert len(cls_list) == len(mask_list) == TINY.transformer_decoder.num_layers + 1
    for cls_logits, mask_logits in zip(cls_list, mask_list, strict=True):
        assert cls_logits.shape == (2, TINY.num_queries, NUM_CLASSES + 1)
        assert mask_logits.shape == (2, TINY.num_queries, 16, 24)
        assert torch.isfinite(cls_logits).all() and torch.isfinite(mask_logits).all()
    # Every decoder layer changes the prediction.
    for before, after in itertools.pairwise(mask_list):
        assert not torch.allclose(before, after)


@pytest.mark.parametrize("num_levels", [1, 2, 3])
def test_pixel_decoder_levels_low_to_high_resolution(num_levels: int) -> None:
    torch.manual_seed(0)
    decoder = MSDeformAttnPixelDecoder(IN_CHANNELS, 32, 24, num_levels, TINY.pixel_decoder)
    with torch.no_grad():
        mask_feature, levels = decoder(_feats(2))
    assert mask_feature.shape == (2, 24, 16, 24)
    sizes = [(2, 3), (4, 6), (8, 12)][:num_levels]
    assert [tuple(level.shape) for level in levels] == [(2, 32, h, w) for h, w in sizes]
    head = _tiny_head(dataclasses.replace(TINY, num_levels=num_levels))
    with torch.no_grad():
        _, mask_list = head(_feats(1))
    assert mask_list[-1].shape == (1, TINY.num_queries, 16, 24)


def test_predict_semantic_is_mmseg_formula_on_last_prediction() -> None:
    head = _tiny_head()
    feats = _feats(2)
    with torch.no_grad():
        cls_list, mask_list = head(feats)
        scores = head.predict_semantic(feats, IMAGE_SIZE)
    masks = F.interpolate(mask_list[-1], size=IMAGE_SIZE, mode="bilinear", align_corners=False)
    probs = cls_list[-1].softmax(-1)[..., :NUM_CLASSES]
    expected = (probs[:, :, :, None, None] * masks.sigmoid()[:, :, None]).sum(1)
    assert scores.shape == (2, NUM_CLASSES, *IMAGE_SIZE)
    torch.testing.assert_close(scores, expected, atol=1e-6, rtol=1e-5)
    assert scores.min() >= 0
    assert scores.sum(1).max() <= TINY.num_queries


def test_batch_equals_one_image_at_a_time() -> None:
    head = _tiny_head()
    feats = _feats(2, seed=3)
    with torch.no_grad():
        batched = head(feats)
        scores = head.predict_semantic(feats, IMAGE_SIZE)
        for b in range(2):
            single = head([f[b : b + 1] for f in feats])
            for outs_batched, outs_single in zip(batched, single, strict=True):
                for x, y in zip(outs_batched, outs_single, strict=True):
                    torch.testing.assert_close(x[b : b + 1], y, atol=1e-5, rtol=1e-5)
            alone = head.predict_semantic([f[b : b + 1] for f in feats], IMAGE_SIZE)
            torch.testing.assert_close(scores[b : b + 1], alone, atol=1e-5, rtol=1e-5)


def _capture_cross_attn_masks(head: Mask2FormerHead) -> tuple[list[torch.Tensor], list]:
    masks: list[torch.Tensor] = []

    def hook(_module, _args, kwargs):
        masks.append(kwargs["attn_mask"])

    handles = [
        layer.cross_attn.attn.register_forward_pre_hook(hook, with_kwargs=True)
        for layer in head.transformer_decoder.layers
    ]
    return masks, handles


def test_masked_attention_uses_previous_prediction_at_next_level_size() -> None:
    head = _tiny_head()
    masks, handles = _capture_cross_attn_masks(head)
    with torch.no_grad():
        _, mask_list = head(_feats(2))
    for handle in handles:
        handle.remove()
    sizes = [(2, 3), (4, 6), (8, 12)]  # memory levels, low to high resolution
    heads = TINY.transformer_decoder.num_heads
    for i, captured in enumerate(masks):
        resized = F.interpolate(
            mask_list[i], size=sizes[i % 3], mode="bilinear", align_corners=False
        )
        expected = resized.flatten(2).sigmoid() < 0.5
        expected[expected.all(-1)] = False
        expected = expected.repeat_interleave(heads, dim=0)  # (B * heads, Q, h * w), batch major
        assert captured.dtype == torch.bool
        assert torch.equal(captured, expected)


def test_fully_masked_rows_are_cleared_and_outputs_stay_finite() -> None:
    logits = torch.stack((torch.linspace(-1, 1, 16), torch.full((16,), -5.0), torch.ones(16)))
    logits = logits.view(1, 3, 4, 4)
    # query 1 predicts nothing: it would be masked everywhere
    head = _tiny_head()
    mask = head._attention_mask(logits, (2, 2))
    assert mask.shape == (TINY.transformer_decoder.num_heads, 3, 4)
    assert not mask[:, 1].any()
    expected = (
        F.interpolate(logits, size=(2, 2), mode="bilinear", align_corners=False).flatten(2)[0, 0]
        < 0
    )
    assert torch.equal(mask[0, 0], expected)

    # All mask logits negative everywhere: every row would be fully masked.
    with torch.no_grad():
        head.pixel_decoder.mask_feature.weight.zero_()
        head.pixel_decoder.mask_feature.bias.fill_(1.0)
        head.mask_embed[4].weight.zero_()
        head.mask_embed[4].bias.fill_(-1.0)
    masks, handles = _capture_cross_attn_masks(head)
    with torch.no_grad():
        cls_list, mask_list = head(_feats(2))
        scores = head.predict_semantic(_feats(2), IMAGE_SIZE)
    for handle in handles:
        handle.remove()
    assert len(masks) == 2 * TINY.transformer_decoder.num_layers  # forward + predict_semantic
    assert not any(m.any() for m in masks)
    assert all(torch.isfinite(x).all() for x in (*cls_list, *mask_list, scores))


def test_gradients_reach_every_parameter() -> None:
    head = _tiny_head().train()

    def backward() -> list[str]:
        head.zero_grad(set_to_none=True)
        cls_list, mask_list = head(_feats(2))
        gen = torch.Generator().manual_seed(5)
        outputs = (*cls_list, *mask_list)
        sum((x * torch.randn(x.shape, generator=gen)).sum() for x in outputs).backward()
        assert all(p.grad is not None for p in head.parameters())  # no unused parameter
        return [n for n, p in head.named_parameters() if not p.grad.any()]

    # At mmcv's init the offset and attention-weight matrices are zero, so the level encoding
    # (only added to the queries that feed them) gets a zero gradient on the first step.
    assert backward() == ["pixel_decoder.level_encoding.weight"]
    with torch.no_grad():
        for layer in head.pixel_decoder.encoder.layers:
            layer.self_attn.sampling_offsets.weight.normal_(std=0.01)
            layer.self_attn.attention_weights.weight.normal_(std=0.01)
    assert backward() == []


def test_bad_inputs_raise_specific_errors() -> None:
    head = _tiny_head()
    feats = _feats(1)
    with pytest.raises(ValueError, match="channels"):
        head(feats[:3])
    with pytest.raises(ValueError, match="channels"):
        head([feats[0][:, :10], *feats[1:]])
    with pytest.raises(ConfigError):
        Mask2FormerHead([48, 48, 48], NUM_CLASSES, TINY)
    with pytest.raises(ConfigError):
        Mask2FormerHead(IN_CHANNELS, 0, TINY)
