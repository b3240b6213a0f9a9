"""The PyTorch engine: a :class:`VLTSeg` module on the CPU or a CUDA GPU, optionally under
autocast (fp16 / bf16), in channels-last memory format or compiled with ``torch.compile``."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Callable

import torch
from torch import Tensor

from vltseg_ros.config.model_config import ModelConfig
from vltseg_ros.engines.base import Engine, Precision, pad_batch, resolve_device
from vltseg_ros.engines.options import TorchOptions
from vltseg_ros.errors import ConfigError, EngineError, EngineOutOfMemoryError
from vltseg_ros.model.segmentor import VLTSeg

LOG = logging.getLogger(__name__)

_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


class TorchEngine(Engine):
    """Runs a :class:`VLTSeg` model with PyTorch.

    Args:
        model: the network; moved to ``device`` and put in eval mode (in place).
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``fp32``; ``fp16`` or ``bf16`` (autocast) on GPUs that have it.
        options: ``channels_last`` keeps the convolution weights and the inputs in
            channels-last memory format (NHWC; numerically the same); ``compile`` wraps the
            model in ``torch.compile`` (default mode, static shapes): the first call compiles
            (tens of seconds to minutes; inductor caches kernels in
            ``TORCHINDUCTOR_CACHE_DIR``, so later processes compile faster), and every call
            is padded to ``batch_size`` inputs, so that one graph serves every call (a frame's
            last, smaller batch of crops would otherwise compile again mid-run).
        batch_size: most inputs per call (None: any number; compiled, each new batch size then
            compiles again).

    Raises:
        ConfigError / DeviceError: see :func:`resolve_device`.
    """

    name = "pytorch"

    def __init__(
        self,
        model: VLTSeg,
        device: str | torch.device = "cpu",
        precision: Precision = "fp32",
        options: TorchOptions | None = None,
        *,
        batch_size: int | None = None,
    ) -> None:
        options = options or TorchOptions()
        if batch_size is not None and batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.device = resolve_device(device, precision)
        self.precision = precision
        self.config: ModelConfig = model.config
        self.options = options
        self._batch_size = batch_size
        self._patch_size = tuple(model.encoder.patch_size)
        model = model.to(self.device).eval()
        if options.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self._model: VLTSeg | None = model
        self._forward: Callable[[Tensor], Tensor] | None = (
            torch.compile(model, dynamic=False) if options.compile else model
        )

    @property
    def model(self) -> VLTSeg:
        """The PyTorch module (for training tools and exports, not for inference)."""
        if self._model is None:
            raise EngineError("the pytorch engine is closed")
        return self._model

    @property
    def patch_size(self) -> tuple[int, int]:
        """(H, W) of the encoder's patches."""
        return self._patch_size

    @property
    def batch_size(self) -> int | None:
        """Most inputs per call, as given (None: any number)."""
        return self._batch_size

    @property
    def description(self) -> str:
        """E.g. ``pytorch 2.14.1 on cuda:0 (fp16 autocast), channels-last``."""
        where = str(self.device)
        if self.device.type == "cuda":
            where += f" ({torch.cuda.get_device_name(self.device)})"
        text = f"pytorch {torch.__version__} on {where}, {self.precision}"
        if self.precision != "fp32":
            text += " autocast"
        if self.options.channels_last:
            text += ", channels-last"
        if self.options.compile:
            text += ", torch.compile"
            if self._batch_size is not None:
                text += f" (batches padded to {self._batch_size})"
        return text

    def __call__(self, inputs: Tensor) -> Tensor:
        """(N, 3, h, w) float32 normalized inputs -> (N, C, h, w) float32 raw scores."""
        if self._forward is None:
            raise EngineError("the pytorch engine is closed")
        self.check_inputs(inputs)
        count = len(inputs)
        if self.options.compile and self._batch_size is not None:
            inputs = pad_batch(inputs, self._batch_size)
        try:
            with torch.inference_mode(), self._autocast():
                return self._run(inputs)[:count]
        except torch.OutOfMemoryError as exc:
            raise EngineOutOfMemoryError(
                f"out of memory on {self.device} running {len(inputs)} inputs of "
                f"{inputs.shape[-2]}x{inputs.shape[-1]}: {_first_line(exc)}"
            ) from exc

    def close(self) -> None:
        """Drop the model; on CUDA also return the cached memory to the driver (the memory is
        freed once nothing else holds the module)."""
        if self._model is None:
            return
        self._model = self._forward = None
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _run(self, inputs: Tensor) -> Tensor:
        if self.options.compile and not inputs.is_inference():
            # The compiled graph's guards tell tensors made under inference_mode (padded
            # batches) from others: a copy made here keeps every call on the one graph.
            inputs = inputs.clone()
        if self.options.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return self._forward(inputs).float()

    def _autocast(self) -> contextlib.AbstractContextManager[None]:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=_DTYPES[self.precision])


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
