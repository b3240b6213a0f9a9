"""The interface every inference engine implements, and the device / precision check they share.

An engine runs the network only: normalized (N, 3, h, w) float32 inputs on its device in, raw
(N, C, h, w) float32 Mask2Former semantic scores on the same device out. Cutting frames into
inputs and stitching scores is :class:`vltseg_ros.inference.predictor.Segmenter`'s job.
"""

from __future__ import annotations

import gc
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar, Literal

import torch
from torch import Tensor

from vltseg_ros.config.model_config import ModelConfig
from vltseg_ros.errors import ConfigError, DeviceError

Backend = Literal["pytorch", "onnxruntime"]
BACKENDS: tuple[Backend, ...] = ("pytorch", "onnxruntime")
Precision = Literal["fp32", "fp16", "bf16"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "fp16", "bf16")
ONNX_SUFFIX = ".onnx"


class Engine(ABC):
    """A loaded network on one device.

    Attributes:
        name: the backend, ``"pytorch"`` or ``"onnxruntime"``.
        config: the model's configuration (class set, normalization, default inference).
        device: where inputs must be and outputs are (``cpu`` or ``cuda:N``).
        precision: ``fp32``, ``fp16`` or ``bf16``, as requested and validated.
    """

    name: ClassVar[str]
    config: ModelConfig
    device: torch.device
    precision: Precision

    @property
    @abstractmethod
    def patch_size(self) -> tuple[int, int]:
        """(H, W) of the encoder's patches: the smallest frame the model can segment."""

    @property
    def input_size(self) -> tuple[int, int] | None:
        """(h, w) every input must have (a static network, e.g. ONNX), or None for any size."""
        return None

    @property
    def batch_size(self) -> int | None:
        """Most inputs one call takes (the compiled or exported batch, the TensorRT profile's
        largest), or None for any number. Splitting larger work is the Segmenter's job."""
        return None

    @property
    @abstractmethod
    def description(self) -> str:
        """Backend, device, precision and providers in one line, for logs and diagnostics."""

    @abstractmethod
    def __call__(self, inputs: Tensor) -> Tensor:
        """Raw semantic scores of a batch of network inputs.

        Args:
            inputs: (N, 3, h, w) float32, RGB normalized with the config's mean / std, on
                :attr:`device`; (h, w) must equal :attr:`input_size` when that is set.

        Returns:
            (N, C, h, w) float32 on :attr:`device`: sum over queries of class probability
            times sigmoid mask (not normalized over classes).

        Raises:
            ConfigError: the inputs have the wrong shape, dtype or device.
            EngineError: the engine is closed or the backend failed.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the network and the memory it holds (GPU memory included); idempotent."""

    def release_cached_memory(self) -> None:
        """Give cached but unused memory back (after an out-of-memory error): Python garbage
        is collected and PyTorch's CUDA caching allocator is emptied."""
        gc.collect()
        if torch.cuda.is_initialized():
            torch.cuda.empty_cache()

    def check_inputs(self, inputs: Tensor) -> None:
        """Raise :class:`ConfigError` unless ``inputs`` fit :meth:`__call__`."""
        if inputs.ndim != 4 or inputs.shape[1] != 3 or inputs.shape[0] == 0:
            raise ConfigError(f"engine inputs must be (N, 3, h, w), got {tuple(inputs.shape)}")
        if self.batch_size is not None and len(inputs) > self.batch_size:
            raise ConfigError(
                f"{len(inputs)} inputs in one call; the {self.name} engine takes at most "
                f"batch_size {self.batch_size} (the Segmenter splits larger work)"
            )
        if inputs.dtype != torch.float32 or inputs.device != self.device:
            raise ConfigError(
                f"engine inputs must be float32 on {self.device}, got {inputs.dtype} on "
                f"{inputs.device}"
            )
        size = tuple(inputs.shape[-2:])
        if self.input_size is not None and size != self.input_size:
            raise ConfigError(
                f"input {size[0]}x{size[1]} does not match the {self.name} network's static "
                f"input size {self.input_size[0]}x{self.input_size[1]}"
            )


def pad_batch(inputs: Tensor, size: int) -> Tensor:
    """``inputs`` (N <= ``size``, ...) with zero inputs appended up to ``size`` (for networks
    compiled or exported for one batch size; drop the padding's outputs with ``[:N]``)."""
    if len(inputs) == size:
        return inputs
    return torch.cat([inputs, inputs.new_zeros((size - len(inputs), *inputs.shape[1:]))])


def resolve_device(device: str | torch.device, precision: Precision) -> torch.device:
    """Check that ``device`` exists and supports ``precision``; return it as a torch.device.

    ``cuda`` without an index becomes ``cuda:<current device>``.

    Raises:
        ConfigError: unknown precision.
        DeviceError: unknown or unavailable device; fp16 / bf16 on the CPU; bf16 on a GPU
            without it.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise DeviceError(f"unknown device {device!r} (use 'cpu', 'cuda' or 'cuda:N')") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {device!r} requested but CUDA is not available here")
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        if dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device {device!r}: only {torch.cuda.device_count()} GPU(s)")
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise DeviceError(f"bf16 is not supported by GPU {torch.cuda.get_device_name(dev)}")
    elif dev.type == "cpu":
        if precision != "fp32":
            raise DeviceError(f"{precision} runs only on CUDA; use precision fp32 on the CPU")
    else:
        raise DeviceError(f"unsupported device type {dev.type!r}; use 'cpu' or 'cuda'")
    return dev


def resolve_backend(backend: str | None, checkpoint: str | Path | None) -> Backend:
    """The backend to use: ``backend`` checked against the checkpoint, or (None) the
    checkpoint's kind: ``onnxruntime`` for a ``.onnx`` file, else ``pytorch``.

    Raises:
        ConfigError: an unknown backend; a ``.onnx`` checkpoint with ``pytorch``; the
            ``onnxruntime`` backend without a ``.onnx`` checkpoint.
    """
    is_onnx = checkpoint is not None and Path(checkpoint).suffix.lower() == ONNX_SUFFIX
    if backend is None:
        return "onnxruntime" if is_onnx else "pytorch"
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if backend == "pytorch" and is_onnx:
        raise ConfigError(
            f"checkpoint {str(checkpoint)!r} is an ONNX model: run it with the onnxruntime "
            "backend (--backend onnxruntime, node parameter backend: onnxruntime)"
        )
    if backend == "onnxruntime" and not is_onnx:
        raise ConfigError(
            "the onnxruntime backend runs an exported .onnx file: give it as the checkpoint "
            f"(got {str(checkpoint) if checkpoint else 'no checkpoint'})"
        )
    return backend
