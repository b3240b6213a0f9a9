"""The predictor API: camera frames in, per-pixel labels, confidence and class scores out.

Mask2Former's raw semantic scores (sum over queries of class probability times mask
probability) are non-negative but do not sum to one over classes. :class:`Segmenter` divides
them by their per-pixel sum (tempered by the checkpoint's calibration temperature, if any:
``p ∝ s ** (1 / T)``), so ``scores`` is a distribution over the classes and ``confidence`` (the
winning class's share) is a probability a driving stack can threshold. The transformation is
per pixel and monotonic, so the argmax (and hence the labels) equals the reference's. The
anomaly score is computed from the raw scores, before that normalization
(:mod:`vltseg_ros.inference.scores`). With a class map the labels, confidence, scores and
summary are the output classes' (:func:`vltseg_ros.inference.scores.merge_probabilities`);
the anomaly score is not affected.
"""

from __future__ import annotations

import gc
import logging
import time
import traceback
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from torch import Tensor

from vltseg_ros.config.anomaly_methods import AnomalyMethod, check_method
from vltseg_ros.config.class_map import BoundClassMap
from vltseg_ros.config.model_config import (
    DEFAULT_MODEL,
    ClassSetConfig,
    InferenceConfig,
    ModelConfig,
)
from vltseg_ros.demo_model import shipped_checkpoint
from vltseg_ros.engines import (
    Backend,
    Engine,
    EngineOptions,
    Precision,
    create_engine,
    resolve_backend,
)
from vltseg_ros.errors import ConfigError, EngineOutOfMemoryError
from vltseg_ros.inference.preprocess import (
    ColorOrder,
    to_normalized_tensor,
    validate_image,
)
from vltseg_ros.inference.result import ResizeMode, SegmentationResult, scores_to_result
from vltseg_ros.inference.scores import check_finite
from vltseg_ros.inference.tiling import ScoreCanvas, Tiling, tile

LOG = logging.getLogger(__name__)

OutputSize = tuple[int, int] | Literal["model"] | None
Key = TypeVar("Key")


@dataclass(frozen=True)
class PreparedFrame:
    """A frame checked, uploaded and cut into network inputs (:meth:`Segmenter.prepare`).

    Attributes:
        tiling: its (K, 3, h, w) normalized network inputs on the device, and their places.
        size: (H, W) of the frame as given.
        output_size: (H, W) its outputs will have unless the prediction says otherwise.
    """

    tiling: Tiling
    size: tuple[int, int]
    output_size: tuple[int, int]


class Segmenter:
    """Runs a VLTSeg network (behind an :class:`Engine`) on uint8 camera frames.

    Args:
        engine: the network on its device: a :class:`TorchEngine` (a PyTorch model) or an
            :class:`OnnxRuntimeEngine` (an exported ``.onnx`` file); see
            :func:`vltseg_ros.engines.create_engine`.
        inference: how frames become network inputs; defaults to the model config's (for an
            ONNX model: crop = its static input size). A static-size engine accepts only
            settings whose network input is that size.
        batch_size: network inputs (crops) per engine call; the crops of all frames of one
            call are batched together. None: the engine's ``batch_size``, or 4. At most the
            engine's. It is halved (for good) after the GPU runs out of memory.
        random_weights: True when the model was not loaded from a checkpoint (its output is
            meaningless; callers should say so).
        checkpoint: the file the weights came from ("" when not known or random), for reports
            and the node's info messages.

    Attributes:
        temperature: the calibration temperature applied to the class probabilities: the
            model config's calibration's, else 1 (untempered). May be set.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        inference: InferenceConfig | None = None,
        batch_size: int | None = None,
        random_weights: bool = False,
        checkpoint: str = "",
    ) -> None:
        if not isinstance(engine, Engine):
            raise TypeError(
                f"Segmenter takes an Engine, got {type(engine).__name__}; wrap a model with "
                "vltseg_ros.engines.TorchEngine(model, device, precision) or use Segmenter.load"
            )
        if batch_size is None:
            batch_size = engine.batch_size or 4
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if engine.batch_size is not None and batch_size > engine.batch_size:
            raise ConfigError(
                f"batch_size {batch_size} exceeds the {engine.name} engine's {engine.batch_size}"
            )
        self.engine = engine
        self.batch_size = batch_size
        self.random_weights = random_weights
        self.checkpoint = checkpoint
        self.inference = inference or engine.config.inference
        calibration = engine.config.calibration
        self.temperature = 1.0 if calibration is None else calibration.temperature

    @classmethod
    def load(
        cls,
        model: ModelConfig | str | Path | None = None,
        checkpoint: str | Path | None = None,
        *,
        backend: Backend | None = None,
        device: str | torch.device = "cpu",
        precision: Precision = "fp32",
        options: EngineOptions | None = None,
        batch_size: int = 4,
        inference: InferenceConfig | None = None,
    ) -> Segmenter:
        """Build from a checkpoint and/or a model config name or file.

        With a checkpoint the weights (and, for ``.safetensors``, the architecture) come from
        it; ``model`` then only needs to be given for ``.pt`` state dicts. A ``.onnx``
        checkpoint runs on ONNX Runtime (``backend`` None or ``"onnxruntime"``; the file
        carries its architecture). With neither, the model is :data:`DEFAULT_MODEL`. The name
        of a model shipped with weights (``synthetic-scenes-demo``) loads those weights; without
        a checkpoint any other model has random weights (logged; ``random_weights`` is set).
        ``options`` are the backend's (:class:`TorchOptions` / :class:`OnnxRuntimeOptions`);
        ``batch_size`` is also the engine's (the compiled PyTorch batch, the TensorRT
        profile's largest); a static-batch ONNX model lowers it to its own batch. A load that
        fails keeps nothing: the half-built engine is closed and its memory released.

        Raises:
            ConfigError: unknown backend, backend / checkpoint mismatch, bad settings.
            CheckpointError, DeviceError, EngineError: see the engines.
        """
        if model is None and checkpoint is None:
            model = DEFAULT_MODEL
        if checkpoint is None and shipped_checkpoint(model) is not None:
            checkpoint, model = shipped_checkpoint(model), None
        engine: Engine | None = None
        try:
            engine = create_engine(
                resolve_backend(backend, checkpoint),
                model=model,
                checkpoint=checkpoint,
                device=device,
                precision=precision,
                options=options,
                batch_size=batch_size,
            )
            if checkpoint is None:
                LOG.warning(
                    "model %r has RANDOM weights (no checkpoint given): its output is meaningless",
                    engine.config.name,
                )
            return cls(
                engine,
                inference=inference,
                batch_size=min(batch_size, engine.batch_size or batch_size),
                random_weights=checkpoint is None,
                checkpoint=str(checkpoint or ""),
            )
        except BaseException as exc:
            if engine is not None:
                engine.close()
            _release_failed_load(exc, device)
            raise

    @property
    def inference(self) -> InferenceConfig:
        """How frames become network inputs (mode, crop, stride, scales)."""
        return self._inference

    @inference.setter
    def inference(self, inference: InferenceConfig) -> None:
        inference.validate()
        min_h, min_w = (2 * p for p in self.patch_size)  # the 2x max-pooled level must exist
        in_h, in_w = inference.input_size
        if in_h < min_h or in_w < min_w:
            raise ConfigError(
                f"network input {in_h}x{in_w} is smaller than the model's minimum "
                f"{min_h}x{min_w} (two patches)"
            )
        static = self.engine.input_size
        if static is not None and (in_h, in_w) != tuple(static):
            raise ConfigError(
                f"network input {in_h}x{in_w} ({inference.mode} mode) does not match the "
                f"{self.engine.name} model's static input {static[0]}x{static[1]}: use "
                f"crop_size {static[0]}x{static[1]} (slide) or whole_size "
                f"{static[0]}x{static[1]} (whole), or export the model at the size you need"
            )
        self._inference = inference

    @property
    def config(self) -> ModelConfig:
        """The model's configuration."""
        return self.engine.config

    @property
    def class_set(self) -> ClassSetConfig:
        """Class names and palette of the labels."""
        return self.engine.config.class_set

    @property
    def device(self) -> torch.device:
        """Where the network runs and the score maps live."""
        return self.engine.device

    @property
    def patch_size(self) -> tuple[int, int]:
        """(H, W) of the encoder's patches: the smallest frame :meth:`predict` accepts."""
        return self.engine.patch_size

    @property
    def backend(self) -> str:
        """The engine's backend: ``pytorch`` or ``onnxruntime``."""
        return self.engine.name

    @property
    def description(self) -> str:
        """Backend, device, precision (and providers) of the engine, for logs."""
        return self.engine.description

    def close(self) -> None:
        """Release the engine (and its GPU memory); the segmenter cannot predict afterwards."""
        self.engine.close()

    def warm_up(self) -> None:
        """Run one black frame of the network input size (the first run allocates buffers,
        compiles, builds TensorRT engines) and check that its class scores are finite.

        Raises:
            NonFiniteOutputError: a NaN or infinite score (broken weights, or an overflow in
                reduced precision). On this and any other failure the segmenter is closed
                (its memory released) before the error is raised.
        """
        height, width = self.inference.input_size
        try:
            self.predict(np.zeros((height, width, 3), np.uint8))
        except BaseException:
            self.close()
            raise

    def prepare(
        self,
        image: np.ndarray,
        color_order: ColorOrder = "rgb",
        output_size: tuple[int, int] | None = None,
    ) -> PreparedFrame:
        """Check a uint8 (H, W, 3) frame in ``color_order`` ("rgb" or "bgr"), upload it and cut
        it into network inputs, ready for :meth:`predict_frames` (each frame is checked once).
        ``output_size`` (H, W): its outputs' size (None: the frame's).

        Raises:
            InvalidImageError: not a uint8 (H, W, 3) array, or (when it is slid over as it
                is, not resized first: slide mode without ``test_scale``) smaller than one
                patch.
        """
        resized = self.inference.mode == "whole" or self.inference.test_scale is not None
        frame = validate_image(image, (1, 1) if resized else self.patch_size)
        with torch.inference_mode():
            normalized = to_normalized_tensor(
                frame, color_order, self.config.normalization, self.device
            )
            size = frame.shape[:2]
            outputs = size if output_size is None else tuple(int(n) for n in output_size)
            return PreparedFrame(tile(normalized, self.inference), size, outputs)

    def predict(
        self,
        image: np.ndarray,
        color_order: ColorOrder = "rgb",
        output_size: OutputSize = None,
        **options: Any,
    ) -> SegmentationResult:
        """Segment one uint8 (H, W, 3) frame; see :meth:`predict_frames` for ``options``."""
        if output_size is None or output_size == "model":
            return self.predict_frames(
                [self.prepare(image, color_order)], output_size=output_size, **options
            )[0]
        return self.predict_frames([self.prepare(image, color_order, output_size)], **options)[0]

    def predict_batch(
        self,
        images: Sequence[np.ndarray],
        color_order: ColorOrder | Sequence[ColorOrder] = "rgb",
        **options: Any,
    ) -> list[SegmentationResult]:
        """Segment several uint8 (H, W, 3) frames (sizes may differ) with their crops batched
        together; ``color_order`` for all of them or one per frame; see :meth:`predict_frames`.
        """
        orders = [color_order] * len(images) if isinstance(color_order, str) else color_order
        if len(orders) != len(images):
            raise ConfigError(f"{len(images)} images but {len(orders)} color orders")
        frames = [self.prepare(i, o) for i, o in zip(images, orders, strict=True)]
        return self.predict_frames(frames, **options)

    def predict_frames(
        self,
        frames: Sequence[PreparedFrame],
        *,
        confidence_threshold: float = 0.0,
        return_scores: bool = False,
        output_size: OutputSize = None,
        resize: ResizeMode = "scores",
        summarize: bool = False,
        anomaly_method: AnomalyMethod | None = None,
        anomaly_threshold: float | None = None,
        return_anomaly: bool = False,
        class_map: BoundClassMap | None = None,
    ) -> list[SegmentationResult]:
        """Segment prepared frames, their network inputs in batches of ``batch_size``.

        Args:
            frames: from :meth:`prepare`.
            confidence_threshold: pixels whose confidence is below it get label 255.
            return_scores: also return the (C, H, W) normalized class scores.
            output_size: None: each frame's ``output_size`` (its own size unless given to
                :meth:`prepare`); "model": the resolution the model saw (the frame after
                ``test_scale``, or ``whole_size``).
            resize: how results reach ``output_size``: "scores" resizes the class scores
                (bilinear) before the argmax, as the reference evaluates; "labels" takes the
                argmax at model resolution and resizes labels and confidence (nearest),
                cheaper and blockier.
            summarize: also compute the per-class :class:`ResultSummary` of each result.
            anomaly_method: compute this per-pixel anomaly score (None: none); with
                ``summarize``, the summary's ``anomaly_fraction`` is the share of pixels whose
                score exceeds ``anomaly_threshold`` (None: the method's default,
                :data:`~vltseg_ros.config.anomaly_methods.DEFAULT_THRESHOLDS`), counted at the
                model's resolution.
            return_anomaly: also return the (H, W) anomaly score (needs ``anomaly_method``).
            class_map: give labels, confidence, scores and summary in its output classes
                (bound to this model's class set); the threshold applies to the merged
                confidence.

        Raises:
            ConfigError: an option is out of range, or the class map was bound to other
                classes.
            EngineError: the engine failed (:class:`EngineOutOfMemoryError` when even the
                smaller retry ran out of memory; :class:`NonFiniteOutputError` when a score is
                NaN or infinite: no result is made from it).
        """
        if not 0.0 <= confidence_threshold <= 1.0:
            raise ConfigError(
                f"confidence_threshold must be in [0, 1], got {confidence_threshold}"
            )
        if resize not in ("scores", "labels"):
            raise ConfigError(f"resize must be 'scores' or 'labels', got {resize!r}")
        if anomaly_method is not None:
            check_method(anomaly_method)
        elif return_anomaly:
            raise ConfigError("return_anomaly needs an anomaly_method")
        if class_map is not None and class_map.model_classes.names != self.class_set.names:
            raise ConfigError(
                f"class map {class_map.describe()} was bound to class set "
                f"{class_map.model_classes.name!r}, not to this model's {self.class_set.name!r}"
            )
        with torch.inference_mode():
            raws = [canvas.result() for canvas in self._run([f.tiling for f in frames])]
            check_finite(raws, f"model {self.config.name!r} ({self.backend})")
            results = []
            for raw, frame in zip(raws, frames, strict=True):
                size = tuple(raw.shape[-2:]) if output_size == "model" else frame.output_size
                results.append(
                    scores_to_result(
                        raw,
                        size,
                        confidence_threshold=confidence_threshold,
                        return_scores=return_scores,
                        resize=resize,
                        ignore_index=self.class_set.ignore_index,
                        summarize=summarize,
                        temperature=self.temperature,
                        anomaly_method=anomaly_method,
                        anomaly_threshold=anomaly_threshold,
                        return_anomaly=return_anomaly,
                        class_map=class_map,
                    )
                )
            return results

    def predict_stream(
        self,
        items: Iterable[tuple[Key, np.ndarray, ColorOrder, tuple[int, int] | None]],
        **options: Any,
    ) -> Iterator[tuple[list[Key], list[SegmentationResult], float]]:
        """Segment a stream of ``(key, image, color order, output size or None)``, as many
        frames per call as fill ``batch_size`` network inputs; yields ``(keys, results,
        seconds)`` per call (seconds: from the first frame's preparation to the results).
        ``options``: those of :meth:`predict_frames`.
        """
        keys: list[Key] = []
        frames: list[PreparedFrame] = []
        started = time.perf_counter()
        for key, image, color_order, output_size in items:
            if not frames:
                started = time.perf_counter()
            keys.append(key)
            frames.append(self.prepare(image, color_order, output_size))
            if sum(len(f.tiling.inputs) for f in frames) >= self.batch_size:
                yield keys, self.predict_frames(frames, **options), time.perf_counter() - started
                keys, frames = [], []
        if frames:
            yield keys, self.predict_frames(frames, **options), time.perf_counter() - started

    def _run(self, tilings: list[Tiling]) -> list[ScoreCanvas]:
        """Run all network inputs in batches of ``batch_size`` and stitch the scores."""
        num_classes = self.class_set.num_classes
        canvases = [ScoreCanvas(t, num_classes, self.device) for t in tilings]
        owners = [c for t, c in zip(tilings, canvases, strict=True) for _ in range(len(t.inputs))]
        inputs = torch.cat([t.inputs for t in tilings])
        start = 0
        while start < len(inputs):
            chunk = inputs[start : start + self.batch_size]
            try:
                scores = self.engine(chunk)
            except (EngineOutOfMemoryError, torch.OutOfMemoryError) as exc:
                scores = self._retry_smaller(chunk, exc)
            for owner, crop_scores in zip(owners[start:], scores, strict=False):
                owner.add(crop_scores)
            start += len(chunk)
        return canvases

    def _retry_smaller(self, chunk: Tensor, error: Exception) -> Tensor:
        """After an out-of-memory error on ``chunk``: free the cached device memory, lower
        ``batch_size`` to half the chunk (for every later call too) and run the chunk once
        more in those smaller batches.

        Raises:
            EngineOutOfMemoryError: the chunk was a single input, or the retry ran out of
                memory as well.
        """
        size = len(chunk)
        if size == 1:
            raise EngineOutOfMemoryError(
                f"{self.engine.name} engine on {self.device} ran out of memory on a single "
                f"network input: {error}"
            ) from error
        self.engine.release_cached_memory()
        self.batch_size = max(1, size // 2)
        LOG.warning(
            "%s engine on %s ran out of memory on %d network inputs per pass; emptied the "
            "CUDA cache and lowered batch_size from %d to %d (kept for later frames); retrying",
            self.engine.name,
            self.device,
            size,
            size,
            self.batch_size,
        )
        try:
            return torch.cat([self.engine(part) for part in chunk.split(self.batch_size)])
        except (EngineOutOfMemoryError, torch.OutOfMemoryError) as exc:
            raise EngineOutOfMemoryError(
                f"{self.engine.name} engine on {self.device} ran out of memory again at batch "
                f"size {self.batch_size}: {exc}"
            ) from exc


def _release_failed_load(error: BaseException, device: str | torch.device) -> None:
    """Free what a failed :meth:`Segmenter.load` allocated: the finished frames of ``error``'s
    traceback hold the half-built model (their locals are cleared; the message stays), and
    CUDA's cache holds its memory (returned to the driver)."""
    traceback.clear_frames(error.__traceback__)
    gc.collect()
    if str(device).startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()
