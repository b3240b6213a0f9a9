"""The engines: PyTorch equals the model, ONNX Runtime equals PyTorch (raw scores and through
``Segmenter``), static input size and batch, backend selection and bad inputs.

The ONNX model is the tiny random-weight model exported once per session (``tiny_onnx``);
a second export has a static batch of 2 and a 48x64 input. CPU only: CUDA / TensorRT runs are
not covered here (their provider options are, in test_providers.py).
"""

from __future__ import annotations

import dataclasses
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from vltseg_ros.engines import (
    OnnxRuntimeEngine,
    OnnxRuntimeOptions,
    TorchEngine,
    TorchOptions,
    create_engine,
    resolve_backend,
)
from vltseg_ros.errors import (
    CheckpointError,
    CheckpointNotFoundError,
    ConfigError,
    DeviceError,
    EngineError,
)
from vltseg_ros.export.onnx_export import MAX_DYNAMIC_BATCH, export_onnx
from vltseg_ros.inference.predictor import Segmenter

TOL = 1e-4


@pytest.fixture(scope="module")
def static_onnx(tiny_onnx, tmp_path_factory) -> Path:
    """The same model with a static batch of 2 and a 48x64 input."""
    path = tmp_path_factory.mktemp("onnx_static") / "tiny_b2_48x64.onnx"
    export_onnx(tiny_onnx[0], path, input_size=(48, 64), batch=2)
    return path


def _inputs(count: int, size: tuple[int, int] = (64, 64), seed: int = 0) -> torch.Tensor:
    return torch.randn(count, 3, *size, generator=torch.Generator().manual_seed(seed))


def _frames() -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, size, dtype=np.uint8) for size in ((70, 133, 3), (64, 64, 3))]


def _assert_same_results(expected, actual) -> None:
    for want, got in zip(expected, actual, strict=True):
        np.testing.assert_allclose(got.scores, want.scores, atol=TOL)
        assert np.mean(got.labels == want.labels) >= 0.999


# ---- PyTorch ----------------------------------------------------------------------------------


def test_torch_engine_fp32_is_the_model(tiny_onnx) -> None:
    model = tiny_onnx[0]
    engine = TorchEngine(model)
    x = _inputs(3)
    with torch.no_grad():
        expected = model(x)
    scores = engine(x)
    assert scores.dtype == torch.float32 and scores.shape == (3, 19, 64, 64)
    torch.testing.assert_close(scores, expected, rtol=0, atol=0)
    assert (engine.name, engine.patch_size, engine.input_size, engine.batch_size) == (
        "pytorch",
        (8, 8),
        None,
        None,
    )
    assert engine.description.startswith(f"pytorch {torch.__version__} on cpu, fp32")
    channels_last = TorchEngine(model, options=TorchOptions(channels_last=True))
    torch.testing.assert_close(channels_last(x), expected, rtol=0, atol=1e-5)
    assert "channels-last" in channels_last.description
    model.to(memory_format=torch.contiguous_format)


@pytest.fixture
def counted_compile(monkeypatch):
    """torch.compile with a backend that counts the graphs compiled and runs them eagerly."""
    from torch._dynamo.testing import CompileCounter

    counter, real_compile = CompileCounter(), torch.compile
    monkeypatch.setattr(
        torch, "compile", lambda model, **kw: real_compile(model, **kw, backend=counter)
    )
    torch._dynamo.reset()
    yield counter
    torch._dynamo.reset()


def test_compiled_engine_pads_every_call_to_one_batch_shape(tiny_onnx, counted_compile) -> None:
    model = tiny_onnx[0]
    engine = TorchEngine(model, options=TorchOptions(compile=True), batch_size=4)
    assert engine.batch_size == 4 and engine.description.endswith(
        "torch.compile (batches padded to 4)"
    )
    x = _inputs(9)
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(engine(x[:4]), expected[:4], rtol=0, atol=1e-5)
    compiled = counted_compile.frame_count
    assert compiled >= 1
    for batch in (x[:3], x[:1]):  # smaller batches: padded to 4
        torch.testing.assert_close(engine(batch), expected[: len(batch)], rtol=0, atol=1e-5)
    with pytest.raises(ConfigError, match=r"9 inputs in one call; .* at most batch_size 4"):
        engine(x)  # splitting is the Segmenter's job
    # As in the node: compiled by the warm-up in one thread, run by the worker in another.
    with ThreadPoolExecutor(1) as worker:
        scores = worker.submit(engine, x[:2]).result()
    torch.testing.assert_close(scores, expected[:2], rtol=0, atol=1e-5)
    assert counted_compile.frame_count == compiled  # no second compilation


@pytest.mark.skipif(
    not (shutil.which("cc") or shutil.which("gcc")),
    reason="torch.compile on the CPU needs a C compiler",
)
def test_compiled_segmenter_equals_eager(tiny_onnx) -> None:
    """The real torch.compile (inductor, C++ kernels): about 50 s on 2 cores, cold."""
    torch._dynamo.reset()
    engine = TorchEngine(tiny_onnx[0], options=TorchOptions(compile=True), batch_size=3)
    compiled = Segmenter(engine, batch_size=3)
    eager = Segmenter(TorchEngine(tiny_onnx[0]), batch_size=3)
    frames = _frames()  # 6 + 1 crops: batches of 3, 3 and 1 (padded)
    _assert_same_results(
        eager.predict_batch(frames, return_scores=True),
        compiled.predict_batch(frames, return_scores=True),
    )
    torch._dynamo.reset()


def test_segmenter_load_gives_the_engine_its_batch_size() -> None:
    segmenter = Segmenter.load("tiny", batch_size=3)
    assert segmenter.engine.batch_size == 3 == segmenter.batch_size
    with pytest.raises(ConfigError, match="batch_size must be >= 1"):
        TorchEngine(segmenter.engine.model, batch_size=0)
    with pytest.raises(ConfigError, match="batch_size 4 exceeds the pytorch engine's 3"):
        Segmenter(segmenter.engine, batch_size=4)


def test_engine_inputs_are_checked_and_close_is_final(tiny_onnx) -> None:
    engine = TorchEngine(tiny_onnx[0])
    with pytest.raises(ConfigError, match=r"\(N, 3, h, w\)"):
        engine(torch.zeros(3, 64, 64))
    with pytest.raises(ConfigError, match="float32"):
        engine(torch.zeros(1, 3, 64, 64, dtype=torch.float64))
    engine.close()
    engine.close()  # idempotent
    with pytest.raises(EngineError, match="closed"):
        engine(_inputs(1))


# ---- ONNX Runtime -----------------------------------------------------------------------------


def test_onnxruntime_engine_equals_pytorch(tiny_onnx) -> None:
    model, path = tiny_onnx
    engine = OnnxRuntimeEngine(path, options=OnnxRuntimeOptions(threads=2))
    assert engine.config == model.config  # from the file's metadata, no torch model built
    assert (engine.name, engine.patch_size, engine.input_size) == ("onnxruntime", (8, 8), (64, 64))
    assert engine.batch_size == MAX_DYNAMIC_BATCH and engine.providers == ["CPUExecutionProvider"]
    assert "providers cpu" in engine.description and "2 threads" in engine.description
    options = engine._session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    x = _inputs(5)
    scores = engine(x)
    assert scores.dtype == torch.float32 and scores.shape == (5, 19, 64, 64)
    torch.testing.assert_close(scores, TorchEngine(model)(x), rtol=0, atol=TOL)
    with pytest.raises(ConfigError, match="static input size 64x64"):
        engine(_inputs(1, (64, 128)))
    engine.close()
    with pytest.raises(EngineError, match="closed"):
        engine(x)


@pytest.mark.parametrize("mode", ["slide", "whole"])
def test_segmenter_on_onnxruntime_equals_pytorch(tiny_onnx, mode) -> None:
    model, path = tiny_onnx
    onnx_segmenter = Segmenter.load(checkpoint=path, batch_size=3)
    assert onnx_segmenter.backend == "onnxruntime" and not onnx_segmenter.random_weights
    inference = dataclasses.replace(onnx_segmenter.inference, mode=mode)
    onnx_segmenter.inference = inference
    torch_segmenter = Segmenter(TorchEngine(model), inference=inference, batch_size=3)
    frames = _frames()
    expected = torch_segmenter.predict_batch(frames, return_scores=True)
    _assert_same_results(expected, onnx_segmenter.predict_batch(frames, return_scores=True))
    single = onnx_segmenter.predict(frames[0], return_scores=True)
    _assert_same_results(expected[:1], [single])


def test_static_input_size_is_the_default_crop_and_enforced(tiny_onnx, static_onnx) -> None:
    segmenter = Segmenter.load(checkpoint=static_onnx)
    config = tiny_onnx[0].config.inference  # 64x64 crop, stride 48
    assert segmenter.inference == dataclasses.replace(config, crop_size=(48, 64), stride=(36, 48))
    whole = dataclasses.replace(segmenter.inference, mode="whole")
    segmenter.inference = whole  # whole_size unset: the crop, which fits
    for bad in (
        dataclasses.replace(whole, whole_size=(64, 64)),
        dataclasses.replace(config, mode="slide"),
    ):
        with pytest.raises(ConfigError, match="static input 48x64"):
            segmenter.inference = bad
    frames = _frames()
    torch_segmenter = Segmenter(TorchEngine(tiny_onnx[0]), inference=whole)
    _assert_same_results(
        torch_segmenter.predict_batch(frames, return_scores=True),
        segmenter.predict_batch(frames, return_scores=True),
    )


class _Recorder:
    """Wraps an ONNX Runtime session and records the batch of every run."""

    def __init__(self, session) -> None:
        self.session, self.batches = session, []

    def run(self, names, feeds):
        self.batches.append(len(feeds["images"]))
        return self.session.run(names, feeds)


def test_static_batch_pads_and_the_segmenter_splits(tiny_onnx, static_onnx) -> None:
    engine = OnnxRuntimeEngine(static_onnx, batch_size=8)
    assert engine.batch_size == 2  # the static batch caps it
    recorder = engine._session = _Recorder(engine._session)
    x = _inputs(2, (48, 64))
    torch.testing.assert_close(engine(x[:1]), TorchEngine(tiny_onnx[0])(x[:1]), rtol=0, atol=TOL)
    assert recorder.batches == [2]  # 1 padded to 2
    with pytest.raises(ConfigError, match="at most batch_size 2"):
        engine(_inputs(3, (48, 64)))
    with pytest.raises(ConfigError, match="batch_size 4 exceeds the onnxruntime engine's 2"):
        Segmenter(engine, batch_size=4)
    segmenter = Segmenter(engine)  # the engine's batch size
    recorder.batches.clear()
    segmenter.predict_batch(_frames())
    assert segmenter.batch_size == 2 and set(recorder.batches) == {2}
    loaded = Segmenter.load(checkpoint=static_onnx, batch_size=4)
    assert loaded.batch_size == 2  # lowered to the model's static batch


def test_the_segmenter_is_the_one_layer_that_splits(tiny_onnx) -> None:
    engine = OnnxRuntimeEngine(tiny_onnx[1], batch_size=2)
    recorder = engine._session = _Recorder(engine._session)
    segmenter = Segmenter(engine)
    frames = _frames()  # 6 + 1 crops
    reference = Segmenter(TorchEngine(tiny_onnx[0]), batch_size=7)
    expected = reference.predict_batch(frames, return_scores=True)
    _assert_same_results(expected, segmenter.predict_batch(frames, return_scores=True))
    assert recorder.batches == [2, 2, 2, 1]


# ---- backend selection and bad input ----------------------------------------------------------


def test_backend_follows_the_checkpoint_and_mismatches_are_errors() -> None:
    assert resolve_backend(None, "m.onnx") == "onnxruntime"
    assert resolve_backend(None, "m.safetensors") == resolve_backend(None, None) == "pytorch"
    assert resolve_backend("onnxruntime", Path("m.ONNX")) == "onnxruntime"
    with pytest.raises(ConfigError, match="unknown backend 'tensorrt'"):
        resolve_backend("tensorrt", "m.onnx")
    with pytest.raises(ConfigError, match="is an ONNX model: run it with the onnxruntime"):
        resolve_backend("pytorch", "m.onnx")
    with pytest.raises(ConfigError, match=r"runs an exported \.onnx file"):
        resolve_backend("onnxruntime", "m.safetensors")
    with pytest.raises(ConfigError, match="no checkpoint"):
        Segmenter.load("tiny", backend="onnxruntime")


def test_factory_refuses_options_of_the_other_backend(tiny_onnx) -> None:
    model, path = tiny_onnx
    assert isinstance(create_engine(model=model), TorchEngine)
    with pytest.raises(ConfigError, match="carries its architecture"):
        create_engine("onnxruntime", model="tiny", checkpoint=path)
    with pytest.raises(ConfigError, match="OnnxRuntimeOptions do not apply to the pytorch"):
        create_engine(model=model, options=OnnxRuntimeOptions(threads=2))
    with pytest.raises(ConfigError, match="TorchOptions do not apply to the onnxruntime"):
        create_engine(checkpoint=path, options=TorchOptions(compile=True))
    with pytest.raises(ConfigError, match="not both"):
        create_engine(model=model, checkpoint="w.safetensors")


def test_bad_onnx_files(tmp_path, no_metadata_onnx) -> None:
    with pytest.raises(CheckpointNotFoundError, match="does not exist"):
        Segmenter.load(checkpoint=tmp_path / "missing.onnx")
    with pytest.raises(CheckpointError):
        OnnxRuntimeEngine(no_metadata_onnx)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf at all")
    with pytest.raises(CheckpointError):
        OnnxRuntimeEngine(garbage)


def test_onnxruntime_precisions_on_the_cpu(tiny_onnx) -> None:
    with pytest.raises(ConfigError, match="no bf16"):
        OnnxRuntimeEngine(tiny_onnx[1], precision="bf16")
    with pytest.raises(DeviceError, match="fp32 on the CPU"):
        OnnxRuntimeEngine(tiny_onnx[1], precision="fp16")
