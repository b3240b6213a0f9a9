"""ONNX Runtime execution providers: names, the automatic order and their options.

Pure functions (ONNX Runtime is not imported here), so the node can validate its parameters
cheaply and the tests can check the options built for TensorRT and CUDA on machines without
them. The order is TensorRT -> CUDA -> CPU: ONNX Runtime gives each graph node to the first
provider that supports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from vltseg_ros.engines.base import Precision
from vltseg_ros.errors import ConfigError, DeviceError

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
AUTO_ORDER = (TENSORRT, CUDA, CPU)
GPU_PROVIDERS = (TENSORRT, CUDA)
SHORT_NAMES = {TENSORRT: "tensorrt", CUDA: "cuda", CPU: "cpu"}
_ALIASES = {**{short: full for full, short in SHORT_NAMES.items()}, "trt": TENSORRT}

ProviderOptions = list[tuple[str, dict[str, str]]]
"""(provider name, its options) in priority order, as ``InferenceSession`` takes them."""


@dataclass(frozen=True)
class NetworkShape:
    """What the TensorRT optimization profile needs to know about the network input.

    Attributes:
        input_name: the graph input (``images``).
        input_size: static (h, w) of the input.
        static_batch: the batch the graph was exported with, or None for a dynamic batch.
        batch_size: largest batch sent at once (dynamic batch only): TensorRT then builds one
            engine for batches 1..batch_size instead of one per batch size seen.
    """

    input_name: str
    input_size: tuple[int, int]
    static_batch: int | None = None
    batch_size: int | None = None


def parse_providers(names: str | Sequence[str]) -> tuple[str, ...]:
    """Provider names from ``"tensorrt,cuda"`` or a list; short (``tensorrt``, ``trt``,
    ``cuda``, ``cpu``) or full ONNX Runtime names. Empty = automatic (returns ``()``).

    Raises:
        ConfigError: an unknown or repeated name.
    """
    if isinstance(names, str):
        names = names.split(",")
    parsed = []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        full = _ALIASES.get(name.lower(), name)
        if full not in AUTO_ORDER:
            raise ConfigError(
                f"unknown execution provider {raw!r}; use tensorrt, cuda or cpu (or their "
                f"ONNX Runtime names {', '.join(AUTO_ORDER)})"
            )
        if full in parsed:
            raise ConfigError(f"execution provider {raw!r} is listed twice")
        parsed.append(full)
    return tuple(parsed)


def select_providers(
    device: torch.device,
    precision: Precision,
    available: Sequence[str],
    shape: NetworkShape,
    *,
    requested: Sequence[str] = (),
    fp16_model: bool = False,
    cache_dir: Path | None = None,
) -> ProviderOptions:
    """The providers to create a session with, and their options.

    Args:
        device: ``cpu`` or ``cuda:N`` (validated by ``resolve_device``).
        precision: fp32, or fp16 on CUDA: TensorRT builds fp16 kernels (``trt_fp16_enable``);
            the CUDA provider alone needs a model exported in fp16.
        available: ``onnxruntime.get_available_providers()``.
        shape: the network input (for TensorRT's optimization profile).
        requested: providers in priority order (:func:`parse_providers`); empty = every
            available one for the device, in the order TensorRT, CUDA, CPU.
        fp16_model: the graph itself computes in fp16.
        cache_dir: TensorRT engine and timing cache folder; None = no cache (every start
            builds the engine again, which can take minutes).

    Raises:
        ConfigError: a precision the providers cannot give; GPU providers on the CPU or
            a GPU device without one.
        DeviceError: a requested provider (or any GPU provider for a CUDA device) is not
            available in this ONNX Runtime build.
    """
    names = _provider_names(device, available, tuple(requested))
    check_precision(precision, names, fp16_model)
    options = []
    for name in names:
        if name == TENSORRT:
            options.append((name, tensorrt_options(device, precision, shape, cache_dir)))
        elif name == CUDA:
            options.append((name, {"device_id": str(device.index or 0)}))
        else:
            options.append((name, {}))
    return options


def tensorrt_options(
    device: torch.device, precision: Precision, shape: NetworkShape, cache_dir: Path | None
) -> dict[str, str]:
    """TensorRT provider options: device, fp16, engine / timing cache, optimization profile."""
    options = {
        "device_id": str(device.index or 0),
        "trt_fp16_enable": "True" if precision == "fp16" else "False",
    }
    if cache_dir is not None:
        options |= {
            "trt_engine_cache_enable": "True",
            "trt_engine_cache_path": str(cache_dir),
            "trt_timing_cache_enable": "True",
            "trt_timing_cache_path": str(cache_dir),
        }
    if shape.static_batch is None and shape.batch_size is not None:
        h, w = shape.input_size
        for key, batch in (("min", 1), ("opt", shape.batch_size), ("max", shape.batch_size)):
            options[f"trt_profile_{key}_shapes"] = f"{shape.input_name}:{batch}x3x{h}x{w}"
    return options


def _provider_names(
    device: torch.device, available: Sequence[str], requested: tuple[str, ...]
) -> list[str]:
    install = "install onnxruntime-gpu (requirements/gpu.txt) in place of onnxruntime"
    if not requested:
        if device.type == "cpu":
            return [CPU]
        names = [p for p in AUTO_ORDER if p in available]
        if not any(p in GPU_PROVIDERS for p in names):
            raise DeviceError(
                f"device {device} needs ONNX Runtime's TensorRT or CUDA provider, but this "
                f"onnxruntime has only {list(available)}; {install}"
            )
        return names
    missing = [p for p in requested if p not in available]
    if missing:
        raise DeviceError(
            f"execution provider(s) {', '.join(missing)} not available in this onnxruntime "
            f"(it has {list(available)}); {install}"
        )
    gpu = [p for p in requested if p in GPU_PROVIDERS]
    if device.type == "cpu" and gpu:
        raise ConfigError(
            f"provider(s) {', '.join(SHORT_NAMES[p] for p in gpu)} run on a GPU: set device "
            "cuda, or use the cpu provider"
        )
    if device.type == "cuda" and not gpu:
        raise ConfigError(f"device {device} needs the tensorrt or cuda provider")
    return list(requested)


def check_precision(precision: Precision, names: Sequence[str], fp16_model: bool) -> None:
    """Raise :class:`ConfigError` unless ``names`` (providers) can run ``precision``."""
    if fp16_model and precision != "fp16":
        raise ConfigError(
            "the ONNX model was exported in fp16: set precision fp16 (on a CUDA device)"
        )
    if precision == "fp16" and not fp16_model and TENSORRT not in names:
        raise ConfigError(
            "precision fp16 with the onnxruntime backend needs the TensorRT provider or a model "
            "exported in fp16; the CUDA provider runs an fp32 model in fp32"
        )
