"""Mask2Former targets, point sampling and losses: closed forms, hand-computed cases, and
agreement with Hugging Face transformers' ``Mask2FormerLoss`` (``test/golden``)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from vltseg_ros.errors import ConfigError
from vltseg_ros.training import criterion as criterion_module
from vltseg_ros.training import matcher as matcher_module
from vltseg_ros.training import point_sampling
from vltseg_ros.training.criterion import Mask2FormerCriterion
from vltseg_ros.training.point_sampling import point_sample, uncertainty_points
from vltseg_ros.training.run_config import LossSection
from vltseg_ros.training.targets import semantic_targets

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "mask2former_loss_hf.safetensors"
C = 3  # classes in the hand-built cases; column C of the class logits is no-object


def _pixel_centers(height: int, width: int) -> torch.Tensor:
    """(H * W, 2) points (x, y) at the pixel centers, row-major: sampling reads pixels exactly."""
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return torch.stack([(xs.flatten() + 0.5) / width, (ys.flatten() + 0.5) / height], dim=-1)


@pytest.fixture
def pixel_sampler(monkeypatch: pytest.MonkeyPatch):
    """Replace the random points of matcher and mask losses by all pixel centers of (H, W)."""

    def install(height: int, width: int) -> None:
        grid = _pixel_centers(height, width)

        def matcher_points(n, num_points, device, generator=None):
            assert num_points == height * width
            return grid.expand(n, -1, -1).to(device)

        def loss_points(logits, num_points, oversample_ratio, importance_ratio, generator=None):
            assert num_points == height * width
            return grid.expand(logits.shape[0], -1, -1).to(logits.device)

        monkeypatch.setattr(matcher_module, "random_points", matcher_points)
        monkeypatch.setattr(criterion_module, "uncertainty_points", loss_points)

    return install


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _cross_entropy(logits: list[float], target: int) -> float:
    return math.log(sum(math.exp(v) for v in logits)) - logits[target]


# ---------------------------------------------------------------- targets and point sampling


def test_semantic_targets_one_mask_per_present_class_and_ignore_in_none() -> None:
    labels = torch.tensor([[[2, 2, 255], [0, 2, 255]], [[255, 255, 255], [255, 255, 255]]])
    (classes, masks), (empty_classes, empty_masks) = semantic_targets(labels, C)
    assert classes.dtype == torch.int64 and classes.tolist() == [0, 2]
    assert masks.dtype == torch.bool and masks.shape == (2, 2, 3)
    assert masks[0].tolist() == [[False, False, False], [True, False, False]]
    assert masks[1].tolist() == [[True, True, False], [False, True, False]]
    assert not masks[:, :, 2].any()  # ignore pixels are in no mask
    assert empty_classes.numel() == 0 and empty_masks.shape == (0, 2, 3)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (torch.tensor([[[0, 3]]]), "neither class ids"),
        (torch.tensor([[[0, -1]]]), "neither class ids"),
        (torch.zeros(1, 2, 2), "integer"),
        (torch.zeros(2, 2, dtype=torch.int64), "integer"),
    ],
)
def test_semantic_targets_reject_bad_labels(labels: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        semantic_targets(labels, C)


def test_point_sample_reads_pixel_centers_and_agrees_across_resolutions() -> None:
    torch.manual_seed(0)
    coarse = torch.randn(2, 3, 4, 6)
    centers = _pixel_centers(4, 6).expand(2, -1, -1)
    torch.testing.assert_close(point_sample(coarse, centers), coarse.flatten(2))
    # a 1/4-resolution map read at the pixel centers of the full resolution gives its bilinear
    # upsampling (away from the border, where grid_sample pads with 0 and interpolate clamps)
    fine = F.interpolate(coarse, scale_factor=4, mode="bilinear", align_corners=False)
    fine_centers = _pixel_centers(16, 24).expand(2, -1, -1)
    sampled = point_sample(coarse, fine_centers).reshape(2, 3, 16, 24)
    torch.testing.assert_close(sampled[..., 2:-2, 2:-2], fine[..., 2:-2, 2:-2])


def test_uncertainty_points_keep_the_most_uncertain_candidates() -> None:
    torch.manual_seed(0)
    logits = torch.randn(3, 16, 16) * 4
    points = uncertainty_points(logits, 40, 3.0, 0.25, torch.Generator().manual_seed(9))
    assert points.shape == (3, 40, 2) and points.dtype == torch.float32
    assert ((points >= 0) & (points <= 1)).all()
    # replay the generator: 120 candidates per mask, of which the 10 with the smallest
    # |interpolated logit| come first, then 30 fresh uniform points
    generator = torch.Generator().manual_seed(9)
    candidates = torch.rand(3, 120, 2, generator=generator)
    uncertainty = point_sample(logits[:, None], candidates)[:, 0].abs()
    for mask in range(3):
        best = candidates[mask, uncertainty[mask].argsort()[:10]]
        assert sorted(map(tuple, points[mask, :10].tolist())) == sorted(map(tuple, best.tolist()))
    torch.testing.assert_close(points[:, 10:], torch.rand(3, 30, 2, generator=generator))
    chosen = point_sample(logits[:, None], points[:, :10])[:, 0].abs()
    assert chosen.mean() < 0.2 * uncertainty.mean()  # they sit near the mask borders
    with pytest.raises(ConfigError):
        uncertainty_points(logits, 40, 0.5, 0.25)
    with pytest.raises(ConfigError):
        uncertainty_points(logits, 40, 3.0, 1.5)


# ---------------------------------------------------------------- losses: closed forms


def test_perfect_prediction_has_no_mask_loss_and_closed_form_class_loss(pixel_sampler) -> None:
    labels = torch.tensor([[[0, 0, 2, 2], [0, 255, 2, 2], [1, 1, 1, 255]]])
    pixel_sampler(3, 4)
    masks = semantic_targets(labels, C)[0][1].float()
    mask_logits = torch.cat([30.0 * (2 * masks - 1), torch.zeros(1, 3, 4)])[None]  # 4 queries
    cls_logits = torch.zeros(1, 4, C + 1)  # uniform: CE = log(C + 1) for every query
    criterion = Mask2FormerCriterion(C, LossSection(num_points=12))
    losses = criterion([cls_logits], [mask_logits], labels)
    # not exactly 0: float32 pixel centers (y + 0.5) / 3 read targets of 1e-8 instead of 0
    assert losses["loss_mask"].item() < 1e-6
    assert losses["loss_dice"].item() < 1e-6
    assert losses["loss_cls"].item() == pytest.approx(2.0 * math.log(C + 1), rel=1e-6)
    assert losses["loss"].item() == pytest.approx(2.0 * math.log(C + 1), rel=1e-6)


def test_hand_computed_losses(pixel_sampler) -> None:
    labels = torch.tensor([[[0, 0, 1, 1], [0, 255, 1, 1], [2, 2, 2, 255]]])
    pixel_sampler(3, 4)
    target = semantic_targets(labels, C)[0][1].float()  # classes 0, 1, 2
    torch.manual_seed(4)
    # query 3 ~ class 0, query 0 ~ class 1, query 1 ~ class 2, query 2 junk
    mask_logits = torch.randn(4, 3, 4)
    mask_logits[[3, 0, 1]] += 3.0 * (2 * target - 1)
    cls_logits = torch.randn(4, C + 1)
    cls_logits[[3, 0, 1], [0, 1, 2]] += 3.0
    criterion = Mask2FormerCriterion(C, LossSection(num_points=12, no_object_weight=0.25))
    cls, mask, dice = criterion.layer_losses(
        cls_logits[None], mask_logits[None], semantic_targets(labels, C), torch.tensor(3.0)
    )

    matched = {3: 0, 0: 1, 1: 2}  # query -> class (= target index)
    weights = [1.0 if q in matched else 0.25 for q in range(4)]
    targets = [matched.get(q, C) for q in range(4)]
    ce = [_cross_entropy(cls_logits[q].tolist(), targets[q]) for q in range(4)]
    expected_cls = sum(w * v for w, v in zip(weights, ce, strict=True)) / sum(weights)
    bce_sum, dice_sum = 0.0, 0.0
    for q, k in matched.items():
        x, t = mask_logits[q].flatten().tolist(), target[k].flatten().tolist()
        p = [_sigmoid(v) for v in x]
        bce_sum += sum(
            -(ti * math.log(pi) + (1 - ti) * math.log(1 - pi)) for pi, ti in zip(p, t, strict=True)
        )
        inter = sum(pi * ti for pi, ti in zip(p, t, strict=True))
        dice_sum += 1 - (2 * inter + 1) / (sum(p) + sum(t) + 1)
    assert cls.item() == pytest.approx(expected_cls, rel=1e-5)
    assert mask.item() == pytest.approx(bce_sum / (3 * 12), rel=1e-5)
    assert dice.item() == pytest.approx(dice_sum / 3, rel=1e-5)


@pytest.mark.parametrize("no_object_weight", [0.0, 0.1, 1.0])
def test_no_object_weight_weights_the_unmatched_queries(no_object_weight: float) -> None:
    labels = torch.ones((1, 4, 4), dtype=torch.int64)  # one target, class 1
    cls_logits = torch.tensor(
        [[[0.5, 2.0, -1.0, 0.0], [1.0, 0.0, 0.0, 0.3], [0.0, 0.0, 2.0, 1.0]]]
    )
    mask_logits = torch.stack([torch.full((2, 2), 5.0), torch.zeros(2, 2), -torch.ones(2, 2)])
    loss = LossSection(num_points=16, no_object_weight=no_object_weight)
    criterion = Mask2FormerCriterion(C, loss)
    losses = criterion([cls_logits], [mask_logits[None]], labels)
    matched = _cross_entropy(cls_logits[0, 0].tolist(), 1)
    unmatched = [_cross_entropy(cls_logits[0, q].tolist(), C) for q in (1, 2)]
    expected = (matched + no_object_weight * sum(unmatched)) / (1 + 2 * no_object_weight)
    assert losses["loss_cls"].item() == pytest.approx(2.0 * expected, rel=1e-5)


def test_all_ignore_batch_gives_no_object_class_loss_and_zero_mask_losses() -> None:
    labels = torch.full((2, 8, 8), 255, dtype=torch.int64)
    cls_logits = torch.randn(2, 5, C + 1, requires_grad=True)
    mask_logits = torch.randn(2, 5, 2, 2, requires_grad=True)
    criterion = Mask2FormerCriterion(C, LossSection(num_points=16))
    losses = criterion([cls_logits], [mask_logits], labels)
    expected = F.cross_entropy(cls_logits.detach().flatten(0, 1), torch.full((10,), C))
    assert losses["loss_cls"].item() == pytest.approx(2.0 * expected.item(), rel=1e-5)
    assert losses["loss_mask"].item() == losses["loss_dice"].item() == 0.0
    losses["loss"].backward()
    assert mask_logits.grad is not None and not mask_logits.grad.any()


# ---------------------------------------------------------------- deep supervision, randomness


def _random_inputs(layers: int = 3, seed: int = 0):
    torch.manual_seed(seed)
    labels = torch.randint(0, C, (2, 16, 16))
    labels[0, :4] = 255
    cls_logits = [torch.randn(2, 6, C + 1, requires_grad=True) for _ in range(layers)]
    mask_logits = [torch.randn(2, 6, 4, 4, requires_grad=True) for _ in range(layers)]
    return cls_logits, mask_logits, labels


def test_names_weights_total_and_gradients_of_every_layer() -> None:
    cls_logits, mask_logits, labels = _random_inputs()
    criterion = Mask2FormerCriterion(C, LossSection(num_points=32))
    losses = criterion(cls_logits, mask_logits, labels, generator=torch.Generator().manual_seed(1))
    parts = ["loss_cls", "loss_mask", "loss_dice"]
    expected_keys = {f"{p}{n}" for p in ("d0.", "d1.", "") for n in parts} | {"loss"}
    assert set(losses) == expected_keys
    total = sum(v for k, v in losses.items() if k != "loss")
    torch.testing.assert_close(losses["loss"], total)
    # the weights: the same unweighted losses, recomputed with the same random stream
    generator = torch.Generator().manual_seed(1)
    num_masks = torch.tensor(float(sum(len(labels[b].unique()) - (b == 0) for b in range(2))))
    for layer in range(3):
        prefix = "" if layer == 2 else f"d{layer}."
        raw = criterion.layer_losses(
            cls_logits[layer],
            mask_logits[layer],
            semantic_targets(labels, C),
            num_masks,
            generator,
        )
        for name, weight, value in zip(parts, (2.0, 5.0, 5.0), raw, strict=True):
            assert losses[prefix + name].item() == pytest.approx(weight * value.item(), rel=1e-6)
    losses["loss"].backward()
    for tensor in (*cls_logits, *mask_logits):
        assert tensor.grad is not None and tensor.grad.abs().sum() > 0


def test_losses_are_reproducible_with_a_seed() -> None:
    cls_logits, mask_logits, labels = _random_inputs()
    criterion = Mask2FormerCriterion(C, LossSection(num_points=20))

    def run(seed: int, use_generator: bool) -> dict[str, float]:
        if use_generator:
            generator = torch.Generator().manual_seed(seed)
            out = criterion(cls_logits, mask_logits, labels, generator=generator)
        else:
            torch.manual_seed(seed)
            out = criterion(cls_logits, mask_logits, labels)
        return {k: v.item() for k, v in out.items()}

    assert run(3, True) == run(3, True)
    assert run(3, False) == run(3, False)
    assert run(3, True)["loss_mask"] != run(4, True)["loss_mask"]


def test_num_masks_is_averaged_over_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    cls_logits, mask_logits, labels = _random_inputs(layers=1)
    criterion = Mask2FormerCriterion(C, LossSection(num_points=20))
    local = criterion(cls_logits, mask_logits, labels, generator=torch.Generator().manual_seed(0))
    # two processes; the other one has 3x as many masks: the all-reduced mean is 2x the local
    monkeypatch.setattr(criterion_module.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(criterion_module.dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(criterion_module.dist, "all_reduce", lambda tensor: tensor.mul_(4.0))
    shared = criterion(cls_logits, mask_logits, labels, generator=torch.Generator().manual_seed(0))
    assert shared["loss_cls"].item() == pytest.approx(local["loss_cls"].item(), rel=1e-6)
    for name in ("loss_mask", "loss_dice"):
        assert shared[name].item() == pytest.approx(local[name].item() / 2, rel=1e-6)


def test_bad_inputs_and_settings_raise() -> None:
    cls_logits, mask_logits, labels = _random_inputs(layers=2)
    criterion = Mask2FormerCriterion(C, LossSection(num_points=8))
    with pytest.raises(ValueError, match="as many class as mask"):
        criterion(cls_logits, mask_logits[:1], labels)
    with pytest.raises(ValueError, match="prediction 0"):
        Mask2FormerCriterion(C + 1)(cls_logits, mask_logits, labels)
    with pytest.raises(ValueError, match="prediction 0"):
        criterion(cls_logits, mask_logits, labels[:1])
    with pytest.raises(ConfigError, match="num_classes"):
        Mask2FormerCriterion(0)
    for kwargs in ({"no_object_weight": 2.0}, {"mask_weight": -1.0}, {"importance_ratio": -0.1}):
        with pytest.raises(ConfigError, match=f"loss.{next(iter(kwargs))}"):
            Mask2FormerCriterion(C, LossSection(**kwargs))


# ---------------------------------------------------------------- Hugging Face golden


def test_agrees_with_hugging_face_mask2former_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    golden = load_file(str(GOLDEN))
    layers = golden["input.cls_logits"].shape[0]
    # HF's random points, in our call order: per layer, matcher per image, then the candidates
    # and the uniform points of the importance sampling
    queue = [golden[f"points.layer{i}.{c}"] for i in range(layers) for c in range(4)]

    def recorded(n, num_points, device, generator=None):
        points = queue.pop(0)
        assert points.shape == (n, num_points, 2)
        return points

    monkeypatch.setattr(matcher_module, "random_points", recorded)
    monkeypatch.setattr(point_sampling, "random_points", recorded)
    criterion = Mask2FormerCriterion(4, LossSection(num_points=50))
    matches = []
    real_matcher = criterion.matcher.__call__

    def recording_matcher(*args, **kwargs):
        matches.append(real_matcher(*args, **kwargs))
        return matches[-1]

    monkeypatch.setattr(criterion, "matcher", recording_matcher)
    losses = criterion(
        list(golden["input.cls_logits"]),
        list(golden["input.mask_logits"]),
        golden["input.labels"].long(),
    )
    assert not queue
    names = {"loss_cls": "loss_cross_entropy", "loss_mask": "loss_mask", "loss_dice": "loss_dice"}
    for layer in range(layers):
        prefix = "" if layer == layers - 1 else f"d{layer}."
        for ours, theirs in names.items():
            expected = golden[f"hf.{theirs}.layer{layer}"].item()
            assert losses[prefix + ours].item() == pytest.approx(expected, rel=1e-5)
        for image, (rows, cols) in enumerate(matches[layer]):
            expected = golden[f"hf.match.layer{layer}.image{image}"]
            assert torch.equal(torch.stack([rows, cols]), expected)
