"""What a Segmenter is loaded with, as settings data: the node's parameters and the command
line's flags of the same names (``model``, ``checkpoint``, ``backend``, ``device``,
``precision``, ``batch_size``, ``pytorch.*``, ``onnxruntime.*``, ``inference.*``)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from vltseg_ros.config.model_config import DEFAULT_MODEL, InferenceConfig, load_model_config
from vltseg_ros.config.options import option
from vltseg_ros.demo_model import shipped_checkpoint
from vltseg_ros.engines import check_model_for_backend
from vltseg_ros.engines.base import BACKENDS, PRECISIONS, resolve_backend, resolve_device
from vltseg_ros.engines.options import EngineOptions, OnnxRuntimeOptions, TorchOptions
from vltseg_ros.errors import ConfigError, DeviceError
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.io.files import require_file

UNSET_PAIR = (0, 0)
"""The value of a size pair (crop, stride ...) that keeps the model config's."""
_PAIRS = ("crop_size", "stride", "test_scale", "whole_size")


@dataclass(frozen=True)
class InferenceOverrides:
    """Changes to the model config's inference settings; empty / [0, 0] keep them. The size
    pairs are typed as lists of int: :meth:`__post_init__` checks their length, saying what to
    give."""

    mode: str = option(
        "", "'slide' or 'whole'; empty = the model config's.", choices=("", "slide", "whole")
    )
    crop_size: tuple[int, ...] = option(
        UNSET_PAIR, "Slide window [H, W] in pixels; [0, 0] = the model config's."
    )
    stride: tuple[int, ...] = option(
        UNSET_PAIR, "Slide stride [H, W]; [0, 0] = the model config's."
    )
    test_scale: tuple[int, ...] = option(
        UNSET_PAIR,
        "Rescale frames, keeping aspect, to fit [LONG, SHORT] before sliding; [0, 0] = the "
        "model config's.",
    )
    whole_size: tuple[int, ...] = option(
        UNSET_PAIR, "Network input [H, W] in whole mode; [0, 0] = the model config's."
    )

    def __post_init__(self) -> None:
        for name in _PAIRS:
            pair = tuple(getattr(self, name))
            if pair != UNSET_PAIR and (len(pair) != 2 or min(pair) <= 0):
                raise ConfigError(
                    f"inference.{name}: {list(pair)} must be two positive integers or [0, 0]"
                )

    def apply(self, base: InferenceConfig) -> InferenceConfig:
        """``base`` with these changes, validated.

        Raises:
            ConfigError: the result is inconsistent (e.g. a stride larger than the crop), or
                an override would do nothing: ``test_scale`` or ``stride`` in whole mode (the
                frame is resized to the network input and run once), or ``crop_size`` in
                whole mode with a ``whole_size`` (the input size).
        """
        changes = {n: tuple(v) for n in _PAIRS if (v := getattr(self, n)) != UNSET_PAIR}
        if self.mode:
            changes["mode"] = self.mode
        config = dataclasses.replace(base, **changes)
        config.validate()
        if config.mode == "whole":
            ignored = [n for n in ("test_scale", "stride") if n in changes]
            if "crop_size" in changes and config.whole_size is not None:
                ignored.append("crop_size")
            if ignored:
                names = " and ".join(f"inference.{n}" for n in ignored)
                height, width = config.input_size
                raise ConfigError(
                    f"{names} would do nothing: the model runs in whole mode (each frame "
                    f"resized to {height}x{width} (HxW) and run once); drop "
                    f"{'it' if len(ignored) == 1 else 'them'}, or set inference.mode slide"
                )
        return config


@dataclass(frozen=True)
class SegmenterSettings:
    """Model, weights, engine and inference settings of a :class:`Segmenter`."""

    model: str = option(
        "",
        "Built-in model name or model config YAML; empty = the architecture stored in the "
        f".safetensors / .onnx checkpoint, or {DEFAULT_MODEL} without a checkpoint.",
    )
    checkpoint: str = option(
        "",
        "Weights: a .safetensors checkpoint, a .pt state dict (with model), or an exported "
        ".onnx model; empty = the shipped weights of model synthetic-scenes-demo, else RANDOM "
        "weights, output meaningless.",
    )
    backend: str = option(
        "",
        "Inference engine: pytorch, or onnxruntime (TensorRT / CUDA / CPU) for an exported "
        ".onnx checkpoint; empty = onnxruntime for a .onnx checkpoint, else pytorch.",
        choices=("", *BACKENDS),
    )
    device: str = option("cpu", "Inference device: cpu, cuda or cuda:N.")
    precision: str = option(
        "fp32", "Numeric precision; fp16 and bf16 run on CUDA.", choices=PRECISIONS
    )
    batch_size: int = option(
        4,
        "Network inputs (crops) per forward pass: the crops of a frame, and of all cameras, "
        "share the passes; the compiled batch and the TensorRT profile's largest.",
        range=(1, 256),
    )
    pytorch: TorchOptions = option(TorchOptions(), "Backend pytorch:")
    onnxruntime: OnnxRuntimeOptions = option(OnnxRuntimeOptions(), "Backend onnxruntime:")
    inference: InferenceOverrides = option(InferenceOverrides(), "Inference:")

    @property
    def resolved_backend(self) -> str:
        """``backend``, or the checkpoint's kind when empty.

        Raises:
            ConfigError: a backend / checkpoint mismatch.
        """
        return resolve_backend(self.backend or None, self.checkpoint or None)

    @property
    def weights(self) -> str:
        """The weights file the model will load: ``checkpoint``, or the shipped weights of a
        model that has them (``synthetic-scenes-demo``); "" = random weights."""
        return self.checkpoint or str(shipped_checkpoint(self.model) or "")

    def engine_options(self) -> EngineOptions:
        """The options of the resolved backend.

        Raises:
            ConfigError: options of the other backend were changed from their defaults.
        """
        backend = self.resolved_backend
        own, other = (
            ("pytorch", "onnxruntime") if backend == "pytorch" else ("onnxruntime", "pytorch")
        )
        changed = [
            f"{other}.{f.name}"
            for f in dataclasses.fields(getattr(self, other))
            if getattr(getattr(self, other), f.name) != f.default
        ]
        if changed:
            raise ConfigError(f"{', '.join(changed)} apply to the {other} backend, not {backend}")
        return getattr(self, own)

    def check(self) -> None:
        """Everything that can be checked without loading the model: device and precision on
        this machine, backend against checkpoint and model, the other backend's options, the
        model name or config file (read, not built), the checkpoint file's existence.

        Raises:
            ConfigError: naming every problem found.
        """
        errors = []
        for check in (self._check_device, self._check_model, self.engine_options):
            try:
                check()
            except (ConfigError, DeviceError) as exc:
                errors.append(str(exc))
        if errors:
            raise ConfigError("; ".join(errors))

    def _check_device(self) -> None:
        if not re.fullmatch(r"cpu|cuda(:\d+)?", self.device):
            raise ConfigError(f"device: {self.device!r} is not cpu, cuda or cuda:N")
        if self.precision == "bf16" and self.resolved_backend == "onnxruntime":
            raise ConfigError("precision: bf16 is not available with backend onnxruntime")
        try:
            resolve_device(self.device, self.precision)
        except DeviceError as exc:
            raise ConfigError(
                f"device / precision: {self.precision} on {self.device!r}: {exc}"
            ) from None

    def _check_model(self) -> None:
        if self.checkpoint:
            require_file(self.checkpoint, "checkpoint: file", ConfigError)
        check_model_for_backend(self.resolved_backend, self.model or None)
        if self.model:
            try:
                load_model_config(self.model)
            except ConfigError as exc:
                raise ConfigError(f"model: {exc}") from None

    def load(self) -> Segmenter:
        """The Segmenter these settings describe (model loaded, inference overrides applied).

        Raises:
            ConfigError, CheckpointError, DeviceError, EngineError: see :meth:`Segmenter.load`.
        """
        segmenter = Segmenter.load(
            self.model or None,
            self.checkpoint or None,
            backend=self.resolved_backend,
            device=self.device,
            precision=self.precision,
            options=self.engine_options(),
            batch_size=self.batch_size,
        )
        try:
            segmenter.inference = self.inference.apply(segmenter.inference)
        except ConfigError:
            segmenter.close()
            raise
        return segmenter
