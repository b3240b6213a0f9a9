"""The predictor API: camera frames in, per-pixel labels, confidence and class scores out.

Mask2Former's raw semantic scores (sum over queries of class probability times mask
probability) are non-negative but do not sum to one over classes. :class:`Segmenter` divides
them by their per-pixel sum, so ``scores`` is a distribution over the classes and
``confidence`` (the winning class's share) is a probability a driving stack can threshold. The
division is per pixel and positive, so the argmax (and hence the labels) equals the reference's.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from vltseg_ros.checkpoint import load_model
from vltseg_ros.config import ClassSet, InferenceConfig, ModelConfig, load_model_config
from vltseg_ros.errors import ConfigError, DeviceError
from vltseg_ros.inference.preprocess import (
    ColorOrder,
    resize_nearest,
    to_normalized_tensor,
    validate_image,
)
from vltseg_ros.inference.preprocess import resize as _resize
from vltseg_ros.inference.summary import ResultSummary
from vltseg_ros.inference.summary import summarize as summarize_result
from vltseg_ros.inference.tiling import ScoreCanvas, Tiling, tile
from vltseg_ros.model.segmentor import VLTSeg

LOG = logging.getLogger(__name__)

Precision = Literal["fp32", "fp16", "bf16"]
ResizeMode = Literal["scores", "labels"]
OutputSize = tuple[int, int] | Literal["model"] | None
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_EPS = 1e-12


@dataclass(frozen=True)
class SegmentationResult:
    """Per-pixel result for one frame, at the requested output size (H, W).

    Attributes:
        labels: (H, W) uint8 class train ids; ``ignore_index`` (255) where the confidence is
            below the threshold.
        confidence: (H, W) float32 in [0, 1], the winning class's normalized score.
        scores: (C, H, W) float32 per-class scores summing to 1 per pixel, or None unless
            requested.
        summary: per-class pixel shares and mean confidences of ``labels``, or None unless
            requested (computed on the device before the copy to the host).
    """

    labels: np.ndarray
    confidence: np.ndarray
    scores: np.ndarray | None = None
    summary: ResultSummary | None = None


def resolve_device(device: str | torch.device, precision: Precision) -> torch.device:
    """Check that ``device`` exists and supports ``precision``; return it as a torch.device."""
    if precision not in _DTYPES:
        raise ConfigError(f"precision must be one of {sorted(_DTYPES)}, got {precision!r}")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise DeviceError(f"unknown device {device!r} (use 'cpu', 'cuda' or 'cuda:N')") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {device!r} requested but CUDA is not available here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device {device!r}: only {torch.cuda.device_count()} GPU(s)")
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise DeviceError(f"bf16 is not supported by GPU {torch.cuda.get_device_name(dev)}")
    elif dev.type == "cpu":
        if precision != "fp32":
            raise DeviceError(f"{precision} runs only on CUDA; use precision fp32 on the CPU")
    else:
        raise DeviceError(f"unsupported device type {dev.type!r}; use 'cpu' or 'cuda'")
    return dev


class Segmenter:
    """Runs a :class:`VLTSeg` model on uint8 camera frames.

    Args:
        model: the network (moved to ``device`` and put in eval mode).
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``fp32``; ``fp16`` or ``bf16`` (CUDA autocast) on GPUs.
        inference: how frames become network inputs; defaults to the model config's.
        batch_size: network inputs (crops) per forward call; crops of all frames of one
            ``predict_batch`` call are batched together.
        random_weights: True when the model was not loaded from a checkpoint (its output is
            meaningless; callers should say so).
    """

    def __init__(
        self,
        model: VLTSeg,
        *,
        device: str | torch.device = "cpu",
        precision: Precision = "fp32",
        inference: InferenceConfig | None = None,
        batch_size: int = 4,
        random_weights: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.device = resolve_device(device, precision)
        self.precision = precision
        self.model = model.to(self.device).eval()
        self.inference = inference or model.config.inference
        self.batch_size = batch_size
        self.random_weights = random_weights

    @classmethod
    def load(
        cls,
        model: ModelConfig | str | Path | None = None,
        checkpoint: str | Path | None = None,
        **kwargs: object,
    ) -> Segmenter:
        """Build from a checkpoint and/or a model config name or file.

        With a checkpoint the weights (and, for ``.safetensors``, the architecture) come from
        it; ``model`` then only needs to be given for ``.pt`` state dicts. Without a checkpoint
        the model has random weights and ``random_weights`` is set. Other keyword arguments go
        to the constructor.
        """
        config = None
        if model is not None:
            config = model if isinstance(model, ModelConfig) else load_model_config(model)
        if checkpoint is not None:
            return cls(load_model(checkpoint, config), **kwargs)
        if config is None:
            raise ConfigError("give a model name / config file, a checkpoint, or both")
        LOG.warning("model %r has RANDOM weights: its output is meaningless", config.name)
        return cls(VLTSeg(config), random_weights=True, **kwargs)

    @property
    def inference(self) -> InferenceConfig:
        """How frames become network inputs (mode, crop, stride, scales)."""
        return self._inference

    @inference.setter
    def inference(self, inference: InferenceConfig) -> None:
        inference.validate()
        min_h, min_w = self.model.min_input_size
        in_h, in_w = inference.input_size
        if in_h < min_h or in_w < min_w:
            raise ConfigError(
                f"network input {in_h}x{in_w} is smaller than the model's minimum "
                f"{min_h}x{min_w} (two patches)"
            )
        self._inference = inference

    @property
    def config(self) -> ModelConfig:
        """The model's configuration."""
        return self.model.config

    @property
    def class_set(self) -> ClassSet:
        """Class names and palette of the labels."""
        return self.model.config.class_set

    def predict(
        self,
        image: np.ndarray,
        color_order: ColorOrder = "rgb",
        *,
        confidence_threshold: float = 0.0,
        return_scores: bool = False,
        output_size: OutputSize = None,
        resize: ResizeMode = "scores",
        summarize: bool = False,
    ) -> SegmentationResult:
        """Segment one uint8 (H, W, 3) frame in ``color_order``; see :meth:`predict_batch`."""
        return self.predict_batch(
            [image],
            color_order,
            confidence_threshold=confidence_threshold,
            return_scores=return_scores,
            output_size=output_size,
            resize=resize,
            summarize=summarize,
        )[0]

    def predict_batch(
        self,
        images: Sequence[np.ndarray],
        color_order: ColorOrder | Sequence[ColorOrder] = "rgb",
        *,
        confidence_threshold: float = 0.0,
        return_scores: bool = False,
        output_size: OutputSize = None,
        resize: ResizeMode = "scores",
        summarize: bool = False,
    ) -> list[SegmentationResult]:
        """Segment several frames (sizes may differ) with their crops batched together.

        Args:
            images: uint8 (H, W, 3) arrays.
            color_order: 'rgb' or 'bgr', for all images or one per image.
            confidence_threshold: pixels whose confidence is below it get label 255.
            return_scores: also return the (C, H, W) normalized class scores.
            output_size: (H, W) of the outputs; None: each frame's own size; "model": the
                resolution the model saw (the frame after ``test_scale``, or ``whole_size``).
            resize: how results reach ``output_size``: "scores" resizes the class scores
                (bilinear) before the argmax, as the reference evaluates; "labels" takes the
                argmax at model resolution and resizes labels and confidence (nearest),
                cheaper and blockier.
            summarize: also compute the per-class :class:`ResultSummary` of each result.

        Raises:
            InvalidImageError: an image has the wrong type, dtype, shape or is too small.
            ConfigError: an option is out of range.
        """
        if not 0.0 <= confidence_threshold <= 1.0:
            raise ConfigError(
                f"confidence_threshold must be in [0, 1], got {confidence_threshold}"
            )
        if resize not in ("scores", "labels"):
            raise ConfigError(f"resize must be 'scores' or 'labels', got {resize!r}")
        orders = [color_order] * len(images) if isinstance(color_order, str) else color_order
        if len(orders) != len(images):
            raise ConfigError(f"{len(images)} images but {len(orders)} color orders")
        patch = self.model.encoder.patch_size
        frames = [validate_image(image, patch) for image in images]
        norm = self.config.normalization
        with torch.inference_mode():
            tilings = [
                tile(to_normalized_tensor(f, order, norm, self.device), self.inference)
                for f, order in zip(frames, orders, strict=True)
            ]
            canvases = self._run(tilings)
            results = []
            for canvas, frame in zip(canvases, frames, strict=True):
                raw = canvas.result()
                if output_size is None:
                    size = frame.shape[:2]
                elif output_size == "model":
                    size = tuple(raw.shape[-2:])
                else:
                    size = output_size
                results.append(
                    scores_to_result(
                        raw,
                        size,
                        confidence_threshold=confidence_threshold,
                        return_scores=return_scores,
                        resize=resize,
                        ignore_index=self.class_set.ignore_index,
                        summarize=summarize,
                    )
                )
            return results

    def _run(self, tilings: list[Tiling]) -> list[ScoreCanvas]:
        """Run all network inputs in batches of ``batch_size`` and stitch the scores."""
        num_classes = self.class_set.num_classes
        canvases = [ScoreCanvas(t, num_classes, self.device) for t in tilings]
        owners = [c for t, c in zip(tilings, canvases, strict=True) for _ in range(len(t.inputs))]
        inputs = torch.cat([t.inputs for t in tilings])
        for start in range(0, len(inputs), self.batch_size):
            with self._autocast():
                scores = self.model(inputs[start : start + self.batch_size]).float()
            for owner, crop_scores in zip(owners[start:], scores, strict=False):
                owner.add(crop_scores)
        return canvases

    def _autocast(self) -> contextlib.AbstractContextManager[None]:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=_DTYPES[self.precision])


def scores_to_result(
    raw: Tensor,
    output_size: tuple[int, int],
    *,
    confidence_threshold: float = 0.0,
    return_scores: bool = False,
    resize: ResizeMode = "scores",
    ignore_index: int = 255,
    summarize: bool = False,
) -> SegmentationResult:
    """Raw non-negative class scores -> normalized scores, confidence and labels.

    Args:
        raw: (C, h, w) float scores at model resolution (Mask2Former's raw semantic scores).
        output_size: (H, W) of the result.
        confidence_threshold: pixels whose confidence is below it get ``ignore_index``.
        return_scores: keep the (C, H, W) normalized scores in the result.
        resize: "scores": bilinear resize of the scores, then argmax (the reference's order);
            "labels": argmax at model resolution, then nearest resize of labels and confidence.
        summarize: compute the result's :class:`ResultSummary` (on the scores' device).

    Returns:
        The result with numpy arrays on the host.
    """
    output_size = (int(output_size[0]), int(output_size[1]))
    if resize == "scores":
        raw = _resize(raw, output_size)
    probs = raw / raw.sum(0, keepdim=True).clamp_min(_EPS)
    confidence, labels = probs.max(0)
    labels = labels.to(torch.uint8)
    if confidence_threshold > 0:
        labels[confidence < confidence_threshold] = ignore_index
    if resize == "labels":
        labels = resize_nearest(labels, output_size)
        confidence = resize_nearest(confidence, output_size)
        probs = _resize(probs, output_size) if return_scores else probs
    return SegmentationResult(
        labels=labels.cpu().numpy(),
        confidence=confidence.cpu().numpy(),
        scores=probs.cpu().numpy() if return_scores else None,
        summary=summarize_result(labels, confidence, raw.shape[0]) if summarize else None,
    )
