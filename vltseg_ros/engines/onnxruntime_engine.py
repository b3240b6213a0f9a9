"""The ONNX Runtime engine: an exported ``.onnx`` VLTSeg model on TensorRT, CUDA or the CPU.

The model file carries its configuration (``read_onnx_info``), so no PyTorch model is built.
Inputs on a GPU are bound to the session by address (IO binding: no copy through the host);
on the CPU they are passed as numpy views of the tensors.
"""

from __future__ import annotations

import gc
import logging
import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors
from torch import Tensor

from vltseg_ros.engines.base import Engine, Precision, pad_batch, resolve_device
from vltseg_ros.engines.options import OnnxRuntimeOptions
from vltseg_ros.engines.providers import (
    GPU_PROVIDERS,
    SHORT_NAMES,
    TENSORRT,
    NetworkShape,
    check_precision,
    select_providers,
)
from vltseg_ros.errors import CheckpointError, ConfigError, EngineError, EngineOutOfMemoryError
from vltseg_ros.export.onnx_export import (
    INPUT_NAME,
    MAX_DYNAMIC_BATCH,
    OUTPUT_NAME,
    read_onnx_info,
)

LOG = logging.getLogger(__name__)

_FLOAT = "tensor(float)"
# How ONNX Runtime's CUDA / TensorRT providers report exhausted GPU memory.
_OUT_OF_MEMORY = re.compile(r"out of memory|failed to allocate memory|CUDNN_STATUS_ALLOC", re.I)
_BAD_FILE = (ort_errors.InvalidProtobuf, ort_errors.InvalidGraph, ort_errors.NoSuchFile)


class OnnxRuntimeEngine(Engine):
    """Runs an ``.onnx`` file exported by ``vltseg_ros.export.onnx_export.export_onnx``.

    Args:
        path: the ``.onnx`` file (input ``images`` (N, 3, h, w), output ``scores``).
        device: ``cpu`` or ``cuda[:N]``.
        precision: ``fp32``, or ``fp16`` on CUDA (TensorRT fp16 kernels, or a model exported
            in fp16).
        options: ``providers`` in priority order (empty: every available one for the device,
            TensorRT first), the TensorRT engine / timing ``cache_dir`` (created; empty: no
            cache), CPU ``threads`` of one inference (``intra_op_num_threads``; 0: ONNX
            Runtime's default, all cores).
        batch_size: most inputs per call (None: the export's dynamic-batch limit). With
            TensorRT and a dynamic-batch model it sets the optimization profile (batches
            1..batch_size; None: TensorRT builds again for every new batch size). A
            static-batch model has its exported batch (a larger one is capped) and pads
            smaller inputs.

    Raises:
        CheckpointNotFoundError / CheckpointError: missing file, no vltseg metadata, not a
            VLTSeg graph, or a file ONNX Runtime cannot load.
        ConfigError / DeviceError: device, precision or providers unavailable or inconsistent.
        EngineError: ONNX Runtime failed to create the session, or a GPU provider could not
            be loaded.
    """

    name = "onnxruntime"

    def __init__(
        self,
        path: str | Path,
        device: str | torch.device = "cpu",
        precision: Precision = "fp32",
        options: OnnxRuntimeOptions | None = None,
        *,
        batch_size: int | None = None,
    ) -> None:
        options = options or OnnxRuntimeOptions()
        self.path = Path(path)
        info = read_onnx_info(self.path)
        self.config = info.config
        if precision == "bf16":
            raise ConfigError(
                "the onnxruntime backend has no bf16; use fp16 (TensorRT, or a model exported "
                "in fp16) or fp32"
            )
        self.precision = precision
        self.device = resolve_device(device, precision)
        self._patch_size = tuple(info.patch_size)
        self._input_size = tuple(info.input_size)
        self._static_batch = info.batch
        self._batch_size = min(batch_size or MAX_DYNAMIC_BATCH, info.batch or MAX_DYNAMIC_BATCH)
        self.cache_dir = options.cache_path
        self.threads = options.threads or None
        requested = options.provider_names
        providers = select_providers(
            self.device,
            precision,
            ort.get_available_providers(),
            NetworkShape(INPUT_NAME, self._input_size, info.batch, batch_size),
            requested=requested,
            fp16_model=info.fp16,
            cache_dir=self.cache_dir,
        )
        self._session: ort.InferenceSession | None = self._create_session(providers)
        self._check_session(providers, bool(requested), info.fp16)
        self._providers = self._session.get_providers()

    @property
    def patch_size(self) -> tuple[int, int]:
        """(H, W) of the encoder's patches (from the model's metadata)."""
        return self._patch_size

    @property
    def input_size(self) -> tuple[int, int]:
        """The static (h, w) the model was exported with."""
        return self._input_size

    @property
    def batch_size(self) -> int:
        """The static batch, else ``batch_size`` as given (at most the export's dynamic limit)."""
        return self._batch_size

    @property
    def providers(self) -> list[str]:
        """The session's execution providers in priority order."""
        return list(self._providers)

    @property
    def description(self) -> str:
        """E.g. ``onnxruntime 1.22.0 on cuda:0, fp16, providers tensorrt+cuda+cpu, ...``."""
        names = "+".join(SHORT_NAMES.get(p, p) for p in self.providers)
        h, w = self._input_size
        batch = f"batch {self._static_batch}" if self._static_batch else "dynamic batch"
        text = (
            f"onnxruntime {ort.__version__} on {self.device}, {self.precision}, providers "
            f"{names}; {self.path.name} ({h}x{w}, {batch})"
        )
        if TENSORRT in self.providers:
            text += f", TensorRT cache {self.cache_dir or 'off'}"
        if self.threads:
            text += f", {self.threads} threads"
        return text

    def __call__(self, inputs: Tensor) -> Tensor:
        """(N, 3, h, w) float32 normalized inputs -> (N, C, h, w) float32 raw scores."""
        session = self._require_session()
        self.check_inputs(inputs)
        count = len(inputs)
        if self._static_batch is not None:
            inputs = pad_batch(inputs, self._static_batch)
        return self._run(session, inputs.contiguous())[:count]

    def close(self) -> None:
        """Release the session (and the GPU memory of its arena and engines)."""
        if self._session is None:
            return
        self._session = None
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _run(self, session: ort.InferenceSession, chunk: Tensor) -> Tensor:
        try:
            return self._run_on_device(session, chunk)
        except (ort_errors.Fail, ort_errors.RuntimeException, ort_errors.EPFail) as exc:
            error = EngineOutOfMemoryError if _OUT_OF_MEMORY.search(str(exc)) else EngineError
            raise error(f"ONNX Runtime failed to run {self.path.name}: {exc}") from exc

    def _run_on_device(self, session: ort.InferenceSession, chunk: Tensor) -> Tensor:
        if self.device.type == "cpu":
            (scores,) = session.run([OUTPUT_NAME], {INPUT_NAME: chunk.numpy()})
            return torch.from_numpy(scores)
        n, _, h, w = chunk.shape
        scores = torch.empty(
            (n, self.config.class_set.num_classes, h, w), dtype=torch.float32, device=self.device
        )
        binding = session.io_binding()
        index = self.device.index or 0
        binding.bind_input(
            INPUT_NAME, "cuda", index, np.float32, tuple(chunk.shape), chunk.data_ptr()
        )
        binding.bind_output(
            OUTPUT_NAME, "cuda", index, np.float32, tuple(scores.shape), scores.data_ptr()
        )
        # ONNX Runtime runs on its own CUDA stream: the input must be complete before it
        # starts; run_with_iobinding returns after the provider has finished (synchronized).
        torch.cuda.current_stream(self.device).synchronize()
        session.run_with_iobinding(binding)
        return scores

    def _create_session(self, options: list[tuple[str, dict[str, str]]]) -> ort.InferenceSession:
        settings = ort.SessionOptions()
        if self.threads:
            settings.intra_op_num_threads = self.threads
        # Idle worker threads sleep instead of spinning: the same latency here, about 10 % less
        # CPU time, left to the node's other threads and the robot's other processes.
        settings.add_session_config_entry("session.intra_op.allow_spinning", "0")
        names = [name for name, _ in options]
        if TENSORRT in names:
            if self.cache_dir is not None:
                self.cache_dir.mkdir(parents=True, exist_ok=True)
            LOG.warning(
                "ONNX Runtime TensorRT: building the engine for %s; the first build takes "
                "minutes (%s)",
                self.path.name,
                f"cached in {self.cache_dir}: later starts reuse it"
                if self.cache_dir
                else "no cache dir: every start builds again; set onnxruntime.cache_dir / "
                "--onnxruntime.cache-dir",
            )
        try:
            return ort.InferenceSession(
                str(self.path),
                settings,
                providers=names,
                provider_options=[opts for _, opts in options],
            )
        except _BAD_FILE as exc:
            raise CheckpointError(f"ONNX Runtime cannot load {str(self.path)!r}: {exc}") from exc
        except Exception as exc:  # ONNX Runtime's other errors (Fail, EPFail, ...)
            raise EngineError(
                f"ONNX Runtime could not create a session for {str(self.path)!r} with "
                f"providers {names}: {exc}"
            ) from exc

    def _check_session(
        self, options: list[tuple[str, dict[str, str]]], explicit: bool, fp16_model: bool
    ) -> None:
        session = self._require_session()
        active = session.get_providers()
        lost = [name for name, _ in options if name not in active]
        no_gpu = self.device.type == "cuda" and set(active).isdisjoint(GPU_PROVIDERS)
        if lost and (explicit or no_gpu):
            raise EngineError(
                f"ONNX Runtime could not load the execution provider(s) {lost} (CUDA, cuDNN or "
                "TensorRT libraries missing? see its log above); refusing to run without them"
            )
        if lost:
            LOG.warning("ONNX Runtime could not load %s; running with %s", lost, active)
            check_precision(self.precision, active, fp16_model)
        inputs, outputs = session.get_inputs(), session.get_outputs()
        found = ([(i.name, i.type) for i in inputs], [(o.name, o.type) for o in outputs])
        if found != ([(INPUT_NAME, _FLOAT)], [(OUTPUT_NAME, _FLOAT)]):
            raise CheckpointError(
                f"{str(self.path)!r} is not a VLTSeg export: it needs one float32 input "
                f"{INPUT_NAME!r} and one float32 output {OUTPUT_NAME!r}, it has {found}"
            )

    def _require_session(self) -> ort.InferenceSession:
        if self._session is None:
            raise EngineError(f"the onnxruntime engine for {self.path.name} is closed")
        return self._session
