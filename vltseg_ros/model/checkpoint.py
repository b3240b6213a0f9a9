"""Checkpoints: the project's safetensors format, safe ``.pt`` loading, open_clip encoder weights.

The project's format is a safetensors file whose metadata carries the full model config (so a
checkpoint rebuilds its own model), class names, normalization, crop size, training domain and
source. ``.pt`` / ``.pth`` files are read only with ``torch.load(weights_only=True)``: a pickle
that would construct arbitrary Python objects (and could run code) is refused, never executed.
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
from torch import Tensor, nn

from vltseg_ros.config.model_config import Calibration, ModelConfig
from vltseg_ros.errors import CheckpointError, CheckpointNotFoundError, ConfigError
from vltseg_ros.io.files import require_file, require_torch_file
from vltseg_ros.model.encoder import ClipEncoder
from vltseg_ros.model.segmentor import VLTSeg

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
    :meth:`ModelConfig.to_dict` (with ``training_domain`` filled in when given).
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
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)
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
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = dict(handle.metadata() or {})
            return load_file(str(path)), metadata
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"cannot read safetensors file {str(path)!r}: {exc}") from exc
    if path.suffix not in _PICKLE_SUFFIXES:
        raise CheckpointError(
            f"unsupported checkpoint type {path.suffix!r} for {str(path)!r}; expected "
            f".safetensors or one of {', '.join(_PICKLE_SUFFIXES)}"
        )
    return _state_dict_from(_torch_load_weights_only(path), path), {}


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
        CheckpointError: missing config, or keys / shapes that do not match the model.
    """
    state_dict, metadata = read_checkpoint(path)
    if any(k.startswith(("backbone.", "decode_head.")) for k in state_dict):
        raise CheckpointError(
            f"{str(path)!r} has MMSegmentation key names (backbone.*, decode_head.*): convert "
            "it first with `vltseg convert-checkpoint IN.pth OUT.safetensors`"
        )
    if config is None:
        config = config_from_metadata(metadata, path)
    if any(k.startswith("visual.") for k in state_dict) and not any(
        k.startswith("head.") for k in state_dict
    ):
        raise CheckpointError(
            f"{str(path)!r} looks like an open_clip CLIP checkpoint (image tower only, no "
            "segmentation head); it can initialize the encoder for training "
            "(vltseg_ros.model.checkpoint.load_open_clip_visual) but cannot segment"
        )
    model = VLTSeg(config)
    _load_strict(model, state_dict, path)
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


def load_open_clip_visual(encoder: ClipEncoder, path: str | Path) -> None:
    """Load the image tower (``visual.*``) of an open_clip CLIP / EVA-CLIP checkpoint strictly.

    The text tower and logit scale are ignored; every encoder weight must be present with the
    same shape, and no ``visual.*`` key may be left over.
    """
    state_dict, _ = read_checkpoint(path)
    visual = {k: v for k, v in state_dict.items() if k.startswith("visual.")}
    if not visual:
        raise CheckpointError(
            f"{str(path)!r} holds no 'visual.*' keys: not an open_clip checkpoint"
        )
    _load_strict(encoder, visual, path)


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


def _load_strict(module: nn.Module, state_dict: Mapping[str, Tensor], path: str | Path) -> None:
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    wrong = sorted(
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state_dict)
        if state_dict[k].shape != own[k].shape
    )
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{str(path)!r} does not match the model: {_summary('missing', missing)}"
            f"{_summary('unexpected', unexpected)}{_summary('wrong shape', wrong)}".rstrip("; ")
        )
    module.load_state_dict(state_dict, strict=True)


def _summary(label: str, items: list[str], limit: int = 8) -> str:
    if not items:
        return ""
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return f"{len(items)} {label} key(s): {', '.join(items[:limit])}{more}; "


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
