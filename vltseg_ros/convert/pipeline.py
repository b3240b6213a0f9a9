"""Convert a VLTSeg reference checkpoint file into this project's safetensors checkpoint.

Reads the MMSegmentation ``.pth`` safely (:mod:`vltseg_ros.convert.safe_load`), picks the model
config (given, or inferred from the position-embedding grid), renames the weights
(:mod:`vltseg_ros.convert.vltseg_mmseg`), writes a self-describing ``.safetensors`` checkpoint
and loads it back to prove it is complete and exact.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vltseg_ros.config.model_config import load_model_config
from vltseg_ros.convert.safe_load import load_with_inert_metadata
from vltseg_ros.convert.vltseg_mmseg import convert_state_dict, map_keys, pos_embed_grid
from vltseg_ros.errors import CheckpointError
from vltseg_ros.model.checkpoint import load_model, save_checkpoint
from vltseg_ros.model.segmentor import VLTSeg

SOURCE_DESCRIPTION = "VLTSeg MMSegmentation checkpoint"
LICENSE_NOTE = "CC-BY-NC 4.0, VLTSeg Zenodo record 14766160: non-commercial use only"
MODELS_BY_GRID = {36: "vltseg-eva02-l-512", 73: "vltseg-eva02-l-1024"}
"""Built-in model for each position-embedding grid: 512 // 14 = 36, 1024 // 14 = 73."""

_DOMAINS = (
    ("mapillary+cityscapes", r"mapillary\W*cityscapes"),
    ("gta5", r"gta"),
    ("synthia", r"synthia"),
    ("cityscapes", r"cityscapes"),
    ("acdc", r"acdc"),
    ("bdd100k", r"bdd"),
    ("mapillary", r"mapillary"),
)


@dataclass(frozen=True)
class ConversionResult:
    """What :func:`convert_vltseg_checkpoint` did."""

    source: Path
    output: Path
    model_name: str
    model_inferred: bool
    grid: int
    training_domain: str
    backbone_keys: int
    head_keys: int
    derived_keys: int
    stand_ins: tuple[str, ...]


def guess_training_domain(path: str | Path) -> str:
    """Training domain from a reference file name (``vltseg_checkpoint_gta_1.pth`` -> ``gta5``).

    Returns one of ``gta5``, ``synthia``, ``cityscapes``, ``acdc``, ``bdd100k``, ``mapillary``,
    ``mapillary+cityscapes`` or ``unknown``.
    """
    name = Path(path).name.lower()
    return next((domain for domain, pattern in _DOMAINS if re.search(pattern, name)), "unknown")


def infer_model_name(state_dict: Mapping[str, Tensor]) -> str:
    """The built-in model whose position-embedding grid matches ``backbone.pos_embed``.

    Raises:
        CheckpointError: the grid is not one of the reference's (36 for 512 crops, 73 for 1024).
    """
    grid = pos_embed_grid(state_dict)
    if grid not in MODELS_BY_GRID:
        raise CheckpointError(
            f"backbone.pos_embed has a {grid}x{grid} grid; the built-in VLTSeg models have "
            f"{', '.join(f'{g}x{g} ({n})' for g, n in MODELS_BY_GRID.items())}. Pass --model "
            "with a model config whose encoder image_size gives this grid"
        )
    return MODELS_BY_GRID[grid]


def read_reference_state_dict(path: str | Path) -> tuple[dict[str, Tensor], tuple[str, ...]]:
    """The tensors of a reference checkpoint (its ``state_dict``) and the stand-in names.

    Raises:
        CheckpointError: unreadable or unsafe (see :func:`load_with_inert_metadata`), or holding
            no ``backbone.*`` / ``decode_head.*`` tensors.
    """
    obj, stand_ins = load_with_inert_metadata(path)
    state: Any = obj.get("state_dict", obj) if isinstance(obj, Mapping) else obj
    if not isinstance(state, Mapping) or not any(
        str(k).startswith(("backbone.", "decode_head.")) for k in state
    ):
        raise CheckpointError(
            f"{str(path)!r} holds no 'backbone.*' / 'decode_head.*' weights (under "
            "'state_dict'): not a VLTSeg MMSegmentation checkpoint"
        )
    not_tensors = sorted(str(k) for k, v in state.items() if not isinstance(v, Tensor))
    if not_tensors:
        raise CheckpointError(f"{str(path)!r}: state_dict entries are not tensors: {not_tensors}")
    return dict(state), tuple(stand_ins)


def convert_vltseg_checkpoint(
    source: str | Path,
    output: str | Path,
    *,
    model: str | Path | None = None,
    training_domain: str | None = None,
) -> ConversionResult:
    """Convert a VLTSeg MMSegmentation ``.pth`` into a vltseg ``.safetensors`` checkpoint.

    Args:
        source: the reference checkpoint (e.g. ``vltseg_checkpoint_gta_1.pth`` from Zenodo).
        output: the ``.safetensors`` file to write.
        model: built-in model name or model config file; default from the position-embedding
            grid (:data:`MODELS_BY_GRID`).
        training_domain: stored in the checkpoint; default from the file name
            (:func:`guess_training_domain`).

    Raises:
        CheckpointError: unsafe or unreadable input, or weights that do not convert exactly.
    """
    source, output = Path(source), Path(output)
    if output.suffix != ".safetensors":
        raise CheckpointError(f"the output must be a .safetensors file, got {str(output)!r}")
    state, stand_ins = read_reference_state_dict(source)
    grid = pos_embed_grid(state)
    config = load_model_config(model if model is not None else infer_model_name(state))
    network = VLTSeg(config)
    model_grid = tuple(network.encoder.visual.trunk.patch_embed.grid_size)
    if model_grid != (grid, grid):
        raise CheckpointError(
            f"the checkpoint's position embedding has a {grid}x{grid} grid but model "
            f"{config.name!r} has {model_grid[0]}x{model_grid[1]}; "
            f"use {MODELS_BY_GRID.get(grid, 'a model config with the matching image_size')}"
        )
    converted = convert_state_dict(state, network)
    network.load_state_dict(converted, strict=True)
    domain = training_domain or guess_training_domain(source)
    save_checkpoint(
        network,
        output,
        training_domain=domain,
        source=f"{source.name} ({SOURCE_DESCRIPTION})",
        extra_metadata={"license": LICENSE_NOTE},
    )
    del network
    _verify_round_trip(output, converted)
    mapping = map_keys(state)
    return ConversionResult(
        source=source,
        output=output,
        model_name=config.name,
        model_inferred=model is None,
        grid=grid,
        training_domain=domain,
        backbone_keys=sum(k.startswith("backbone.") for k in mapping.mapped),
        head_keys=sum(k.startswith("decode_head.") for k in mapping.mapped),
        derived_keys=len(mapping.derived),
        stand_ins=stand_ins,
    )


def _verify_round_trip(path: Path, expected: Mapping[str, Tensor]) -> None:
    """Load ``path`` with :func:`load_model` (strict) and compare every weight."""
    reloaded = load_model(path).state_dict()
    differing = [
        key
        for key, value in expected.items()
        if not torch.equal(reloaded[key], value.to(reloaded[key].dtype))
    ]
    if differing:
        raise CheckpointError(
            f"{str(path)!r} does not reproduce the converted weights: {differing[:8]}"
        )
