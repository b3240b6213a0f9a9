"""Inference engines behind one interface: PyTorch and ONNX Runtime (TensorRT / CUDA / CPU).

    engine = create_engine("onnxruntime", checkpoint="model.onnx", device="cuda",
                           precision="fp16", options=OnnxRuntimeOptions(cache_dir="~/.trt"))
    segmenter = Segmenter(engine)

:class:`Engine` (``base``) is the interface; :class:`TorchEngine` runs a :class:`VLTSeg`
module, :class:`OnnxRuntimeEngine` an exported ``.onnx`` file (imported on first use, so the
PyTorch path never loads ONNX Runtime).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from vltseg_ros.config.model_config import ModelConfig, load_model_config
from vltseg_ros.engines.base import (
    BACKENDS,
    PRECISIONS,
    Backend,
    Engine,
    Precision,
    resolve_backend,
    resolve_device,
)
from vltseg_ros.engines.options import EngineOptions, OnnxRuntimeOptions, TorchOptions
from vltseg_ros.engines.torch_engine import TorchEngine
from vltseg_ros.errors import ConfigError
from vltseg_ros.model.checkpoint import load_model
from vltseg_ros.model.segmentor import VLTSeg

if TYPE_CHECKING:
    from vltseg_ros.engines.onnxruntime_engine import OnnxRuntimeEngine

__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "Backend",
    "Engine",
    "EngineOptions",
    "OnnxRuntimeEngine",
    "OnnxRuntimeOptions",
    "Precision",
    "TorchEngine",
    "TorchOptions",
    "check_model_for_backend",
    "create_engine",
    "resolve_backend",
    "resolve_device",
]


def __getattr__(name: str) -> object:
    if name == "OnnxRuntimeEngine":
        from vltseg_ros.engines.onnxruntime_engine import OnnxRuntimeEngine

        return OnnxRuntimeEngine
    raise AttributeError(f"module 'vltseg_ros.engines' has no attribute {name!r}")


def create_engine(
    backend: Backend | None = None,
    *,
    model: VLTSeg | ModelConfig | str | Path | None = None,
    checkpoint: str | Path | None = None,
    device: str | torch.device = "cpu",
    precision: Precision = "fp32",
    options: EngineOptions | None = None,
    batch_size: int | None = None,
) -> Engine:
    """Build the engine for ``backend`` (None: chosen by :func:`resolve_backend`).

    Args:
        model: pytorch: a built :class:`VLTSeg`, or a config / built-in name / YAML path
            (weights from ``checkpoint``, random without one). onnxruntime: must be None (the
            ``.onnx`` file carries its configuration).
        checkpoint: pytorch: ``.safetensors`` / ``.pt`` weights; onnxruntime: the ``.onnx``.
        device, precision: see :func:`resolve_device`.
        options: :class:`TorchOptions` or :class:`OnnxRuntimeOptions`, of ``backend``'s kind;
            None = its defaults.
        batch_size: most inputs per call (see the engines).

    Raises:
        ConfigError: inconsistent backend, model, checkpoint or options; and the errors of
            the engines and of checkpoint loading.
    """
    backend = resolve_backend(backend, checkpoint)
    kind = OnnxRuntimeOptions if backend == "onnxruntime" else TorchOptions
    if options is not None and not isinstance(options, kind):
        raise ConfigError(f"{type(options).__name__} do not apply to the {backend} backend")
    check_model_for_backend(backend, model)
    if backend == "onnxruntime":
        from vltseg_ros.engines.onnxruntime_engine import OnnxRuntimeEngine

        return OnnxRuntimeEngine(checkpoint, device, precision, options, batch_size=batch_size)
    if not isinstance(model, VLTSeg):
        model = _torch_model(model, checkpoint)
    elif checkpoint is not None:
        raise ConfigError("give either a built model or a checkpoint to load, not both")
    return TorchEngine(model, device, precision, options, batch_size=batch_size)


def check_model_for_backend(backend: Backend, model: object | None) -> None:
    """Raise :class:`ConfigError` when a model is given to the onnxruntime backend (the .onnx
    file carries its architecture)."""
    if backend == "onnxruntime" and model is not None:
        raise ConfigError(
            "model: must be empty with the onnxruntime backend: the .onnx file carries its "
            "architecture"
        )


def _torch_model(model: ModelConfig | str | Path | None, checkpoint: str | Path | None) -> VLTSeg:
    config = None
    if model is not None:
        config = model if isinstance(model, ModelConfig) else load_model_config(model)
    if checkpoint is not None:
        return load_model(checkpoint, config)
    if config is None:
        raise ConfigError("give a model name / config file, a checkpoint, or both")
    return VLTSeg(config)
