"""Segmenter: shapes, value ranges, normalization, modes, batching and bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from vltseg_ros.engines import TorchEngine, create_engine
from vltseg_ros.errors import ConfigError, DeviceError, InvalidImageError
from vltseg_ros.inference import predictor
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.model.segmentor import VLTSeg, build_model


@pytest.fixture(scope="module")
def tiny_model() -> VLTSeg:
    torch.manual_seed(0)
    return build_model("tiny").eval()


@pytest.fixture
def segmenter(tiny_model) -> Segmenter:
    """A fresh Segmenter per test (tests change its inference settings) on a shared model."""
    return Segmenter(TorchEngine(tiny_model))


def _image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("size", [(64, 64), (71, 133), (17, 200), (130, 9 * 8)])
@pytest.mark.parametrize("mode", ["slide", "whole"])
def test_shapes_ranges_and_normalization(segmenter, size, mode) -> None:
    segmenter.inference = dataclasses.replace(segmenter.config.inference, mode=mode)
    result = segmenter.predict(_image(*size), return_scores=True)
    assert result.labels.shape == size and result.labels.dtype == np.uint8
    assert result.confidence.shape == size and result.confidence.dtype == np.float32
    assert result.scores.shape == (19, *size) and result.scores.dtype == np.float32
    assert result.scores.min() >= 0
    np.testing.assert_allclose(result.scores.sum(0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(result.labels, result.scores.argmax(0))
    np.testing.assert_allclose(result.confidence, result.scores.max(0), rtol=0, atol=0)
    assert result.confidence.min() >= 1 / 19 - 1e-6 and result.confidence.max() <= 1


def test_scores_are_the_normalized_reference_scores(segmenter, tiny_model) -> None:
    """Whole mode on a crop-sized frame: raw model scores divided by their per-pixel sum."""
    image = _image(64, 64)
    result = segmenter.predict(image, return_scores=True)
    mean = torch.tensor(segmenter.config.normalization.mean).view(1, 3, 1, 1)
    std = torch.tensor(segmenter.config.normalization.std).view(1, 3, 1, 1)
    x = (torch.from_numpy(image).permute(2, 0, 1)[None].float() - mean) / std
    with torch.no_grad():
        raw = tiny_model(x)[0]
    np.testing.assert_allclose(result.scores, (raw / raw.sum(0)).numpy(), atol=1e-6)


def test_slide_equals_whole_when_one_crop_covers_the_image(segmenter) -> None:
    image = _image(64, 64, seed=3)
    config = segmenter.config.inference
    segmenter.inference = dataclasses.replace(config, mode="slide")
    slide = segmenter.predict(image, return_scores=True)
    segmenter.inference = dataclasses.replace(config, mode="whole", whole_size=(64, 64))
    whole = segmenter.predict(image, return_scores=True)
    np.testing.assert_array_equal(slide.labels, whole.labels)
    np.testing.assert_allclose(slide.scores, whole.scores, atol=1e-6)


def test_batch_equals_one_by_one_and_sizes_may_differ(segmenter) -> None:
    images = [_image(70, 133, 1), _image(64, 64, 2), _image(90, 50, 3)]
    batched = segmenter.predict_batch(images, return_scores=True)
    for image, result in zip(images, batched, strict=True):
        single = segmenter.predict(image, return_scores=True)
        np.testing.assert_array_equal(single.labels, result.labels)
        np.testing.assert_allclose(single.scores, result.scores, atol=1e-5)


def test_bgr_input_equals_rgb_input(segmenter) -> None:
    image = _image(70, 100, 4)
    rgb = segmenter.predict(image, "rgb")
    bgr = segmenter.predict(np.ascontiguousarray(image[..., ::-1]), "bgr")
    np.testing.assert_array_equal(rgb.labels, bgr.labels)


def test_threshold_marks_unsure_pixels_255(segmenter) -> None:
    image = _image(64, 80, 5)
    plain = segmenter.predict(image)
    cut = float(np.median(plain.confidence))
    result = segmenter.predict(image, confidence_threshold=cut)
    unsure = plain.confidence < cut
    assert unsure.any() and (~unsure).any()
    assert np.all(result.labels[unsure] == 255)
    np.testing.assert_array_equal(result.labels[~unsure], plain.labels[~unsure])


def test_output_size(segmenter) -> None:
    result = segmenter.predict(_image(70, 133), output_size=(35, 60), return_scores=True)
    assert result.labels.shape == (35, 60) and result.scores.shape == (19, 35, 60)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((64, 64, 3), np.float32), "uint8"),
        (np.zeros((64, 64, 3), np.uint16), "uint8"),
        (np.zeros((64, 64), np.uint8), r"\(H, W, 3\)"),
        (np.zeros((64, 64, 4), np.uint8), r"\(H, W, 3\)"),
        (np.zeros((0, 64, 3), np.uint8), "empty"),
        (np.zeros((7, 64, 3), np.uint8), "smaller than the model's patch"),
        ([[0, 0, 0]], "numpy array"),
    ],
)
def test_bad_images_raise_specific_errors(segmenter, image, message) -> None:
    with pytest.raises(InvalidImageError, match=message):
        segmenter.predict(image)


def test_frames_smaller_than_a_patch_run_where_they_are_resized(segmenter) -> None:
    """Whole mode and test_scale resize every frame, so a 4x6 frame is fine there; sliding
    it as it is (slide mode, no test_scale) is refused (above)."""
    tiny_frame = _image(4, 6)
    base = segmenter.inference
    try:
        for inference in (
            dataclasses.replace(base, mode="whole", whole_size=(64, 64)),
            dataclasses.replace(base, test_scale=(128, 64)),
        ):
            segmenter.inference = inference
            result = segmenter.predict(tiny_frame)
            assert result.labels.shape == (4, 6) and result.confidence.shape == (4, 6)
    finally:
        segmenter.inference = base
    with pytest.raises(InvalidImageError, match="smaller than the model's patch"):
        segmenter.predict(tiny_frame)


def test_bad_settings(segmenter, tiny_model) -> None:
    with pytest.raises(InvalidImageError, match="color_order"):
        segmenter.predict(_image(64, 64), "yuv")
    with pytest.raises(ConfigError, match="confidence_threshold"):
        segmenter.predict(_image(64, 64), confidence_threshold=1.5)
    with pytest.raises(ConfigError, match="minimum"):
        segmenter.inference = dataclasses.replace(
            segmenter.inference, crop_size=(8, 8), stride=(8, 8)
        )
    with pytest.raises(ConfigError, match="batch_size"):
        Segmenter(segmenter.engine, batch_size=0)
    with pytest.raises(TypeError, match="takes an Engine"):
        Segmenter(tiny_model)
    with pytest.raises(DeviceError, match="CUDA"):
        TorchEngine(tiny_model, precision="fp16")
    with pytest.raises(ConfigError, match="precision"):
        TorchEngine(tiny_model, precision="int4")
    with pytest.raises(DeviceError):
        TorchEngine(tiny_model, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="not available"):
            TorchEngine(tiny_model, device="cuda")


def test_random_weights_are_flagged_and_the_default_model_is_one_rule(monkeypatch) -> None:
    assert Segmenter.load("tiny").random_weights
    with pytest.raises(ConfigError, match="give a model"):
        create_engine()
    monkeypatch.setattr(predictor, "DEFAULT_MODEL", "tiny")  # vit-b-16 takes long to build
    default = Segmenter.load()  # neither model nor checkpoint: the default model
    assert default.config.name == "tiny" and default.random_weights


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_agrees_with_cpu(segmenter, tiny_model, precision) -> None:
    image = _image(70, 133, 6)
    cpu = segmenter.predict(image)
    gpu = Segmenter(TorchEngine(tiny_model, "cuda", precision)).predict(image)
    tiny_model.cpu()
    assert np.mean(cpu.labels == gpu.labels) > 0.99


def test_model_resolution_output(segmenter) -> None:
    segmenter.inference = dataclasses.replace(segmenter.config.inference, test_scale=(96, 48))
    result = segmenter.predict(_image(100, 200), output_size="model")
    assert result.labels.shape == (48, 96)  # the frame rescaled into 96 x 48
    segmenter.inference = dataclasses.replace(
        segmenter.config.inference, mode="whole", whole_size=(32, 48)
    )
    assert segmenter.predict(_image(100, 200), output_size="model").labels.shape == (32, 48)


def test_label_resize_mode_is_the_nearest_upsampled_model_result(segmenter) -> None:
    segmenter.inference = dataclasses.replace(segmenter.config.inference, test_scale=(64, 32))
    image = _image(64, 128, 7)
    small = segmenter.predict(image, output_size="model")
    cheap = segmenter.predict(image, resize="labels")
    exact = segmenter.predict(image, resize="scores")
    assert small.labels.shape == (32, 64) and cheap.labels.shape == (64, 128)
    np.testing.assert_array_equal(cheap.labels, np.repeat(np.repeat(small.labels, 2, 0), 2, 1))
    np.testing.assert_array_equal(
        cheap.confidence, np.repeat(np.repeat(small.confidence, 2, 0), 2, 1)
    )
    assert np.mean(cheap.labels == exact.labels) > 0.5  # same scene, coarser boundaries
    with pytest.raises(ConfigError, match="resize"):
        segmenter.predict(image, resize="bicubic")


def test_per_image_color_orders(segmenter) -> None:
    image = _image(64, 64, 8)
    bgr = np.ascontiguousarray(image[..., ::-1])
    a, b = segmenter.predict_batch([image, bgr], ["rgb", "bgr"])
    np.testing.assert_array_equal(a.labels, b.labels)
    with pytest.raises(ConfigError, match="color orders"):
        segmenter.predict_batch([image, bgr], ["rgb"])


def test_summary_matches_the_labels_and_confidence(segmenter) -> None:
    image = _image(70, 133, 9)
    cut = float(np.median(segmenter.predict(image).confidence))
    result = segmenter.predict(image, confidence_threshold=cut, summarize=True)
    labels, confidence, summary = result.labels, result.confidence, result.summary
    counts = np.bincount(labels.ravel(), minlength=256)
    np.testing.assert_allclose(summary.class_fraction, counts[:19] / labels.size, atol=1e-7)
    assert summary.unlabeled_fraction == pytest.approx(counts[255] / labels.size)
    assert 0 < summary.unlabeled_fraction < 1  # the threshold cut some pixels
    for class_id in np.unique(labels[labels < 19]):
        expected = confidence[labels == class_id].mean()
        assert summary.class_mean_confidence[class_id] == pytest.approx(expected, rel=1e-5)
    absent = counts[:19] == 0
    assert np.all(summary.class_mean_confidence[absent] == 0)
    assert summary.mean_confidence == pytest.approx(confidence.mean(), rel=1e-5)
    assert segmenter.predict(_image(64, 64)).summary is None
