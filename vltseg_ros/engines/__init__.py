"""Inference engines behind one interface: PyTorch and ONNX Runtime (TensorRT / CUDA / CPU).

    engine = create_engine("onnxruntime", checkpoint="model.onnx", device="cuda",
                           precision="fp16", cache_dir="~/.cache/vltseg_trt")
    segmenter = Segmenter(engine)

:class:`Engine` (``base``) is the interface; :class:`TorchEngine` runs a :class:`VLTSeg`
module, :class:`OnnxRuntimeEngine` an exported ``.onnx`` file (imported on first use, so the
PyTorch path never loads ONNX Runtime).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from vltseg_ros.checkpoint import load_model
from vltseg_ros.config import ModelConfig, load_model_config
from vltseg_ros.engines.base import (
    BACKENDS,
    PRECISIONS,
    Backend,
    Engine,
    Precision,
    resolve_backend,
    resolve_device,
)
from vltseg_ros.engines.torch_engine import TorchEngine
from vltseg_ros.errors import ConfigError
from vltseg_ros.model.segmentor import VLTSeg

if TYPE_CHECKING:
    from vltseg_ros.engines.onnxruntime_engine import OnnxRuntimeEngine

__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "Backend",
    "Engine",
    "OnnxRuntimeEngine",
    "Precision",
    "TorchEngine",
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
    channels_last: bool = False,
    compile: bool = False,
    providers: str | Sequence[str] | None = None,
    cache_dir: str | Path | None = None,
    threads: int | None = None,
    max_batch: int | None = None,
) -> Engine:
    """Build the engine for ``backend`` (None: chosen by :func:`resolve_backend`).

    Args:
        model: pytorch: a built :class:`VLTSeg`, or a config / built-in name / YAML path
            (weights from ``checkpoint``, random without one). onnxruntime: must be None (the
            ``.onnx`` file carries its configuration).
        checkpoint: pytorch: ``.safetensors`` / ``.pt`` weights; onnxruntime: the ``.onnx``.
        device, precision: see :func:`resolve_device`.
        channels_last, compile: pytorch only (see :class:`TorchEngine`).
        providers, cache_dir, threads: onnxruntime only (see :class:`OnnxRuntimeEngine`);
            None = unset.
        max_batch: most inputs per network call, both backends (see the engines).

    Raises:
        ConfigError: inconsistent backend, model, checkpoint or options; and the errors of
            the engines and of checkpoint loading.
    """
    backend = resolve_backend(backend, checkpoint)
    if backend == "onnxruntime":
        if model is not None:
            raise ConfigError(
                "a model name or config cannot be combined with the onnxruntime backend: the "
                ".onnx file carries its architecture (leave --model / model empty)"
            )
        _refuse_options(backend, channels_last=channels_last, compile=compile)
        from vltseg_ros.engines.onnxruntime_engine import OnnxRuntimeEngine

        return OnnxRuntimeEngine(
            checkpoint,
            device,
            precision,
            providers=providers,
            cache_dir=cache_dir,
            threads=threads,
            max_batch=max_batch,
        )
    _refuse_options(backend, providers=providers, cache_dir=cache_dir, threads=threads)
    if not isinstance(model, VLTSeg):
        model = _torch_model(model, checkpoint)
    elif checkpoint is not None:
        raise ConfigError("give either a built model or a checkpoint to load, not both")
    return TorchEngine(
        model,
        device,
        precision,
        channels_last=channels_last,
        compile=compile,
        max_batch=max_batch,
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


def _refuse_options(backend: Backend, **options: object) -> None:
    given = [name for name, value in options.items() if value not in (None, False)]
    if given:
        raise ConfigError(f"option(s) {', '.join(given)} do not apply to the {backend} backend")
