"""ONNX Runtime execution providers: order, TensorRT / CUDA options, precision rules.

This machine has no GPU and a CPU-only onnxruntime: TensorRT and CUDA sessions cannot run
here. These tests check the options the engine builds and hands to ``InferenceSession``
(with the available providers, the device and the session faked), not GPU inference.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import ClassVar

import onnxruntime as ort
import pytest
import torch

from vltseg_ros.engines import onnxruntime_engine
from vltseg_ros.engines.onnxruntime_engine import OnnxRuntimeEngine
from vltseg_ros.engines.options import OnnxRuntimeOptions
from vltseg_ros.engines.providers import (
    CPU,
    CUDA,
    TENSORRT,
    NetworkShape,
    parse_providers,
    select_providers,
)
from vltseg_ros.errors import ConfigError, DeviceError, EngineError

CPU_DEVICE, GPU0, GPU1 = torch.device("cpu"), torch.device("cuda", 0), torch.device("cuda", 1)
ALL = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "AzureExecutionProvider", CPU]
SHAPE = NetworkShape("images", (512, 1024), static_batch=None, batch_size=4)


def test_parse_providers() -> None:
    assert parse_providers("") == parse_providers([]) == ()
    assert parse_providers("tensorrt, CUDA,cpu") == (TENSORRT, CUDA, CPU)
    assert parse_providers(["trt", CPU]) == (TENSORRT, CPU)
    with pytest.raises(ConfigError, match="unknown execution provider 'openvino'"):
        parse_providers("openvino")
    with pytest.raises(ConfigError, match="twice"):
        parse_providers("cuda,CUDAExecutionProvider")


def test_automatic_order_is_tensorrt_cuda_cpu() -> None:
    assert select_providers(CPU_DEVICE, "fp32", ALL, SHAPE) == [(CPU, {})]
    names = [name for name, _ in select_providers(GPU0, "fp32", ALL[::-1], SHAPE)]
    assert names == [TENSORRT, CUDA, CPU]  # Azure is never used
    only_cuda = select_providers(GPU1, "fp32", [CPU, CUDA], SHAPE)
    assert only_cuda == [(CUDA, {"device_id": "1"}), (CPU, {})]
    with pytest.raises(DeviceError, match="onnxruntime-gpu"):
        select_providers(GPU0, "fp32", [CPU], SHAPE)


def test_tensorrt_options_fp16_cache_and_profile(tmp_path) -> None:
    options = dict(select_providers(GPU1, "fp16", ALL, SHAPE, cache_dir=tmp_path))
    assert options[TENSORRT] == {
        "device_id": "1",
        "trt_fp16_enable": "True",
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(tmp_path),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(tmp_path),
        "trt_profile_min_shapes": "images:1x3x512x1024",
        "trt_profile_opt_shapes": "images:4x3x512x1024",
        "trt_profile_max_shapes": "images:4x3x512x1024",
    }
    assert options[CUDA] == {"device_id": "1"}
    static = NetworkShape("images", (512, 512), static_batch=2)
    plain = dict(select_providers(GPU0, "fp32", ALL, static))[TENSORRT]
    assert plain == {"device_id": "0", "trt_fp16_enable": "False"}  # no cache, no profile


def test_requested_providers() -> None:
    assert select_providers(GPU0, "fp32", ALL, SHAPE, requested=(CUDA,)) == [
        (CUDA, {"device_id": "0"})
    ]
    with pytest.raises(DeviceError, match="TensorrtExecutionProvider not available"):
        select_providers(GPU0, "fp32", [CUDA, CPU], SHAPE, requested=(TENSORRT, CUDA))
    with pytest.raises(ConfigError, match="set device cuda"):
        select_providers(CPU_DEVICE, "fp32", ALL, SHAPE, requested=(CUDA, CPU))
    with pytest.raises(ConfigError, match="needs the tensorrt or cuda provider"):
        select_providers(GPU0, "fp32", ALL, SHAPE, requested=(CPU,))


def test_precision_rules() -> None:
    with pytest.raises(ConfigError, match="TensorRT provider or a model exported in fp16"):
        select_providers(GPU0, "fp16", ALL, SHAPE, requested=(CUDA,))
    fp16_graph = select_providers(GPU0, "fp16", ALL, SHAPE, requested=(CUDA,), fp16_model=True)
    assert fp16_graph == [(CUDA, {"device_id": "0"})]
    with pytest.raises(ConfigError, match="exported in fp16: set precision fp16"):
        select_providers(GPU0, "fp32", ALL, SHAPE, fp16_model=True)


class _FakeSession:
    """Stands in for ``InferenceSession`` on a GPU machine: records what it was given."""

    created: ClassVar[list[dict]] = []
    loaded: ClassVar[list[str] | None] = None  # providers that load (None: all requested)

    def __init__(self, path, settings, providers, provider_options) -> None:
        self.created.append(
            {"providers": providers, "options": provider_options, "settings": settings}
        )
        self._providers = [p for p in providers if self.loaded is None or p in self.loaded]

    def get_providers(self) -> list[str]:
        return self._providers

    def get_inputs(self):
        return [SimpleNamespace(name="images", type="tensor(float)")]

    def get_outputs(self):
        return [SimpleNamespace(name="scores", type="tensor(float)")]


@pytest.fixture
def fake_gpu(monkeypatch):
    """A CUDA device, an onnxruntime-gpu provider list and a recording session."""
    monkeypatch.setattr(ort, "get_available_providers", lambda: list(ALL))
    monkeypatch.setattr(ort, "InferenceSession", _FakeSession)
    monkeypatch.setattr(onnxruntime_engine, "resolve_device", lambda device, precision: GPU0)
    _FakeSession.created, _FakeSession.loaded = [], None
    return _FakeSession


def test_engine_builds_the_session_with_tensorrt_first(fake_gpu, tiny_onnx, tmp_path, caplog):
    cache = tmp_path / "trt" / "cache"
    with caplog.at_level(logging.WARNING, logger=onnxruntime_engine.__name__):
        options = OnnxRuntimeOptions(cache_dir=str(cache), threads=3)
        engine = OnnxRuntimeEngine(tiny_onnx[1], "cuda", "fp16", options, batch_size=4)
    (created,) = fake_gpu.created
    assert created["providers"] == [TENSORRT, CUDA, CPU]
    trt = created["options"][0]
    assert trt["trt_fp16_enable"] == "True" and trt["trt_engine_cache_path"] == str(cache)
    assert trt["trt_profile_max_shapes"] == "images:4x3x64x64"
    assert created["options"][1:] == [{"device_id": "0"}, {}]
    assert created["settings"].intra_op_num_threads == 3
    assert cache.is_dir()  # created for TensorRT
    assert "takes minutes" in caplog.text and str(cache) in caplog.text  # logged before
    assert "providers tensorrt+cuda+cpu" in engine.description
    assert f"TensorRT cache {cache}" in engine.description


def test_a_provider_that_fails_to_load(fake_gpu, tiny_onnx, caplog) -> None:
    fake_gpu.loaded = [CUDA, CPU]  # e.g. TensorRT libraries missing
    with caplog.at_level(logging.WARNING, logger=onnxruntime_engine.__name__):
        engine = OnnxRuntimeEngine(tiny_onnx[1], "cuda")  # automatic: falls back, says so
    assert engine.providers == [CUDA, CPU] and "could not load" in caplog.text
    with pytest.raises(ConfigError, match="TensorRT provider or a model exported in fp16"):
        OnnxRuntimeEngine(tiny_onnx[1], "cuda", "fp16")  # fp16 needed TensorRT
    with pytest.raises(EngineError, match="could not load"):
        OnnxRuntimeEngine(tiny_onnx[1], "cuda", options=OnnxRuntimeOptions("tensorrt,cuda"))
    fake_gpu.loaded = [CPU]
    with pytest.raises(EngineError, match="refusing to run without them"):
        OnnxRuntimeEngine(tiny_onnx[1], "cuda")
