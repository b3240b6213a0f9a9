"""The gather-based deformable sampling equals grid_sample and the naive loop; switching modes."""

from __future__ import annotations

import pytest
import torch

from test.model.test_mask2former_head import (
    IMAGE_SIZE,
    TINY,
    _feats,
    _naive_deformable_attn,
    _tiny_head,
)
from vltseg_ros.errors import ConfigError
from vltseg_ros.model.deformable_attention import (
    MultiScaleDeformableAttention,
    multi_scale_deformable_attn,
    multi_scale_deformable_attn_gather,
    set_sampling,
)
from vltseg_ros.model.segmentor import build_model

SHAPES = [(3, 5), (2, 4), (4, 3), (1, 6)]  # non-square levels, one a single row


def _inputs(batch: int, queries: int, heads: int, dims: int, points: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    value = torch.randn(batch, sum(h * w for h, w in SHAPES), heads, dims, generator=gen)
    # Locations spread well beyond [0, 1]: points partly and wholly outside the maps.
    locations = torch.rand(batch, queries, heads, len(SHAPES), points, 2, generator=gen) * 1.8
    locations = locations - 0.4
    weights = torch.rand(batch, queries, heads, len(SHAPES), points, generator=gen)
    return value, locations, weights


def _place_on_borders(locations: torch.Tensor) -> torch.Tensor:
    """Put points exactly on pixel centers, map edges and half a pixel beyond them."""
    locations = locations.clone()
    for level, (h, w) in enumerate(SHAPES):
        special = [
            (0.5 / w, 0.5 / h),  # first pixel center: only one neighbour has weight
            ((w - 0.5) / w, (h - 0.5) / h),  # last pixel center
            (0.0, 0.0),  # map corner: half a pixel out on both axes
            (1.0, 1.0),  # opposite corner
            (0.0, 0.5),  # left edge
            (1.0, 0.25),  # right edge
            (-0.5 / w, 0.5),  # one pixel outside the left edge: reads nothing
            (0.5, 1.0 + 0.5 / h),  # one pixel below the bottom edge
        ]
        for i, (x, y) in enumerate(special):
            locations[0, i, 0, level, 0] = torch.tensor([x, y])
            locations[-1, -1 - i, -1, level, -1] = torch.tensor([x, y])
    return locations


@pytest.mark.parametrize("seed", [0, 1])
def test_gather_equals_grid_sample_and_naive_reference(seed: int) -> None:
    batch, queries, heads, dims, points = 2, 9, 3, 4, 2
    value, locations, weights = _inputs(batch, queries, heads, dims, points, seed)
    locations = _place_on_borders(locations)
    gathered = multi_scale_deformable_attn_gather(value, SHAPES, locations, weights)
    grid = multi_scale_deformable_attn(value, SHAPES, locations, weights)
    naive = _naive_deformable_attn(value, SHAPES, locations, weights)
    assert gathered.shape == (batch, queries, heads * dims)
    assert gathered.dtype == value.dtype
    torch.testing.assert_close(gathered, naive, atol=1e-5, rtol=0)
    torch.testing.assert_close(gathered, grid, atol=1e-5, rtol=0)


def test_gather_reads_exact_pixels_and_zero_outside() -> None:
    """At pixel centers the result is the pixel itself; beyond the border it is zero."""
    value, locations, _ = _inputs(1, 2, 1, 3, 1, seed=2)
    h, w = SHAPES[1]
    start = SHAPES[0][0] * SHAPES[0][1]
    locations[0, 0, 0, :, 0] = torch.tensor([3.5 / w, 1.5 / h])  # pixel (y=1, x=3) of level 1
    locations[0, 1, 0, :, 0] = torch.tensor([-0.6, 2.0])  # far outside every level
    weights = torch.zeros(1, 2, 1, len(SHAPES), 1)
    weights[:, :, :, 1] = 1.0  # only level 1 counts
    out = multi_scale_deformable_attn_gather(value, SHAPES, locations, weights)
    torch.testing.assert_close(out[0, 0], value[0, start + 1 * w + 3, 0], atol=1e-6, rtol=0)
    assert not out[0, 1].any()


def test_gather_batches_independently() -> None:
    value, locations, weights = _inputs(3, 5, 2, 4, 3, seed=3)
    together = multi_scale_deformable_attn_gather(value, SHAPES, locations, weights)
    for b in range(3):
        alone = multi_scale_deformable_attn_gather(
            value[b : b + 1], SHAPES, locations[b : b + 1], weights[b : b + 1]
        )
        torch.testing.assert_close(together[b : b + 1], alone, atol=1e-6, rtol=0)


def test_gather_has_gradients_like_grid_sample() -> None:
    value, locations, weights = _inputs(1, 4, 2, 3, 2, seed=4)
    grads = []
    for core in (multi_scale_deformable_attn, multi_scale_deformable_attn_gather):
        inputs = [t.clone().requires_grad_(True) for t in (value, locations, weights)]
        core(inputs[0], SHAPES, inputs[1], inputs[2]).square().sum().backward()
        grads.append([t.grad for t in inputs])
    for from_grid, from_gather in zip(*grads, strict=True):
        torch.testing.assert_close(from_gather, from_grid, atol=1e-4, rtol=1e-4)


def test_whole_head_outputs_equal_with_both_modes() -> None:
    head = _tiny_head()
    # Larger offsets than mmcv's init, so points leave the maps.
    with torch.no_grad():
        for layer in head.pixel_decoder.encoder.layers:
            layer.self_attn.sampling_offsets.weight.normal_(std=0.5)
            layer.self_attn.attention_weights.weight.normal_(std=0.5)
    feats = _feats(2, seed=5)
    outputs = {}
    for mode in ("grid_sample", "gather"):
        assert set_sampling(head, mode) == TINY.pixel_decoder.num_layers
        with torch.no_grad():
            cls_list, mask_list = head(feats)
            outputs[mode] = (*cls_list, *mask_list, head.predict_semantic(feats, IMAGE_SIZE))
    for grid, gathered in zip(outputs["grid_sample"], outputs["gather"], strict=True):
        torch.testing.assert_close(gathered, grid, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["tiny", "tiny-eva"])
def test_whole_model_scores_equal_with_both_modes(name: str) -> None:
    model = build_model(name).eval()
    images = torch.randn(2, 3, 64, 96)
    scores = {}
    for mode in ("grid_sample", "gather"):
        set_sampling(model, mode)
        with torch.no_grad():
            scores[mode] = model(images)
    torch.testing.assert_close(scores["gather"], scores["grid_sample"], atol=1e-5, rtol=1e-5)


def test_sampling_mode_default_switch_and_validation() -> None:
    attn = MultiScaleDeformableAttention(8, 2, 1, 1)
    assert attn.sampling == "grid_sample"
    assert MultiScaleDeformableAttention(8, 2, 1, 1, sampling="gather").sampling == "gather"
    model = build_model("tiny")
    modules = [m for m in model.modules() if isinstance(m, MultiScaleDeformableAttention)]
    assert set_sampling(model, "gather") == len(modules) == 2
    assert all(m.sampling == "gather" for m in modules)
    assert set_sampling(torch.nn.Linear(2, 2), "gather") == 0
    with pytest.raises(ConfigError, match="grid_sample"):
        set_sampling(model, "bilinear")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        attn.sampling = "nearest"  # type: ignore[assignment]
    with pytest.raises(ConfigError):
        MultiScaleDeformableAttention(8, 2, 1, 1, sampling="cuda")  # type: ignore[arg-type]
    assert all(m.sampling == "gather" for m in modules)  # a refused mode changes nothing
