"""The encoder's initialization from a CLIP / EVA-CLIP image tower, as the VLTSeg reference does.

The reference (``VLTSeg/VLTSeg``, backbone ``init_cfg=dict(type='Pretrained', prefix='visual.')``,
run through mmengine 0.10.5: ``test/golden/vltseg_reference_eva_clip_init.md``) loads the
``visual.*`` tensors of ``EVA02_CLIP_L_psz14_s4B.pt`` non-strictly into a tower that differs
from the one the file was trained with:

- tensors whose name and shape the tower has are copied (459 for EVA02-L);
- tensors of modules the tower does not have are dropped: the LayerNorm inside attention, the
  final norm and the projection head (52);
- tensors whose shape differs keep the tower's own value: the position embedding (16x16 grid in
  the file, 36x36 / 73x73 in the tower) stays at its random initialization, untouched and not
  interpolated; the RoPE tables are the tower's own, computed for its grid from a 16x16
  reference grid (``ref_feat_shape``);
- the feature pyramid (``fpn1`` / ``fpn2``) is not in the file and starts random.

:func:`initialize_encoder` does the same, with the dropped modules named by the architecture's
switches (:data:`OMITTED_BY`) and the resizable tensors limited to the position embedding: any
other difference (a tensor missing from the file, an unknown one, another shape) is an error, so a
file of another tower is refused rather than loaded by half. It reads open_clip's layout
(``visual.trunk.*`` for EVA02, ``visual.*`` for ViTs) and EVA-CLIP's own (``visual.blocks.*``,
renamed with :mod:`vltseg_ros.convert.vltseg_mmseg`'s rules). Keys are reported in the encoder's
namespace (``visual.trunk.blocks.0.attn.q_proj.weight``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from vltseg_ros.config.model_config import EncoderConfig
from vltseg_ros.convert.vltseg_mmseg import map_keys
from vltseg_ros.errors import CheckpointError
from vltseg_ros.model.checkpoint import read_checkpoint
from vltseg_ros.model.encoder import ClipEncoder
from vltseg_ros.model.segmentor import StateLayout
from vltseg_ros.model.state_checks import check_layout, check_values

OMITTED_BY: tuple[tuple[str, str, object, str], ...] = (
    ("timm_kwargs", "scale_attn_inner", False, r"visual\.trunk\.blocks\.\d+\.attn\.norm\.\w+"),
    ("timm_kwargs", "use_post_transformer_norm", False, r"visual\.trunk\.norm\.\w+"),
    ("vision_cfg", "timm_proj", "none", r"visual\.trunk\.head\.\w+"),
)
"""(config section, switch, value, keys): the image-tower tensors an architecture with that
switch setting does not have (the reference-shaped ``vltseg-eva02-l-*`` towers: no LayerNorm
inside attention, no final norm, no projection); a file's tensors of those modules are dropped."""

RESIZABLE = re.compile(r"visual\.(trunk\.pos_embed|positional_embedding)")
"""Tensors that may differ in shape from the file's (a patch grid of another size): they keep
the tower's initialization, as the reference's non-strict load does."""

_EVA_CLIP_EXTRA = (  # EVA-CLIP names of the modules convert's rules have no use for
    (
        re.compile(r"blocks\.(\d+)\.attn\.inner_attn_ln\.(\w+)"),
        r"visual.trunk.blocks.\1.attn.norm.\2",
    ),
    (re.compile(r"(norm|head)\.(\w+)"), r"visual.trunk.\1.\2"),
)
_ENCODER_PREFIX = "encoder."


@dataclass(frozen=True)
class EncoderInit:
    """What :func:`initialize_encoder` did (keys in the encoder's namespace).

    Attributes:
        source: the file.
        naming: ``"open_clip"`` or ``"EVA-CLIP"`` (the file's key names).
        loaded: encoder tensors copied from the file.
        dropped: file tensors of modules this architecture does not have.
        kept_at_init: encoder tensors left at their random initialization because the file's
            shape differs -> (file shape, encoder shape).
        recomputed: RoPE tables of an EVA-CLIP file, not used: the encoder computes its own for
            its patch grid.
    """

    source: Path
    naming: str
    loaded: tuple[str, ...]
    dropped: tuple[str, ...]
    kept_at_init: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)
    recomputed: tuple[str, ...] = ()

    def summary(self) -> list[str]:
        """Log lines: counts, and the keys with block indices folded into ``N``."""
        lines = [
            f"encoder initialized from {self.source} ({self.naming} names): "
            f"{len(self.loaded)} tensors loaded"
        ]
        if self.dropped:
            lines.append(
                f"dropped {len(self.dropped)} (modules this architecture does not have): "
                + ", ".join(folded_keys(self.dropped))
            )
        for key, (theirs, ours) in sorted(self.kept_at_init.items()):
            lines.append(
                f"left at random init: {key} (file {theirs}, encoder {ours}; shape differs, "
                "as the VLTSeg reference leaves it)"
            )
        if self.recomputed:
            lines.append(
                f"not used: {len(self.recomputed)} RoPE tables of the file (the encoder computes "
                "its own for its patch grid)"
            )
        return lines

    def to_dict(self) -> dict[str, object]:
        """JSON-ready record (shapes as lists)."""
        return {
            "source": str(self.source),
            "naming": self.naming,
            "loaded": list(self.loaded),
            "dropped": list(self.dropped),
            "kept_at_init": {k: [list(a), list(b)] for k, (a, b) in self.kept_at_init.items()},
            "recomputed": list(self.recomputed),
        }


def folded_keys(keys: Iterable[str]) -> list[str]:
    """Keys with block indices replaced by ``N`` and counted: ``a.blocks.N.b x24``."""
    counts = Counter(re.sub(r"\.\d+\.", ".N.", key) for key in keys)
    return [f"{key} x{n}" if n > 1 else key for key, n in sorted(counts.items())]


def omitted_keys(config: EncoderConfig) -> re.Pattern[str] | None:
    """The pattern of the tower tensors ``config``'s switches remove (:data:`OMITTED_BY`), or
    None when it has every module of the tower it names."""
    sections = {"timm_kwargs": config.timm_kwargs, "vision_cfg": config.vision_cfg}
    patterns = [
        keys
        for section, switch, value, keys in OMITTED_BY
        if switch in sections[section] and sections[section][switch] == value
    ]
    return re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None


def plan_init(
    file_shapes: Mapping[str, tuple[int, ...]], layout: StateLayout, config: EncoderConfig
) -> tuple[list[str], list[str], dict[str, tuple[tuple[int, ...], tuple[int, ...]]]]:
    """Sort a file's image-tower tensors (encoder names) by what the initialization does with
    them, from names and shapes alone.

    Args:
        file_shapes: file tensor (in the encoder's names) -> shape.
        layout: the encoder's state layout; ``config`` its config (for :func:`omitted_keys`).

    Returns:
        (to load, dropped, kept at init -> (file shape, encoder shape)). Tensors that fit none
        (unknown, another shape) are left in "to load" for :func:`check_layout` to name.
    """
    omitted = omitted_keys(config)
    dropped = sorted(
        k for k in file_shapes if k not in layout.shapes and omitted and omitted.fullmatch(k)
    )
    kept = {
        k: (tuple(shape), layout.shapes[k])
        for k, shape in file_shapes.items()
        if k in layout.shapes and RESIZABLE.fullmatch(k) and tuple(shape) != layout.shapes[k]
    }
    load = sorted(k for k in file_shapes if k not in kept and k not in dropped)
    return load, dropped, kept


def initialize_encoder(
    encoder: ClipEncoder, config: EncoderConfig, path: str | Path
) -> EncoderInit:
    """Load the image tower (``visual.*``) of an open_clip or EVA-CLIP checkpoint into
    ``encoder`` (built from ``config``) as the reference does (module docstring).

    Raises:
        CheckpointError: unreadable file, no ``visual.*`` tensors, or tensors that do not fit:
            missing from the file, unknown to the architecture, a shape other than the position
            embedding's, non-float or non-finite values.
    """
    path = Path(path)
    state, _ = read_checkpoint(path)
    visual = {k: v for k, v in state.items() if k.startswith("visual.")}
    if not visual:
        raise CheckpointError(
            f"{str(path)!r} holds no 'visual.*' keys: not an open_clip checkpoint"
        )
    naming = "EVA-CLIP" if any(k.startswith("visual.blocks.") for k in visual) else "open_clip"
    recomputed: tuple[str, ...] = ()
    if naming == "EVA-CLIP":
        renamed, recomputed, unknown = eva_clip_names(visual)
        if unknown:
            raise CheckpointError(
                f"{str(path)!r}: EVA-CLIP tensor(s) this project does not know: "
                + ", ".join(folded_keys(unknown)[:10])
            )
        visual = {ours: visual[theirs] for ours, theirs in renamed.items()}
    layout = StateLayout.of(encoder)
    load, dropped, kept = plan_init({k: tuple(v.shape) for k, v in visual.items()}, layout, config)
    tensors = {k: visual[k] for k in load}
    expected = StateLayout(
        {k: s for k, s in layout.shapes.items() if k not in kept},
        {k: d for k, d in layout.dtypes.items() if k not in kept},
    )
    what = "the encoder" + (f" (besides {', '.join(kept)}, left at init)" if kept else "")
    check_layout(expected, {k: v.shape for k, v in tensors.items()}, path, what)
    check_values(expected, tensors, path)
    encoder.load_state_dict(tensors, strict=False)
    return EncoderInit(path, naming, tuple(load), tuple(dropped), kept, recomputed)


def eva_clip_names(keys: Iterable[str]) -> tuple[dict[str, str], tuple[str, ...], list[str]]:
    """EVA-CLIP's image-tower names (``visual.blocks.0.attn.q_bias``, also without the
    ``visual.`` prefix) in the encoder's namespace, with the rules of
    :mod:`vltseg_ros.convert.vltseg_mmseg` and :data:`_EVA_CLIP_EXTRA`.

    Returns:
        (encoder name -> EVA-CLIP name, the RoPE tables (derived: recomputed, not loaded), the
        names no rule knows).
    """
    keys = list(keys)
    by_bare = {k.removeprefix("visual."): k for k in keys}
    mapping = map_keys("backbone." + bare for bare in by_bare)
    renamed = {
        ours.removeprefix(_ENCODER_PREFIX): by_bare[theirs.removeprefix("backbone.")]
        for theirs, ours in mapping.mapped.items()
    }
    unknown = []
    for key in mapping.unmapped:
        bare = key.removeprefix("backbone.")
        for pattern, template in _EVA_CLIP_EXTRA:
            if match := pattern.fullmatch(bare):
                renamed[match.expand(template)] = by_bare[bare]
                break
        else:
            unknown.append(by_bare[bare])
    rope = tuple(sorted(by_bare[k.removeprefix("backbone.")] for k in mapping.derived))
    return renamed, rope, unknown
