"""ONNX export of a VLTSeg model: one self-describing ``.onnx`` file per network input size.

The graph maps ``images`` (N, 3, H, W) float32 -- RGB normalized with the config's mean / std,
one network input (a slide crop, or the whole resized frame) each -- to ``scores``
(N, C, H, W) float32, the raw Mask2Former semantic scores of :meth:`VLTSeg.forward`. H and W are
static; N is dynamic (1..:data:`MAX_DYNAMIC_BATCH`) unless a batch is fixed. The exporter is
PyTorch's dynamo exporter (the only one that keeps the batch dynamic through the attention
reshapes); deformable attention is switched to its gather-based sampling for the export, since
GridSample fails to export in some toolchains and TensorRT has computed it wrongly.

The file's ``metadata_props`` carry the model config (with the inference crop set to the
exported input size), classes, normalization and sizes, so :func:`read_onnx_info` rebuilds the
whole description without PyTorch weights. Weights over :data:`EXTERNAL_DATA_THRESHOLD` bytes
(protobuf cannot serialize 2 GB) go to ``<name>.onnx.data`` next to the model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import onnx_ir
import onnxscript.optimizer
import torch

from vltseg_ros.config.model_config import ModelConfig
from vltseg_ros.errors import CheckpointError, CheckpointNotFoundError, ConfigError, ExportError
from vltseg_ros.export.fp16 import convert_to_fp16
from vltseg_ros.export.onnx_header import read_metadata_props
from vltseg_ros.io.files import atomic_path, require_file
from vltseg_ros.model.deformable_attention import (
    MultiScaleDeformableAttention,
    Sampling,
    check_sampling,
    set_sampling,
)
from vltseg_ros.model.segmentor import VLTSeg

LOG = logging.getLogger(__name__)

FORMAT = "vltseg_ros.onnx.v1"
INPUT_NAME = "images"
OUTPUT_NAME = "scores"
MAX_DYNAMIC_BATCH = 256
"""Largest batch a dynamic-batch export accepts (the node's ``batch_size`` limit)."""
MIN_OPSET = 18
EXTERNAL_DATA_THRESHOLD = 1_800_000_000
"""Bytes of weights above which they are written to ``<out>.data`` (protobuf's limit: 2 GiB)."""
_FOLD_LIMIT = 1 << 23
"""Elements up to which input-independent tensors are folded into constants (e.g. position
embeddings resampled to the input grid: bicubic antialiased Resize, which TensorRT lacks)."""


@dataclass(frozen=True)
class OnnxModelInfo:
    """What an exported ``.onnx`` file holds, as stored in its metadata.

    Attributes:
        config: the full model config (classes, normalization, inference ...); its inference
            crop is ``input_size`` and ``whole_size`` is unset, so both modes feed ``input_size``.
        input_size: the static (H, W) network input (the slide crop, or the whole size).
        batch: the fixed batch, or None when the batch is dynamic (1..MAX_DYNAMIC_BATCH).
        patch_size: (H, W) pixels per encoder patch.
        source: the checkpoint the weights came from ("" = random weights).
        fp16: weights and compute in float16 (inputs and outputs stay float32).
    """

    config: ModelConfig
    input_size: tuple[int, int]
    batch: int | None
    patch_size: tuple[int, int]
    source: str
    fp16: bool


def export_onnx(
    model: VLTSeg,
    out: Path,
    *,
    input_size: tuple[int, int] | None = None,
    batch: int | None = None,
    fp16: bool = False,
    source: str = "",
    opset: int = MIN_OPSET,
    sampling: Sampling = "gather",
) -> OnnxModelInfo:
    """Export ``model`` to ``out`` and check the file with ``onnx.checker``.

    Args:
        model: a float32 model (on any device); it is exported in eval mode and its mode and
            deformable-attention sampling are restored afterwards.
        out: the ``.onnx`` file to write (parent folders are created; weights over
            :data:`EXTERNAL_DATA_THRESHOLD` bytes go to ``<out>.data`` beside it).
        input_size: static (H, W) network input; default the config's
            ``inference.input_size`` (the slide crop, or the whole size in whole mode).
        batch: a fixed batch N, or None for a dynamic batch (1..MAX_DYNAMIC_BATCH).
        fp16: float16 weights and compute, float32 input and output (see ``fp16.py``).
        source: the checkpoint the weights came from, stored in the metadata.
        opset: ONNX opset, at least 18.
        sampling: deformable-attention sampling core used in the graph (``gather``: no
            GridSample, exact in TensorRT).

    Returns:
        The description stored in the file (equal to :func:`read_onnx_info` of ``out``).

    Raises:
        ConfigError: input size below two patches, batch or opset out of range, unknown
            sampling, or a model that is not float32.
        ExportError: PyTorch could not export the model, or ``out`` cannot be written.
    """
    out = Path(out)
    input_size = _check_arguments(model, input_size, batch, opset)
    check_sampling(sampling)
    _prepare_output(out)
    config = exported_config(model.config, input_size)
    info = OnnxModelInfo(
        config, input_size, batch, tuple(model.encoder.patch_size), source, bool(fp16)
    )
    started = time.perf_counter()
    with _export_mode(model, sampling):
        proto = _to_onnx(model, input_size, batch, opset)
    if fp16:
        proto = convert_to_fp16(proto)
    _set_metadata(proto, info)
    external = _save(proto, out)
    size = out.stat().st_size + (external.stat().st_size if external else 0)
    LOG.info(
        "exported %s (%s, input %dx%d, batch %s, %s sampling) to %s%s: %.1f MiB in %.1f s",
        config.name,
        "fp16" if fp16 else "fp32",
        *input_size,
        batch or f"dynamic 1-{MAX_DYNAMIC_BATCH}",
        sampling,
        out,
        f" + {external.name}" if external else "",
        size / 2**20,
        time.perf_counter() - started,
    )
    return info


def read_onnx_info(path: Path) -> OnnxModelInfo:
    """The description :func:`export_onnx` stored in an ``.onnx`` file's metadata.

    Only the file's top-level fields are read (:func:`read_metadata_props`): not the graph
    and its weights, nor external weight files.

    Raises:
        CheckpointNotFoundError: ``path`` does not exist.
        CheckpointError: not an ONNX file (checked from its size and first bytes), no
            vltseg_ros metadata, or invalid metadata.
    """
    path = require_file(path, "ONNX model", CheckpointError, CheckpointNotFoundError)
    try:
        meta = read_metadata_props(path)
    except OSError as exc:
        raise CheckpointError(f"cannot read {str(path)!r} as an ONNX model: {exc}") from exc
    if meta.get("vltseg_ros.format") != FORMAT:
        raise CheckpointError(
            f"{str(path)!r} carries no vltseg_ros metadata (format "
            f"{meta.get('vltseg_ros.format', 'none')!r}, expected {FORMAT!r}); export the "
            "model with `vltseg export`"
        )
    try:
        batch = meta["batch"]
        return OnnxModelInfo(
            config=ModelConfig.from_dict(json.loads(meta["vltseg_ros.model_config"])),
            input_size=_pair(json.loads(meta["input_size"])),
            batch=None if batch == "dynamic" else int(batch),
            patch_size=_pair(json.loads(meta["patch_size"])),
            source=meta["source"],
            fp16=json.loads(meta["fp16"]) is True,
        )
    except (KeyError, ValueError, TypeError) as exc:  # ConfigError is a ValueError
        raise CheckpointError(f"{str(path)!r} has invalid vltseg_ros metadata: {exc}") from exc


def exported_config(config: ModelConfig, input_size: tuple[int, int]) -> ModelConfig:
    """``config`` with its inference crop set to the exported ``input_size``.

    ``whole_size`` is unset, so slide and whole mode both feed ``input_size``. When the crop
    changes, the slide stride is scaled with it (same overlap ratio); test scale and mode stay.
    """
    inference = config.inference
    stride = inference.stride
    if tuple(input_size) != tuple(inference.crop_size):
        stride = tuple(
            max(1, round(s * n / c))
            for s, n, c in zip(inference.stride, input_size, inference.crop_size, strict=True)
        )
    inference = dataclasses.replace(
        inference, crop_size=tuple(input_size), stride=stride, whole_size=None
    )
    return config.replace(inference=inference)


def metadata(info: OnnxModelInfo) -> dict[str, str]:
    """The ``metadata_props`` of an export (all values strings; JSON where structured)."""
    config = info.config.to_dict()
    return {
        "vltseg_ros.format": FORMAT,
        "vltseg_ros.model_config": json.dumps(config),
        "model_name": info.config.name,
        "classes": json.dumps(list(info.config.class_set.names)),
        "normalization": json.dumps(config["normalization"]),
        "input_size": json.dumps(list(info.input_size)),
        "patch_size": json.dumps(list(info.patch_size)),
        "batch": "dynamic" if info.batch is None else str(info.batch),
        "source": info.source,
        "fp16": json.dumps(info.fp16),
    }


def _check_arguments(
    model: VLTSeg, input_size: tuple[int, int] | None, batch: int | None, opset: int
) -> tuple[int, int]:
    """Validate the export options; returns the input size to export."""
    if input_size is None:
        input_size = model.config.inference.input_size
    if len(input_size) != 2:
        raise ConfigError(f"input_size must be (H, W), got {input_size!r}")
    input_size = (int(input_size[0]), int(input_size[1]))
    min_h, min_w = model.min_input_size
    if input_size[0] < min_h or input_size[1] < min_w:
        raise ConfigError(
            f"network input {input_size[0]}x{input_size[1]} is smaller than model "
            f"{model.config.name!r} allows: at least {min_h}x{min_w} (two {min_h // 2}x"
            f"{min_w // 2} patches); choose a larger crop"
        )
    if batch is not None and not 1 <= batch <= MAX_DYNAMIC_BATCH:
        raise ConfigError(
            f"batch must be 1-{MAX_DYNAMIC_BATCH} (or None for a dynamic batch), got {batch}"
        )
    if not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise ConfigError(
            f"opset must be {MIN_OPSET}-{onnx.defs.onnx_opset_version()} (the dynamo "
            f"exporter needs at least {MIN_OPSET}), got {opset}"
        )
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if dtypes != {torch.float32}:
        raise ConfigError(
            f"export needs a float32 model, got {sorted(map(str, dtypes))}; export the "
            "float32 model with fp16=True (--fp16) for a float16 graph"
        )
    return input_size


def _prepare_output(out: Path) -> None:
    """Fail early (before minutes of export) when ``out`` cannot be written."""
    if out.is_dir():
        raise ExportError(f"output {str(out)!r} is a directory; give a file name like model.onnx")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        existed = out.exists()
        with out.open("ab"):
            pass
        if not existed:
            out.unlink()
    except OSError as exc:
        raise ExportError(f"cannot write the ONNX model to {str(out)!r}: {exc}") from exc


@contextlib.contextmanager
def _export_mode(model: VLTSeg, sampling: Sampling) -> Iterator[None]:
    """Eval mode and ``sampling`` in every deformable attention; both restored afterwards."""
    attentions = [m for m in model.modules() if isinstance(m, MultiScaleDeformableAttention)]
    modes = [m.sampling for m in attentions]
    training = model.training
    set_sampling(model, sampling)
    model.eval()
    try:
        yield
    finally:
        for module, mode in zip(attentions, modes, strict=True):
            module.sampling = mode
        model.train(training)


def _to_onnx(
    model: VLTSeg, input_size: tuple[int, int], batch: int | None, opset: int
) -> onnx.ModelProto:
    """torch.export -> ONNX (dynamo) -> constant folding and graph cleanup (onnxscript)."""
    device = next(model.parameters()).device
    example = torch.randn(batch or 2, 3, *input_size, device=device)  # 2: no 0/1 specializing
    dynamic = None
    if batch is None:
        dim = torch.export.Dim("batch", min=1, max=MAX_DYNAMIC_BATCH)
        dynamic = {INPUT_NAME: {0: dim}}
    what = f"{model.config.name} at {input_size[0]}x{input_size[1]}"
    try:
        exported = torch.export.export(model, (example,), dynamic_shapes=dynamic, strict=False)
        program = torch.onnx.export(
            exported,
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            optimize=False,
            verbose=False,
        )
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ExportError(f"PyTorch could not export {what}: {_first_line(exc)}") from exc
    with _quiet("onnxscript", "onnx_ir"):  # per-node notes such as "skipping folding Split"
        optimized = onnxscript.optimizer.optimize(
            program.model, input_size_limit=_FOLD_LIMIT, output_size_limit=_FOLD_LIMIT
        )
    proto = onnx_ir.serde.serialize_model(optimized)
    for node in proto.graph.node:  # keep the module path; drop stack traces (local paths)
        kept = [(p.key, p.value) for p in node.metadata_props if p.key == "namespace"]
        del node.metadata_props[:]
        for key, value in kept:
            node.metadata_props.add(key=key, value=value)
    proto.producer_name = "vltseg_ros"
    proto.doc_string = f"VLTSeg {what}: images (N, 3, H, W) -> scores (N, C, H, W)"
    return proto


@contextlib.contextmanager
def _quiet(*loggers: str) -> Iterator[None]:
    """Only errors from these libraries' loggers while the block runs."""
    saved = {name: logging.getLogger(name).level for name in loggers}
    for name in loggers:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _set_metadata(proto: onnx.ModelProto, info: OnnxModelInfo) -> None:
    del proto.metadata_props[:]
    for key, value in metadata(info).items():
        proto.metadata_props.add(key=key, value=value)


def _save(proto: onnx.ModelProto, out: Path) -> Path | None:
    """Write ``proto`` and check the file with ``onnx.checker``, all or nothing (the model and
    its external data are written beside ``out`` and renamed into place once checked);
    returns the external data file when the weights needed one."""
    data = out.with_name(out.name + ".data")
    weights = sum(len(t.raw_data) for t in proto.graph.initializer)
    external = weights > EXTERNAL_DATA_THRESHOLD
    try:
        with atomic_path(out) as staged:  # its .data beside it moves with it
            onnx.save_model(
                proto,
                str(staged),
                save_as_external_data=external,
                all_tensors_to_one_file=True,
                location=data.name,
                size_threshold=1024,
            )
            _check(staged, out)
        if not external:
            data.unlink(missing_ok=True)  # never leave a stale weight file beside it
    except (OSError, ValueError) as exc:
        raise ExportError(f"cannot write the ONNX model to {str(out)!r}: {_os_text(exc)}") from exc
    if external:
        LOG.info(
            "weights (%.1f GiB) written to %s: keep it next to %s", weights / 2**30, data, out
        )
        return data
    return None


def _check(path: Path, shown: Path) -> None:
    try:
        onnx.checker.check_model(str(path))  # path based: works with external data
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the exported {shown} fails onnx.checker: {exc}") from exc


def _os_text(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def _pair(value: Any) -> tuple[int, int]:
    if not isinstance(value, list) or len(value) != 2:
        raise ValueError(f"expected [H, W], got {value!r}")
    return int(value[0]), int(value[1])


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
