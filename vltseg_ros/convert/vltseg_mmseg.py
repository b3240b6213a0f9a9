"""Key mapping from the VLTSeg reference's MMSegmentation checkpoints to this project's model.

The reference (github.com/VLTSeg/VLTSeg) stores ``backbone.*`` (its own EVA02 module with the
simple feature pyramid ``fpn1`` / ``fpn2``) and ``decode_head.*`` (MMDetection's Mask2Former).
Our model is timm's ``Eva`` under ``encoder.visual.trunk.*``, the pyramid under ``neck.*`` and a
Mask2Former head with MMDetection's own key names under ``head.*``:

reference key                                    our key (``T.`` = ``encoder.visual.trunk.``)
``backbone.cls_token``, ``backbone.pos_embed``   ``T.cls_token``, ``T.pos_embed``
``backbone.patch_embed.proj.{weight,bias}``      ``T.patch_embed.proj.{weight,bias}``
``backbone.blocks.N.norm1|norm2.*``              ``T.blocks.N.norm1|norm2.*``
``backbone.blocks.N.attn.{q,k,v}_proj.weight``   ``T.blocks.N.attn.{q,k,v}_proj.weight``
``backbone.blocks.N.attn.q_bias`` / ``v_bias``   ``T.blocks.N.attn.q_proj.bias`` / ``v_proj.bias``
``backbone.blocks.N.attn.proj.*``                ``T.blocks.N.attn.proj.*``
``backbone.blocks.N.mlp.w1|w2|ffn_ln|w3.*``      ``T.blocks.N.mlp.fc1_g|fc1_x|norm|fc2.*``
``backbone.fpn1.{0,1,3}.*``, ``backbone.fpn2.0.*``  ``neck.fpn1.{0,1,3}.*``, ``neck.fpn2.0.*``
``decode_head.X``                                ``head.X``
``backbone.rope.freqs_{cos,sin}``,               derived: recomputed by our encoder, checked
``backbone.blocks.N.attn.rope.freqs_{cos,sin}``  equal to it, then dropped

(SwiGLU: the reference computes ``w3(ffn_ln(silu(w1(x)) * w2(x)))``, timm
``fc2(norm(silu(fc1_g(x)) * fc1_x(x)))``.)

The reference has no key for our encoder's final norm or projection: the model configs built
for these checkpoints (``vltseg-eva02-l-512`` / ``-1024``) have neither. Any other reference
key, any model key left without a value and any shape difference is an error listing the keys.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from vltseg_ros.errors import CheckpointError
from vltseg_ros.model.segmentor import VLTSeg

_TRUNK = "encoder.visual.trunk."
_BLOCK = r"backbone\.blocks\.(\d+)\."

RULES: tuple[tuple[str, str], ...] = (
    (r"backbone\.(cls_token|pos_embed)", _TRUNK + r"\1"),
    (r"backbone\.patch_embed\.proj\.(weight|bias)", _TRUNK + r"patch_embed.proj.\1"),
    (_BLOCK + r"(norm1|norm2)\.(weight|bias)", _TRUNK + r"blocks.\1.\2.\3"),
    (_BLOCK + r"attn\.(q_proj|k_proj|v_proj)\.weight", _TRUNK + r"blocks.\1.attn.\2.weight"),
    (_BLOCK + r"attn\.(q|v)_bias", _TRUNK + r"blocks.\1.attn.\2_proj.bias"),
    (_BLOCK + r"attn\.proj\.(weight|bias)", _TRUNK + r"blocks.\1.attn.proj.\2"),
    (_BLOCK + r"mlp\.w1\.(weight|bias)", _TRUNK + r"blocks.\1.mlp.fc1_g.\2"),
    (_BLOCK + r"mlp\.w2\.(weight|bias)", _TRUNK + r"blocks.\1.mlp.fc1_x.\2"),
    (_BLOCK + r"mlp\.ffn_ln\.(weight|bias)", _TRUNK + r"blocks.\1.mlp.norm.\2"),
    (_BLOCK + r"mlp\.w3\.(weight|bias)", _TRUNK + r"blocks.\1.mlp.fc2.\2"),
    (
        r"backbone\.fpn1\.([013])\.(weight|bias|running_mean|running_var|num_batches_tracked)",
        r"neck.fpn1.\1.\2",
    ),
    (r"backbone\.fpn2\.0\.(weight|bias)", r"neck.fpn2.0.\1"),
    (r"decode_head\.(.+)", r"head.\1"),
)
"""(reference key regex, our key template): every rule matches whole keys."""

DERIVED = re.compile(r"backbone\.(?:blocks\.\d+\.attn\.)?rope\.freqs_(cos|sin)")
"""Reference RoPE tables: fixed functions of the grid, recomputed by our encoder."""

ROPE_ATOL = 1e-5
_COMPILED = tuple((re.compile(pattern), template) for pattern, template in RULES)


@dataclass(frozen=True)
class KeyMapping:
    """Where each reference key goes: ``mapped`` (ours by theirs), ``derived``, ``unmapped``."""

    mapped: dict[str, str]
    derived: tuple[str, ...]
    unmapped: tuple[str, ...]


def map_keys(keys: Iterable[str]) -> KeyMapping:
    """Apply :data:`RULES` to reference state-dict keys (no tensors involved)."""
    mapped: dict[str, str] = {}
    derived: list[str] = []
    unmapped: list[str] = []
    for key in keys:
        if DERIVED.fullmatch(key):
            derived.append(key)
            continue
        for pattern, template in _COMPILED:
            match = pattern.fullmatch(key)
            if match:
                mapped[key] = match.expand(template)
                break
        else:
            unmapped.append(key)
    return KeyMapping(mapped, tuple(sorted(derived)), tuple(sorted(unmapped)))


def pos_embed_grid(state_dict: Mapping[str, Tensor]) -> int:
    """Side of the square patch grid of ``backbone.pos_embed`` (1 + grid**2 tokens).

    Raises:
        CheckpointError: the key is missing or its token count is not 1 + a square.
    """
    pos = state_dict.get("backbone.pos_embed")
    if pos is None or pos.dim() != 3:
        raise CheckpointError(
            "no backbone.pos_embed of shape (1, tokens, width): not a VLTSeg EVA02 checkpoint"
        )
    grid = math.isqrt(pos.shape[1] - 1)
    if grid * grid != pos.shape[1] - 1:
        raise CheckpointError(
            f"backbone.pos_embed has {pos.shape[1]} tokens, not 1 + a square grid"
        )
    return grid


def convert_state_dict(source: Mapping[str, Tensor], model: VLTSeg) -> dict[str, Tensor]:
    """Rename a reference ``state_dict`` to ``model``'s keys, checking it covers the model exactly.

    Args:
        source: the reference checkpoint's ``state_dict`` (``backbone.*``, ``decode_head.*``).
        model: the target model (may live on the meta device: then only names and shapes,
            not the RoPE values, are checked).

    Returns:
        A state dict with exactly ``model.state_dict()``'s keys and shapes (the source tensors,
        not copied), ready for ``model.load_state_dict(..., strict=True)``.

    Raises:
        CheckpointError: unmapped reference keys, model keys left missing, keys mapped to
            nothing in the model, wrong shapes or RoPE tables that differ from the model's; the
            message lists them all.
    """
    mapping = map_keys(source)
    own = model.state_dict()
    converted = {ours: source[theirs] for theirs, ours in mapping.mapped.items()}
    unexpected = sorted(
        f"{theirs} -> {ours}" for theirs, ours in mapping.mapped.items() if ours not in own
    )
    missing = sorted(set(own) - set(converted))
    wrong = sorted(
        f"{theirs} {tuple(source[theirs].shape)} vs model {ours} {tuple(own[ours].shape)}"
        for theirs, ours in mapping.mapped.items()
        if ours in own and source[theirs].shape != own[ours].shape
    )
    rope = check_rope_tables(source, mapping.derived, model)
    problems = [
        _listing("reference key(s) with no counterpart in the model", mapping.unmapped),
        _listing("reference key(s) mapped to a key the model does not have", unexpected),
        _listing("model key(s) without a value in the checkpoint", missing),
        _listing("wrong shape(s)", wrong),
        _listing("RoPE table(s) that differ from the model's", rope),
    ]
    problems = [p for p in problems if p]
    if problems:
        raise CheckpointError(
            f"the checkpoint does not convert into model {model.config.name!r}:\n"
            + "\n".join(problems)
        )
    return converted


def check_rope_tables(
    source: Mapping[str, Tensor], keys: Iterable[str], model: VLTSeg
) -> list[str]:
    """Compare the reference's RoPE tables with the ones our encoder computes.

    The reference stores, per table, (grid * grid, head_dim) values of cos / sin of the rotation
    angles in its interleaved layout; timm's ``get_embed`` gives the same layout as
    ``cat([sin, cos], -1)``. The grid is the model's stored position-embedding grid.

    Returns:
        One line per key that differs (shape, or values beyond :data:`ROPE_ATOL`); empty when
        all agree. Values are not compared for meta tensors.
    """
    keys = list(keys)
    if not keys:
        return []
    trunk = model.encoder.visual.trunk
    if getattr(trunk, "rope", None) is None:
        return [f"{k}: the model has no rotary position embedding" for k in keys]
    with torch.no_grad():
        sin, cos = trunk.rope.get_embed(shape=tuple(trunk.patch_embed.grid_size)).chunk(2, -1)
    expected = {"sin": sin, "cos": cos}
    problems = []
    for key in keys:
        table, ours = source[key], expected[key.rsplit("_", 1)[-1]]
        if table.shape != ours.shape:
            problems.append(f"{key}: shape {tuple(table.shape)} vs model {tuple(ours.shape)}")
        elif not (table.is_meta or ours.is_meta):
            error = (table.float() - ours.float()).abs().max().item()
            if error > ROPE_ATOL:
                problems.append(f"{key}: values differ by up to {error:.3g}")
    return problems


def _listing(label: str, items: Iterable[str], limit: int = 20) -> str:
    items = list(items)
    if not items:
        return ""
    more = f"\n    ... and {len(items) - limit} more" if len(items) > limit else ""
    return f"  {len(items)} {label}:\n    " + "\n    ".join(items[:limit]) + more
