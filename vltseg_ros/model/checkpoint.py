"""Checkpoints: the project's safetensors format, safe ``.pt`` loading, open_clip encoder weights.

The project's format is a safetensors file whose metadata carries the full model config (so a
checkpoint rebuilds its own model), class names, normalization, crop size, training domain and
source. ``.pt`` / ``.pth`` files are read only with ``torch.load(weights_only=True)``: a pickle
that would construct arbitrary Python objects (and could run code) is refused, never executed.

:func:`load_model` checks before it builds: the declared architecture (bounded,
:data:`~vltseg_ros.config.model_config.MAX_PARAMETERS`) is built on the ``meta`` device and its
tensor names and shapes are compared with the file's (for safetensors, from the header, before
any tensor is read); then the tensors must be finite floating-point weights
(:mod:`vltseg_ros.model.state_checks`). Only then is the real model allocated.
"""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import Tensor

from vltseg_ros.config.model_config import Calibration, ModelConfig
from vltseg_ros.errors import CheckpointError, CheckpointNotFoundError, ConfigError
from vltseg_ros.io.files import atomic_path, require_file, require_torch_file
from vltseg_ros.model.segmentor import VLTSeg, expected_layout
from vltseg_ros.model.state_checks import check_layout, check_values

LOG = logging.getLogger(__name__)

FORMAT = "vltseg_ros.checkpoint.v1"
_PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
_WRAPPER_KEYS = ("state_dict", "model", "module")
_STANDARD_METADATA = (  # what save_checkpoint writes itself
    "format",
    "model_config",
    "model_name",
    "classes",
    "normalization",
    "crop_size",
    "training_domain",
    "source",
)


def save_checkpoint(
    model: VLTSeg,
    path: str | Path,
    *,
    training_domain: str | None = None,
    source: str | None = None,
    extra_metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write ``model``'s weights and self-describing metadata to a ``.safetensors`` file.

    Returns the written path. Metadata values are strings; ``model_config`` is the JSON of
    :meth:`ModelConfig.to_dict` (with ``training_domain`` filled in when given). The file is
    complete or absent (:func:`vltseg_ros.io.files.atomic_path`).

    Raises:
        CheckpointError: it cannot be written (a full disk), naming ``path``.
    """
    path = Path(path)
    config = model.config
    if training_domain is not None:
        config = config.replace(training_domain=training_domain)
    metadata = {
        "format": FORMAT,
        "model_config": json.dumps(config.to_dict()),
        "model_name": config.name,
        "classes": json.dumps(list(config.class_set.names)),
        "normalization": json.dumps(config.to_dict()["normalization"]),
        "crop_size": json.dumps(list(config.inference.crop_size)),
        "training_domain": config.training_domain or "",
        "source": source or "",
        **dict(extra_metadata or {}),
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as staged:  # all or nothing, also when interrupted
        try:
            save_file(tensors, str(staged), metadata=metadata)
        except SafetensorError as exc:  # e.g. "I/O error: No space left on device"
            raise CheckpointError(f"cannot write checkpoint {str(path)!r}: {exc}") from None
    return path


def read_checkpoint(path: str | Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Read tensors and metadata from a safetensors or a weights-only ``.pt``/``.pth`` file.

    A ``.pt`` file may hold a plain state dict or one wrapped under ``state_dict`` / ``model``;
    a ``module.`` prefix (DistributedDataParallel) is removed. Its metadata is empty.

    Raises:
        CheckpointNotFoundError: the path does not exist.
        CheckpointError: a folder, empty, not a checkpoint (another kind of file), truncated,
            corrupt, unsafe (code-running pickle) or holding no tensors.
    """
    path = require_file(path, "checkpoint", CheckpointError, CheckpointNotFoundError)
    if path.suffix == ".safetensors":
        _, metadata = read_safetensors_layout(path)
        try:
            return load_file(str(path)), metadata
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"cannot read safetensors file {str(path)!r}: {exc}") from exc
    if path.suffix not in _PICKLE_SUFFIXES:
        raise CheckpointError(
            f"unsupported checkpoint type {path.suffix!r} for {str(path)!r}; expected "
            f".safetensors or one of {', '.join(_PICKLE_SUFFIXES)}"
        )
    return _state_dict_from(_torch_load_weights_only(path), path), {}


def read_safetensors_layout(path: str | Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Name -> shape of every tensor of a ``.safetensors`` file, and its metadata, from the
    file's header alone (no tensor is read).

    Raises:
        CheckpointNotFoundError / CheckpointError: as :func:`read_checkpoint`.
    """
    path = require_file(path, "checkpoint", CheckpointError, CheckpointNotFoundError)
    try:
        with safe_open(str(path), framework="pt") as handle:
            names = handle.keys()
            shapes = {k: tuple(handle.get_slice(k).get_shape()) for k in names}
            return shapes, dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read safetensors file {str(path)!r}: {exc}") from exc


def load_model(
    path: str | Path, config: ModelConfig | None = None, map_location: str = "cpu"
) -> VLTSeg:
    """Build the model a checkpoint describes and load its weights strictly.

    Args:
        path: a project ``.safetensors`` checkpoint (carries its config) or a ``.pt`` state dict
            of this project's model (then ``config`` is required).
        config: overrides the embedded config (e.g. other inference settings); its architecture
            must match the weights.
        map_location: device the weights are loaded to.

    Raises:
        CheckpointError: missing or invalid config, an architecture over the bound, tensor
            names / shapes that do not match it, or tensors that are not finite floating-point
            weights; all raised before the model is built.
    """
    state_dict: dict[str, Tensor] | None = None
    if Path(path).suffix == ".safetensors":
        shapes, metadata = read_safetensors_layout(path)  # the header: no tensor read yet
    else:
        state_dict, metadata = read_checkpoint(path)
        shapes = {k: tuple(v.shape) for k, v in state_dict.items()}
    if any(k.startswith(("backbone.", "decode_head.")) for k in shapes):
        raise CheckpointError(
            f"{str(path)!r} has MMSegmentation key names (backbone.*, decode_head.*): convert "
            "it first with `vltseg convert-checkpoint IN.pth OUT.safetensors`"
        )
    if config is None:
        config = config_from_metadata(metadata, path)
    if any(k.startswith("visual.") for k in shapes) and not any(
        k.startswith("head.") for k in shapes
    ):
        raise CheckpointError(
            f"{str(path)!r} looks like an open_clip CLIP checkpoint (image tower only, no "
            "segmentation head); it can initialize the encoder for training "
            "(model.init of `vltseg train`) but cannot segment"
        )
    try:
        expected = expected_layout(config)
    except ConfigError as exc:
        raise CheckpointError(f"{str(path)!r}: {exc}; nothing was built") from exc
    check_layout(expected, shapes, path, f"the model {config.name!r}")
    if state_dict is None:
        state_dict, _ = read_checkpoint(path)
    check_values(expected, state_dict, path)
    model = VLTSeg(config)
    model.load_state_dict(state_dict, strict=True)
    return model.to(map_location)


def save_with_calibration(
    source: str | Path,
    out: str | Path,
    calibration: Calibration,
    config: ModelConfig | None = None,
) -> Path:
    """Copy checkpoint ``source`` to the ``.safetensors`` file ``out`` with ``calibration`` in
    its model config; its other metadata (source, training domain, extras) is kept.

    Args:
        config: the architecture, for a ``.pt`` state dict (which carries none).

    Raises:
        CheckpointError: as :func:`load_model`.
    """
    _, metadata = read_checkpoint(source)
    model = load_model(source, config)
    model.config = model.config.replace(calibration=calibration)
    kept = {k: v for k, v in metadata.items() if k not in _STANDARD_METADATA}
    return save_checkpoint(
        model,
        out,
        training_domain=model.config.training_domain,
        source=metadata.get("source") or str(source),
        extra_metadata=kept,
    )


def config_from_metadata(metadata: Mapping[str, str], path: str | Path) -> ModelConfig:
    """The :class:`ModelConfig` stored in a checkpoint's metadata."""
    if metadata.get("format") != FORMAT or "model_config" not in metadata:
        raise CheckpointError(
            f"{str(path)!r} carries no vltseg_ros model config (format "
            f"{metadata.get('format', 'none')!r}); pass the architecture (--model NAME, or "
            "the node's model parameter)"
        )
    try:
        return ModelConfig.from_dict(json.loads(metadata["model_config"]))
    except (json.JSONDecodeError, ConfigError) as exc:
        raise CheckpointError(f"{str(path)!r} has an invalid model config: {exc}") from exc


def _torch_load_weights_only(path: Path) -> Any:
    require_torch_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refusing to load {str(path)!r}: it contains Python objects that a plain weights "
            f"file does not need and that could run code when unpickled ({_first_line(exc)}). "
            "Re-save it as a plain state dict or a .safetensors file; a VLTSeg reference "
            "(MMSegmentation) checkpoint converts with `vltseg convert-checkpoint`."
        ) from exc
    except Exception as exc:  # the weights-only unpickler raises anything on a damaged file
        raise CheckpointError(
            f"cannot read {str(path)!r}: truncated or corrupt PyTorch file "
            f"({type(exc).__name__}: {_first_line(exc)})"
        ) from exc


def _state_dict_from(obj: Any, path: Path) -> dict[str, Tensor]:
    while isinstance(obj, Mapping):
        wrapper = next((k for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if wrapper is None:
            break
        obj = obj[wrapper]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{str(path)!r} holds a {type(obj).__name__}, not a state dict")
    tensors = {str(k).removeprefix("module."): v for k, v in obj.items() if isinstance(v, Tensor)}
    if not tensors:
        raise CheckpointError(f"{str(path)!r} holds no tensors")
    return tensors


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
