"""The GPU paths against the CPU reference: PyTorch on CUDA (fp32, fp16, bf16), ONNX Runtime on
the CUDA and TensorRT providers (fp32, fp16 export, TensorRT fp16), deformable attention on CUDA.

Every test is parametrized over the devices / providers it checks with the CPU among them, so
the checks themselves run everywhere; the GPU cases skip without a CUDA GPU, without bf16, or
without the provider (onnxruntime-gpu; TensorRT libraries). ``bench/gpu_checks.sh`` runs this
module on a GPU machine together with the benchmarks.

Tolerances: the reference is the tiny model (seed 0) in fp32 on the CPU, whose scores lie in
about [0, 1.2] with a top-1 / top-2 margin above 0.26 on 99.9 % of the pixels, so any precision
here must give identical labels. The reference is an independent implementation of the engine
under test: ONNX Runtime on the CPU for the PyTorch engines, PyTorch on the CPU for the ONNX
Runtime ones (so the CPU cases do not compare an engine with itself). fp32 on CUDA allows 5e-3
for TF32 convolutions and matmuls (cuDNN's and ONNX Runtime's default).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from test.model.test_deformable_gather import SHAPES
from test.model.test_deformable_gather import _inputs as _deformable_inputs
from vltseg_ros.engines import Engine, OnnxRuntimeEngine, TorchEngine
from vltseg_ros.engines.options import OnnxRuntimeOptions
from vltseg_ros.errors import ConfigError
from vltseg_ros.export.onnx_export import export_onnx
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.model.deformable_attention import (
    multi_scale_deformable_attn,
    multi_scale_deformable_attn_gather,
)

CUDA = torch.cuda.is_available()
SCORE_TOLERANCE = {"fp32": 5e-3, "fp16": 2e-2, "bf16": 6e-2}


def _providers() -> list[str]:
    import onnxruntime

    return onnxruntime.get_available_providers()


def _case(device: str, precision: str, *more: str, provider: str = "") -> object:
    """``pytest.param(device, precision, *more)`` that skips where the device, bf16 or the ONNX
    Runtime ``provider`` (e.g. ``CUDAExecutionProvider``) is absent."""
    reason = None
    if device == "cuda" and not CUDA:
        reason = "needs a CUDA GPU"
    elif precision == "bf16" and not torch.cuda.is_bf16_supported():
        reason = "the GPU has no bf16"
    elif provider and provider not in _providers():
        reason = f"onnxruntime has no {provider} here"
    marks = [pytest.mark.skip(reason=reason)] if reason else []
    label = "-".join((*more, precision) if more else (device, precision))
    return pytest.param(device, precision, *more, marks=marks, id=label)


def _crops(count: int, seed: int = 0) -> torch.Tensor:
    """(count, 3, 64, 64) float32 normalized crops (the tiny model's input size)."""
    return torch.randn(count, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def reference(tiny_onnx) -> torch.Tensor:
    """PyTorch fp32 CPU scores of ``_crops(3)``: (3, 19, 64, 64) float32."""
    return TorchEngine(tiny_onnx[0])(_crops(3))


@pytest.fixture(scope="module")
def ort_reference(tiny_onnx) -> torch.Tensor:
    """ONNX Runtime fp32 CPU scores of ``_crops(3)`` (the exported tiny model): the reference
    of the PyTorch engines, computed by other kernels."""
    engine = OnnxRuntimeEngine(tiny_onnx[1], "cpu", "fp32")
    scores = engine(_crops(3))
    engine.close()
    return scores


@pytest.fixture(scope="module")
def fp16_onnx(tiny_onnx, tmp_path_factory) -> Path:
    """The tiny model exported with ``--fp16`` (float16 weights and activations)."""
    path = tmp_path_factory.mktemp("onnx_fp16") / "tiny_fp16.onnx"
    export_onnx(tiny_onnx[0], path, fp16=True)
    return path


def _assert_matches_reference(engine: Engine, reference: torch.Tensor, precision: str) -> None:
    """Scores within the precision's tolerance of ``reference`` and identical labels, returned
    on the engine's device; a crop alone gives what it gives in the batch; inputs on another
    device are refused."""
    scores = engine(_crops(3).to(engine.device))
    assert scores.device == engine.device and scores.dtype == torch.float32
    scores = scores.cpu()
    diff = (scores - reference).abs().max().item()
    assert diff < SCORE_TOLERANCE[precision], f"{engine.description}: max diff {diff:.2e}"
    assert torch.equal(scores.argmax(1), reference.argmax(1)), engine.description
    one = engine(_crops(3)[1:2].to(engine.device)).cpu()
    torch.testing.assert_close(one[0], scores[1], atol=1e-4, rtol=0)
    if engine.device.type == "cuda":
        with pytest.raises(ConfigError, match="float32 on cuda"):
            engine(_crops(1))


# ---- PyTorch ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "precision"),
    [_case("cpu", "fp32"), *(_case("cuda", p) for p in ("fp32", "fp16", "bf16"))],
)
def test_pytorch_engine_matches_cpu_fp32(tiny_onnx, ort_reference, device, precision) -> None:
    model = copy.deepcopy(tiny_onnx[0])  # the engine moves its model to the device
    engine = TorchEngine(model, device, precision)
    _assert_matches_reference(engine, ort_reference, precision)
    engine.close()


@pytest.mark.parametrize(("device", "precision"), [_case("cpu", "fp32"), _case("cuda", "fp16")])
def test_segmenter_on_a_frame_matches_cpu(tiny_onnx, device, precision) -> None:
    """A whole frame through sliding windows, stitching, resize and argmax on the device."""
    frame = np.random.default_rng(3).integers(0, 256, (70, 133, 3), dtype=np.uint8)
    onnx_cpu = OnnxRuntimeEngine(tiny_onnx[1], "cpu", "fp32")  # independent of the engine tested
    expected = Segmenter(onnx_cpu, batch_size=4).predict(frame, summarize=True)
    onnx_cpu.close()
    engine = TorchEngine(copy.deepcopy(tiny_onnx[0]), device, precision)
    result = Segmenter(engine, batch_size=4).predict(frame, summarize=True)
    assert result.labels.dtype == np.uint8 and result.labels.shape == (70, 133)
    assert np.mean(result.labels == expected.labels) >= 0.999
    np.testing.assert_allclose(result.confidence, expected.confidence, atol=2e-2)
    assert result.summary is not None and expected.summary is not None
    np.testing.assert_allclose(
        result.summary.class_fraction, expected.summary.class_fraction, atol=1e-3
    )
    engine.close()


# ---- ONNX Runtime -----------------------------------------------------------------------------


TENSORRT, ORT_CUDA = "TensorrtExecutionProvider", "CUDAExecutionProvider"


@pytest.mark.parametrize(
    ("device", "precision", "providers", "export"),
    [
        _case("cpu", "fp32", "cpu", "fp32"),
        _case("cuda", "fp32", "cuda", "fp32", provider=ORT_CUDA),
        _case("cuda", "fp16", "cuda", "fp16-export", provider=ORT_CUDA),
        _case("cuda", "fp32", "tensorrt,cuda", "fp32", provider=TENSORRT),
        _case("cuda", "fp16", "tensorrt,cuda", "fp32", provider=TENSORRT),
    ],
)
def test_onnxruntime_matches_pytorch_cpu(
    request, tiny_onnx, reference, tmp_path, device, precision, providers, export
) -> None:
    path = request.getfixturevalue("fp16_onnx") if export == "fp16-export" else tiny_onnx[1]
    options = OnnxRuntimeOptions(providers=providers, cache_dir=str(tmp_path / "trt"))
    engine = OnnxRuntimeEngine(path, device, precision, options)
    wanted = [p.strip() for p in providers.split(",")]
    assert engine.providers[0].lower().startswith(wanted[0]), engine.providers
    _assert_matches_reference(engine, reference, precision)
    if wanted[0] == "tensorrt":
        assert any((tmp_path / "trt").iterdir()), "no TensorRT engine cached"
    engine.close()


# ---- deformable attention -------------------------------------------------------------------


@pytest.mark.parametrize(("device", "precision"), [_case("cpu", "fp32"), _case("cuda", "fp32")])
def test_gather_deformable_attention_on_the_device(device, precision) -> None:
    """The export's gather formulation on the device equals grid_sample on the CPU."""
    value, locations, weights = _deformable_inputs(2, 9, 3, 4, 2, seed=0)
    expected = multi_scale_deformable_attn(value, SHAPES, locations, weights)
    on_device = [t.to(device) for t in (value, locations, weights)]
    out = multi_scale_deformable_attn_gather(on_device[0], SHAPES, *on_device[1:])
    assert out.device.type == device
    torch.testing.assert_close(out.cpu(), expected, atol=1e-5, rtol=0)
