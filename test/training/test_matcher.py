"""Hungarian matching: known optimal assignments and costs checked against explicit formulas."""

from __future__ import annotations

import itertools
import logging
import math

import pytest
import torch

from vltseg_ros.errors import ConfigError
from vltseg_ros.training import matcher as matcher_module
from vltseg_ros.training.matcher import HungarianMatcher
from vltseg_ros.training.targets import semantic_targets

NUM_CLASSES = 5


def _halves_labels() -> torch.Tensor:
    """(1, 8, 8) label map: class 3 on the left half, class 1 on the right half."""
    labels = torch.full((1, 8, 8), 3, dtype=torch.int64)
    labels[0, :, 4:] = 1
    return labels


def _confident(masks: torch.Tensor, scale: float = 12.0) -> torch.Tensor:
    """Binary masks (K, H, W) -> mask logits +scale inside, -scale outside."""
    return scale * (2.0 * masks.float() - 1.0)


def _class_logits(classes: list[int], scale: float = 6.0) -> torch.Tensor:
    """(Q, C + 1) logits peaked on the given classes (NUM_CLASSES = no-object)."""
    logits = torch.zeros(len(classes), NUM_CLASSES + 1)
    logits[torch.arange(len(classes)), torch.tensor(classes)] = scale
    return logits


def test_permuted_copies_and_a_junk_query_are_matched_back() -> None:
    targets = semantic_targets(_halves_labels(), NUM_CLASSES)
    classes, masks = targets[0]
    assert classes.tolist() == [1, 3]  # target 0 = class 1 (right), target 1 = class 3 (left)
    # query 0: junk (uncertain mask, no-object class); query 1 copies target 1, query 2 target 0.
    mask_logits = torch.stack([torch.zeros(8, 8), _confident(masks[1]), _confident(masks[0])])
    cls_logits = _class_logits([NUM_CLASSES, 3, 1])
    matcher = HungarianMatcher(num_points=256)
    torch.manual_seed(0)
    ((rows, cols),) = matcher(cls_logits[None], mask_logits[None], targets)
    assert rows.dtype == cols.dtype == torch.int64
    assert rows.tolist() == [1, 2]
    assert cols.tolist() == [1, 0]


def test_match_holds_when_predictions_are_at_quarter_resolution() -> None:
    labels = torch.zeros((1, 32, 32), dtype=torch.int64)
    labels[0, 16:] = 2
    labels[0, :, :4] = 255
    targets = semantic_targets(labels, NUM_CLASSES)
    coarse = semantic_targets(labels[:, ::4, ::4].clone(), NUM_CLASSES)[0][1]  # (2, 8, 8)
    mask_logits = torch.stack([_confident(coarse[1]), torch.zeros(8, 8), _confident(coarse[0])])
    ((rows, cols),) = HungarianMatcher(num_points=500)(
        _class_logits([2, NUM_CLASSES, 0])[None], mask_logits[None], targets
    )
    assert dict(zip(rows.tolist(), cols.tolist(), strict=True)) == {0: 1, 2: 0}


def test_class_cost_alone_decides_when_masks_are_identical() -> None:
    labels = torch.tensor([[[0, 2], [4, 4]]])
    targets = semantic_targets(labels, NUM_CLASSES)  # classes 0, 2, 4
    cls_logits = torch.tensor(
        [
            [0.0, 0.0, 3.0, 0.0, 1.0, 0.0],  # prefers 2
            [0.0, 0.0, 0.0, 0.0, 0.0, 5.0],  # no-object
            [4.0, 0.0, 0.0, 0.0, 0.5, 0.0],  # prefers 0
            [0.0, 0.0, 0.0, 0.0, 2.0, 0.0],  # prefers 4
        ]
    )
    mask_logits = torch.zeros(4, 2, 2)  # every query predicts the same mask
    matcher = HungarianMatcher(cost_class=1.0, cost_mask=0.0, cost_dice=0.0, num_points=16)
    ((rows, cols),) = matcher(cls_logits[None], mask_logits[None], targets)
    assert dict(zip(rows.tolist(), cols.tolist(), strict=True)) == {0: 1, 2: 0, 3: 2}
    cost = matcher.cost_matrix(cls_logits, mask_logits, *targets[0], torch.rand(16, 2))
    probs = cls_logits.softmax(-1)
    torch.testing.assert_close(cost, -probs[:, [0, 2, 4]])


def _brute_force_best(cost: torch.Tensor) -> float:
    """Smallest total cost of a one-to-one assignment of min(Q, K) pairs, by enumeration."""
    num_queries, num_targets = cost.shape
    if num_queries >= num_targets:
        return min(
            sum(cost[q, k].item() for k, q in enumerate(perm))
            for perm in itertools.permutations(range(num_queries), num_targets)
        )
    return _brute_force_best(cost.T)


@pytest.mark.parametrize("num_queries", [2, 5])
def test_non_square_costs_give_the_optimal_assignment(num_queries: int) -> None:
    torch.manual_seed(3)
    labels = torch.randint(0, 3, (1, 6, 6))  # 3 targets
    targets = semantic_targets(labels, NUM_CLASSES)
    cls_logits = torch.randn(1, num_queries, NUM_CLASSES + 1)
    mask_logits = torch.randn(1, num_queries, 3, 3) * 3
    matcher = HungarianMatcher(num_points=64)
    generator = torch.Generator().manual_seed(7)
    ((rows, cols),) = matcher(cls_logits, mask_logits, targets, generator=generator)
    points = torch.rand(1, 64, 2, generator=torch.Generator().manual_seed(7))[0]
    cost = matcher.cost_matrix(cls_logits[0], mask_logits[0], *targets[0], points)
    assert len(rows) == len(cols) == min(num_queries, 3)
    assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
    assert rows.tolist() == sorted(rows.tolist())
    assert cost[rows, cols].sum().item() == pytest.approx(_brute_force_best(cost), abs=1e-5)


def test_cost_matrix_equals_explicit_formulas() -> None:
    torch.manual_seed(1)
    cls_logits = torch.randn(3, NUM_CLASSES + 1)
    mask_logits = torch.randn(3, 4, 4) * 2
    classes = torch.tensor([1, 4])
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[0, :2] = True
    masks[1, 2:, 1:] = True
    # the centers of the 16 pixels: sampling reads the pixels exactly
    ys, xs = torch.meshgrid(torch.arange(4), torch.arange(4), indexing="ij")
    points = torch.stack([(xs.flatten() + 0.5) / 4, (ys.flatten() + 0.5) / 4], dim=-1)
    matcher = HungarianMatcher(cost_class=2.0, cost_mask=5.0, cost_dice=5.0)
    cost = matcher.cost_matrix(cls_logits, mask_logits, classes, masks, points)

    expected = torch.zeros(3, 2)
    for q, k in itertools.product(range(3), range(2)):
        x = mask_logits[q].flatten().tolist()
        t = masks[k].flatten().float().tolist()
        p = [1.0 / (1.0 + math.exp(-v)) for v in x]
        pairs = list(zip(p, t, strict=True))
        bce = sum(-(ti * math.log(pi) + (1 - ti) * math.log(1 - pi)) for pi, ti in pairs)
        dice = 1 - (2 * sum(pi * ti for pi, ti in pairs) + 1) / (sum(p) + sum(t) + 1)
        prob = math.exp(cls_logits[q, classes[k]]) / cls_logits[q].exp().sum().item()
        expected[q, k] = -2.0 * prob + 5.0 * bce / 16 + 5.0 * dice
    torch.testing.assert_close(cost, expected, rtol=1e-5, atol=1e-5)


def test_image_without_targets_matches_nothing() -> None:
    labels = torch.full((2, 4, 4), 255, dtype=torch.int64)
    labels[1, 0, 0] = 2
    targets = semantic_targets(labels, NUM_CLASSES)
    matches = HungarianMatcher(num_points=8)(
        torch.randn(2, 3, NUM_CLASSES + 1), torch.randn(2, 3, 2, 2), targets
    )
    assert [len(rows) for rows, _ in matches] == [0, 1]
    assert matches[1][1].tolist() == [0]


def test_generator_makes_matching_reproducible_and_runs_without_grad() -> None:
    torch.manual_seed(0)
    labels = torch.randint(0, NUM_CLASSES, (2, 16, 16))
    targets = semantic_targets(labels, NUM_CLASSES)
    cls_logits = torch.randn(2, 10, NUM_CLASSES + 1, requires_grad=True)
    mask_logits = torch.randn(2, 10, 4, 4, requires_grad=True)
    matcher = HungarianMatcher(num_points=32)
    first = matcher(cls_logits, mask_logits, targets, generator=torch.Generator().manual_seed(5))
    second = matcher(cls_logits, mask_logits, targets, generator=torch.Generator().manual_seed(5))
    for (r1, c1), (r2, c2) in zip(first, second, strict=True):
        assert torch.equal(r1, r2) and torch.equal(c1, c2)
        assert not r1.requires_grad


def test_non_finite_predictions_are_matched_last(caplog: pytest.LogCaptureFixture) -> None:
    targets = semantic_targets(_halves_labels(), NUM_CLASSES)
    masks = targets[0][1]
    mask_logits = torch.stack([_confident(masks[0]), _confident(masks[1]), _confident(masks[1])])
    mask_logits[1, 0, 0] = float("nan")  # query 1 is broken; query 2 is a clean copy of it
    cls_logits = _class_logits([1, 3, 3])
    with caplog.at_level(logging.WARNING, logger=matcher_module.__name__):
        ((rows, cols),) = HungarianMatcher(num_points=128)(
            cls_logits[None], mask_logits[None], targets
        )
    assert dict(zip(rows.tolist(), cols.tolist(), strict=True)) == {0: 0, 2: 1}
    assert "not finite" in caplog.text


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cost_class": -1.0},
        {"cost_class": 0.0, "cost_mask": 0.0, "cost_dice": 0.0},
        {"num_points": 0},
    ],
)
def test_bad_settings_raise_config_error(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        HungarianMatcher(**kwargs)


def test_mismatched_shapes_raise_value_error() -> None:
    targets = semantic_targets(_halves_labels(), NUM_CLASSES)
    with pytest.raises(ValueError, match="batch/query sizes differ"):
        HungarianMatcher()(torch.randn(1, 3, 6), torch.randn(1, 4, 2, 2), targets)
