"""AdamW parameter groups (lr and weight decay per parameter, as the reference's MMEngine
paramwise_cfg gives them) and the constant-then-poly lr schedule."""

from __future__ import annotations

import functools
import io

import pytest
import torch

from vltseg_ros.model.segmentor import build_model
from vltseg_ros.training.optim import build_optimizer, build_scheduler, lr_factor, param_groups
from vltseg_ros.training.run_config import TrainSection


@functools.cache
def _rules(model_name: str) -> dict[str, tuple[float, float]]:
    """Parameter name -> (lr, weight decay) of its group."""
    groups = param_groups(
        build_model(model_name), lr=1e-4, weight_decay=0.05, backbone_lr_mult=0.1
    )
    return {
        name: (group["lr"], group["weight_decay"])
        for group in groups
        for name in group["param_names"]
    }


BACKBONE_DECAY = (1e-5, 0.05)
BACKBONE_NO_DECAY = (1e-5, 0.0)
HEAD_DECAY = (1e-4, 0.05)
HEAD_NO_DECAY = (1e-4, 0.0)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # EVA02 (timm) tower: the reference's custom keys
        ("encoder.visual.trunk.pos_embed", BACKBONE_NO_DECAY),
        ("encoder.visual.trunk.blocks.0.norm1.weight", BACKBONE_NO_DECAY),
        ("encoder.visual.trunk.blocks.3.norm2.bias", BACKBONE_NO_DECAY),
        ("encoder.visual.trunk.norm.weight", BACKBONE_NO_DECAY),
        ("encoder.visual.trunk.cls_token", BACKBONE_DECAY),
        ("encoder.visual.trunk.patch_embed.proj.weight", BACKBONE_DECAY),
        ("encoder.visual.trunk.blocks.2.attn.proj.bias", BACKBONE_DECAY),
        ("encoder.visual.trunk.blocks.1.mlp.norm.weight", BACKBONE_DECAY),  # sub-LN: decayed
        ("neck.fpn1.0.weight", BACKBONE_DECAY),
        ("neck.fpn1.1.weight", BACKBONE_DECAY),  # pyramid BatchNorm: 'backbone' key wins
        ("neck.fpn2.0.bias", BACKBONE_DECAY),
        # head: embeddings and norms without decay, everything else with
        ("head.query_embed.weight", HEAD_NO_DECAY),
        ("head.query_feat.weight", HEAD_NO_DECAY),
        ("head.level_embed.weight", HEAD_NO_DECAY),
        ("head.pixel_decoder.input_convs.0.gn.weight", HEAD_NO_DECAY),
        ("head.pixel_decoder.input_convs.0.gn.bias", HEAD_NO_DECAY),
        ("head.transformer_decoder.layers.0.norms.2.bias", HEAD_NO_DECAY),
        ("head.transformer_decoder.post_norm.weight", HEAD_NO_DECAY),
        ("head.pixel_decoder.input_convs.0.conv.bias", HEAD_DECAY),
        ("head.pixel_decoder.level_encoding.weight", HEAD_DECAY),
        ("head.cls_embed.weight", HEAD_DECAY),
        ("head.mask_embed.0.bias", HEAD_DECAY),
        ("head.transformer_decoder.layers.1.cross_attn.attn.in_proj_weight", HEAD_DECAY),
    ],
)
def test_eva_param_rules(name, expected):
    rules = _rules("tiny-eva")
    assert rules[name] == pytest.approx(expected)


def test_open_clip_vit_param_rules_and_coverage():
    rules = _rules("tiny")
    assert rules["encoder.visual.positional_embedding"] == pytest.approx(BACKBONE_NO_DECAY)
    assert rules["encoder.visual.ln_pre.weight"] == pytest.approx(BACKBONE_NO_DECAY)
    assert rules["encoder.visual.transformer.resblocks.0.ln_1.bias"] == pytest.approx(
        BACKBONE_NO_DECAY
    )
    assert rules["encoder.visual.class_embedding"] == pytest.approx(BACKBONE_DECAY)
    assert rules["encoder.visual.transformer.resblocks.0.attn.in_proj_weight"] == pytest.approx(
        BACKBONE_DECAY
    )
    model = build_model("tiny")
    assert set(rules) == {name for name, _ in model.named_parameters()}  # each exactly once


def test_frozen_parameters_are_left_out_and_groups_are_named():
    model = build_model("tiny")
    model.encoder.visual.proj.requires_grad_(False)
    groups = param_groups(model, 1e-4, 0.05, 0.1)
    assert [g["name"] for g in groups] == [
        "backbone_decay",
        "backbone_no_decay",
        "head_decay",
        "head_no_decay",
    ]
    assert all("encoder.visual.proj" not in g["param_names"] for g in groups)


def _mmengine_poly(base: float, begin: int, end: int, power: float, steps: int) -> list[float]:
    """lr of iterations 0 .. steps-1 by MMEngine's recursive PolyLR (ParamSchedulerHook steps
    the scheduler after every iteration; nothing happens before ``begin``)."""
    lrs, lr, last_step, total = [], base, -1, end - begin
    for iteration in range(steps):
        lrs.append(lr)
        global_step = iteration + 1
        if begin <= global_step < end:
            last_step += 1
            if last_step > 0:
                lr = lr * (1 - 1 / (total - last_step + 1)) ** power
    return lrs


def test_schedule_matches_mmengine_poly_lr():
    train = TrainSection(iterations=1200, constant_iterations=500, lr=1e-4)
    model = build_model("tiny")
    optimizer = build_optimizer(model, train)
    scheduler = build_scheduler(optimizer, train)
    lrs = []
    for _ in range(train.iterations):
        lrs.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    reference = _mmengine_poly(1e-4, 500, 1200, 0.9, train.iterations)
    head = [lr[-1] for lr in lrs]
    assert head[:501] == [1e-4] * 501
    assert head == pytest.approx(reference, rel=1e-9, abs=1e-15)
    assert head[501] == pytest.approx(1e-4 * (1 - 1 / 700) ** 0.9)
    assert head[-1] == pytest.approx(1e-4 * (1 / 700) ** 0.9) and head[-1] > 0
    backbone = [lr[0] for lr in lrs]
    assert backbone == pytest.approx([0.1 * v for v in head])


def test_lr_factor_edges():
    assert lr_factor(0, 100, 500, 0.9) == 1.0  # run shorter than the constant phase
    assert lr_factor(100, 100, 0, 0.9) == 0.0
    assert lr_factor(50, 100, 0, 1.0) == pytest.approx(0.5)
    assert lr_factor(600, 500, 500, 0.9) == 0.0


def test_scheduler_state_round_trips_weights_only():
    train = TrainSection(iterations=50, constant_iterations=10)
    model = build_model("tiny")
    optimizer = build_optimizer(model, train)
    scheduler = build_scheduler(optimizer, train)
    for _ in range(20):
        optimizer.step()
        scheduler.step()
    buffer = io.BytesIO()
    torch.save({"s": scheduler.state_dict(), "o": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    optimizer2 = build_optimizer(model, train)
    scheduler2 = build_scheduler(optimizer2, train)
    optimizer2.load_state_dict(state["o"])
    scheduler2.load_state_dict(state["s"])
    optimizer.step()
    scheduler.step()
    optimizer2.step()
    scheduler2.step()
    assert scheduler2.get_last_lr() == scheduler.get_last_lr()
    assert scheduler.get_last_lr()[-1] == pytest.approx(1e-4 * lr_factor(21, 50, 10, 0.9))
