"""Results in a class map's output classes: merged confidence is the sum of the members'
probabilities, the threshold applies to it, labels are the model's class through the lookup
table, scores and summary are per output class, and the outputs use the output classes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from vltseg_ros.config.class_map import load_class_map, read_class_map
from vltseg_ros.config.model_config import load_class_set, load_model_config
from vltseg_ros.engines import TorchEngine
from vltseg_ros.engines.base import Engine
from vltseg_ros.errors import ConfigError
from vltseg_ros.inference.outputs import OutputSettings, frame_outputs
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.inference.result import scores_to_result
from vltseg_ros.inference.scores import apply_temperature, merge_probabilities
from vltseg_ros.model.segmentor import build_model

REPO = Path(__file__).resolve().parents[2]
CITYSCAPES = load_class_set("cityscapes")
ROAD, SIDEWALK, TERRAIN, SKY, PERSON, CAR = 0, 1, 9, 10, 11, 13
TRAVERSABLE, OBSTACLE, SKY_OUT = 0, 1, 2


@pytest.fixture(scope="module")
def partial(tmp_path_factory):
    """Road and sidewalk to ``ground`` (id 3), car to ``car`` (id 0); the rest unlabeled."""
    path = tmp_path_factory.mktemp("maps") / "partial.yaml"
    path.write_text(
        "classes:\n  - {name: ground, id: 3, members: [road, sidewalk]}\n"
        "  - {name: car, id: 0, members: [car]}\n"
    )
    return load_class_map(path, CITYSCAPES)


def _raw(pixels: list[dict[int, float]], scale: float = 3.0) -> torch.Tensor:
    """(19, 1, N) raw scores: pixel n has probability pixels[n][c] for class c (raw scores
    are ``scale`` times the probabilities: normalization divides it out)."""
    raw = torch.zeros(19, 1, len(pixels))
    for n, probabilities in enumerate(pixels):
        for c, p in probabilities.items():
            raw[c, 0, n] = scale * p
    return raw


PIXELS = [
    {ROAD: 0.50, SIDEWALK: 0.45, CAR: 0.05},  # 95 % traversable, though only 50 % road
    {CAR: 0.60, ROAD: 0.40},  # obstacle at 60 %
    {SKY: 1.0},
    {TERRAIN: 0.35, SIDEWALK: 0.30, PERSON: 0.20, CAR: 0.15},  # 65 % traversable
]


def test_merged_confidence_is_the_sum_of_the_members(traversability) -> None:
    raw = _raw(PIXELS)
    result = scores_to_result(raw, (1, 4), class_map=traversability, return_scores=True)
    assert result.labels[0].tolist() == [TRAVERSABLE, OBSTACLE, SKY_OUT, TRAVERSABLE]
    np.testing.assert_allclose(result.confidence[0], [0.95, 0.60, 1.0, 0.65], atol=1e-6)
    expected = np.array(
        [[0.95, 0.40, 0.0, 0.65], [0.05, 0.60, 0.0, 0.35], [0.0, 0.0, 1.0, 0.0]], np.float32
    )
    assert result.scores.shape == (3, 1, 4)
    np.testing.assert_allclose(result.scores[:, 0], expected, atol=1e-6)
    plain = scores_to_result(raw, (1, 4), return_scores=True)  # the model's own classes
    assert plain.labels[0].tolist() == [ROAD, CAR, SKY, TERRAIN]
    np.testing.assert_allclose(plain.confidence[0], [0.50, 0.60, 1.0, 0.35], atol=1e-6)


def test_threshold_applies_to_the_merged_confidence(traversability) -> None:
    raw = _raw(PIXELS)
    mapped = scores_to_result(raw, (1, 4), class_map=traversability, confidence_threshold=0.9)
    assert mapped.labels[0].tolist() == [TRAVERSABLE, 255, SKY_OUT, 255]  # 0.95 survives
    np.testing.assert_allclose(mapped.confidence[0], [0.95, 0.60, 1.0, 0.65], atol=1e-6)
    plain = scores_to_result(raw, (1, 4), confidence_threshold=0.9)
    assert plain.labels[0].tolist() == [255, 255, SKY, 255]  # 50 % road is cut


def test_unmapped_model_class_is_255_with_the_unmapped_mass(partial) -> None:
    raw = _raw([{PERSON: 0.7, ROAD: 0.3}, {ROAD: 0.4, SIDEWALK: 0.3, SKY: 0.3}, {CAR: 1.0}])
    result = scores_to_result(raw, (1, 3), class_map=partial, return_scores=True)
    assert result.labels[0].tolist() == [255, 3, 0]
    np.testing.assert_allclose(result.confidence[0], [0.7, 0.7, 1.0], atol=1e-6)
    assert result.scores.shape == (4, 1, 3)  # ids 0-3, 1 and 2 unused
    np.testing.assert_allclose(result.scores[[1, 2]], 0.0)
    np.testing.assert_allclose(result.scores[3, 0], [0.3, 0.7, 0.0], atol=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_merge_equals_the_membership_matrix_product(traversability, partial, temperature) -> None:
    raw = torch.rand(19, 5, 7, generator=torch.Generator().manual_seed(1))
    probs = apply_temperature(raw, temperature)
    for class_map in (traversability, partial):
        merged, labels, confidence = merge_probabilities(probs, class_map)
        reference = np.einsum("kc,chw->khw", class_map.membership, probs.numpy())
        np.testing.assert_allclose(merged.numpy(), reference, atol=1e-6)
        winners = probs.argmax(0).numpy()
        np.testing.assert_array_equal(labels.numpy(), class_map.lut[winners])
        unmapped = probs.numpy()[class_map.index < 0].sum(0)
        picked = np.take_along_axis(
            reference, np.minimum(labels.numpy(), class_map.num_classes - 1)[None], 0
        )[0]
        np.testing.assert_allclose(
            confidence.numpy(), np.where(labels.numpy() == 255, unmapped, picked), atol=1e-6
        )


@pytest.fixture(scope="module")
def segmenter() -> Segmenter:
    torch.manual_seed(0)
    return Segmenter(TorchEngine(build_model("tiny").eval()))


def _image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


class ColorEngine(Engine):
    """Raw scores ``exp(2 W x)`` of each pixel's normalized color x (W: fixed random 19x3):
    many classes win somewhere in a random image, unlike a random tiny network's."""

    name = "color"

    def __init__(self) -> None:
        self.config = load_model_config("tiny")
        self.device = torch.device("cpu")
        self.precision = "fp32"
        self.weights = torch.randn(19, 3, generator=torch.Generator().manual_seed(0))

    @property
    def patch_size(self) -> tuple[int, int]:
        return (8, 8)

    @property
    def description(self) -> str:
        return "color"

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        self.check_inputs(inputs)
        return torch.exp(2 * torch.einsum("kc,nchw->nkhw", self.weights, inputs))

    def close(self) -> None:
        pass


@pytest.mark.parametrize("resize", ["scores", "labels"])
def test_segmenter_results_in_output_classes(traversability, tmp_path: Path, resize) -> None:
    segmenter = Segmenter(ColorEngine())
    segmenter.inference = dataclasses.replace(segmenter.inference, test_scale=(96, 48))
    image = _image(70, 133, 3)
    plain = segmenter.predict(image, return_scores=True, resize=resize, anomaly_method="rba",
                              return_anomaly=True)  # fmt: skip
    # the random model's two most frequent classes to ids 3 and 0 (1, 2 unused), the rest 255
    first, second = np.argsort(np.bincount(plain.labels.ravel(), minlength=19))[::-1][:2]
    path = tmp_path / "frequent.yaml"
    path.write_text(
        f"classes: [{{name: a, id: 3, members: ['{CITYSCAPES.names[first]}']}}, "
        f"{{name: b, id: 0, members: ['{CITYSCAPES.names[second]}']}}]\n"
    )
    frequent = load_class_map(path, CITYSCAPES)
    for class_map in (traversability, frequent):
        result = segmenter.predict(
            image,
            return_scores=True,
            summarize=True,
            resize=resize,
            class_map=class_map,
            anomaly_method="rba",
            return_anomaly=True,
        )
        np.testing.assert_array_equal(result.labels, class_map.lut[plain.labels])
        np.testing.assert_array_equal(result.anomaly, plain.anomaly)  # from the raw scores
        assert result.scores.shape == (class_map.num_classes, 70, 133)
        if resize == "scores":  # merged at output size: the product of the resized scores
            merged = np.einsum("kc,chw->khw", class_map.membership, plain.scores)
            np.testing.assert_allclose(result.scores, merged, atol=1e-5)
        summary = result.summary
        counts = np.bincount(result.labels.ravel(), minlength=256)
        k = class_map.num_classes
        np.testing.assert_allclose(summary.class_fraction, counts[:k] / result.labels.size)
        assert summary.unlabeled_fraction == pytest.approx(counts[255] / result.labels.size)
        for output_id in np.unique(result.labels[result.labels < k]):
            mean = result.confidence[result.labels == output_id].mean()
            assert summary.class_mean_confidence[output_id] == pytest.approx(mean, rel=1e-5)
    shares = [(result.labels == value).mean() for value in (0, 3, 255)]
    assert all(0 < share < 1 for share in shares)  # both classes and unlabeled pixels occur


def test_segmenter_refuses_a_map_bound_to_other_classes(segmenter, tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("classes: [{name: a, id: 0, members: [x]}]\n")
    other = load_class_set("cityscapes").__class__("other", ("x", "y"), ((0, 0, 0), (1, 1, 1)))
    bound = read_class_map(path).bind(other)
    with pytest.raises(ConfigError, match="bound to class set 'other'"):
        segmenter.predict(_image(64, 64), class_map=bound)


def test_frame_outputs_use_the_output_classes(segmenter, traversability) -> None:
    image = _image(64, 96, 5)
    settings = OutputSettings(overlay_alpha=1.0)
    options = settings.predict_options(traversability)
    assert options["class_map"] is traversability
    assert "class_map" not in settings.predict_options()
    result = segmenter.predict(image, **options)
    outputs = frame_outputs(
        result, image, "rgb", settings, class_set=CITYSCAPES, class_map=traversability,
        with_overlay=True,
    )  # fmt: skip
    assert outputs.info["class_names"] == ["traversable", "obstacle", "sky"]
    assert len(outputs.info["class_fraction"]) == 3
    assert len(outputs.info["class_mean_confidence"]) == 3
    palette = np.array(traversability.classes.palette, np.uint8)
    labelled = result.labels != 255
    np.testing.assert_array_equal(outputs.overlay[labelled], palette[result.labels[labelled]])
    same = frame_outputs(
        result, image, "rgb", settings, class_set=traversability.classes, with_overlay=True
    )
    np.testing.assert_array_equal(same.overlay, outputs.overlay)
    with pytest.raises(ConfigError, match="the result has 3 classes but class set"):
        frame_outputs(result, image, "rgb", settings, class_set=CITYSCAPES, with_overlay=False)


def test_output_settings_load_the_class_map(traversability) -> None:
    assert OutputSettings().load_class_map(CITYSCAPES) is None
    path = str(REPO / "config" / "class_maps" / "traversability.yaml")
    bound = OutputSettings(class_map=path).load_class_map(CITYSCAPES)
    np.testing.assert_array_equal(bound.lut, traversability.lut)
    with pytest.raises(ConfigError, match="does not exist"):
        OutputSettings(class_map="/nope.yaml").load_class_map(CITYSCAPES)
