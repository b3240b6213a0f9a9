"""Typed configuration of a VLTSeg model: architecture, class set, normalization, inference.

Architectures and class sets are data: YAML files under ``vltseg_ros/config/models/`` and
``vltseg_ros/config/classes/`` (built-in, selected by name) or any YAML/JSON file a user points
to. :func:`load_model_config` turns either
into a frozen :class:`ModelConfig`; :meth:`ModelConfig.to_dict` gives the plain dictionary that
checkpoints store, so a checkpoint describes the model it holds.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from vltseg_ros.config.anomaly_methods import DEFAULT_THRESHOLDS
from vltseg_ros.config.typed_yaml import (
    build_dataclass,
    parse_mapping,
    read_mapping_file,
    to_plain,
)
from vltseg_ros.errors import ConfigError, UnknownModelError

_CONFIG_PACKAGE = "vltseg_ros.config"  # its folders models/ and classes/
DEFAULT_MODEL = "vit-b-16"
"""Architecture the CLI and the node use when given neither a model nor a checkpoint."""
_CONFIG_SUFFIXES = (".yaml", ".yml", ".json")

REFERENCE_ARCHITECTURE = "the VLTSeg reference EVA02-L/14 + Mask2Former"
MAX_PARAMETERS = 700_000_000
"""Most weights a model may have: about twice :data:`REFERENCE_ARCHITECTURE` (342 M, the
largest real architecture); 2.8 GB in float32. Checked when a model is built
(:func:`vltseg_ros.model.segmentor.expected_layout`), on the ``meta`` device first."""

# What a config may declare, per size: (bound, the reference's value). The bounds keep any
# declared architecture cheap to build on the meta device and to check against MAX_PARAMETERS.
_ENCODER_BOUNDS: dict[str, tuple[float, str]] = {
    "width": (2048, "1024"),
    "embed_dim": (2048, "1024"),
    "layers": (48, "24"),
    "depth": (48, "24"),
    "heads": (64, "16"),
    "num_heads": (64, "16"),
    "head_width": (256, "64"),
    "mlp_ratio": (8, "2.67"),
    "image_size": (4096, "1024"),
    "img_size": (4096, "1024"),
    "patch_size": (64, "14"),
}
_HEAD_BOUNDS: dict[str, tuple[float, str]] = {
    "feat_channels": (1024, "256"),
    "out_channels": (1024, "256"),
    "num_queries": (1000, "100"),
    "pixel_decoder.num_layers": (24, "6"),
    "pixel_decoder.num_heads": (64, "8"),
    "pixel_decoder.num_points": (32, "4"),
    "pixel_decoder.ffn_channels": (8192, "1024"),
    "transformer_decoder.num_layers": (36, "9"),
    "transformer_decoder.num_heads": (64, "8"),
    "transformer_decoder.ffn_channels": (8192, "2048"),
}
MAX_NETWORK_INPUT = 4096
"""Largest side of a network input (``crop_size``, ``whole_size``): 4x the reference's 1024."""
MAX_TEST_SCALE = 8192
"""Largest side of ``test_scale``: 4x the reference's 2048."""


@dataclass(frozen=True)
class EncoderConfig:
    """The CLIP / EVA-CLIP image tower and the blocks whose features feed the pyramid.

    ``open_clip_model`` names an open_clip model config (e.g. ``ViT-B-16``, ``EVA02-L-14``); its
    ``vision_cfg`` is used with ``vision_cfg`` here merged over it (or alone when no name is
    given). ``timm_kwargs`` are passed to ``timm.create_model`` for timm-based towers (EVA02).
    ``image_size`` in the vision config fixes the stored position-embedding grid; any other input
    size is served by resampling it on the fly, so checkpoint keys and shapes never change.
    """

    open_clip_model: str | None = None
    vision_cfg: dict[str, Any] = field(default_factory=dict)
    embed_dim: int | None = None
    quick_gelu: bool = False
    timm_kwargs: dict[str, Any] = field(default_factory=dict)
    out_indices: tuple[int, ...] = (3, 5, 7, 11)
    drop_path: float = 0.0

    def validate(self) -> None:
        """Raise :class:`ConfigError` when the encoder settings are inconsistent."""
        if self.open_clip_model is None and not self.vision_cfg:
            raise ConfigError("encoder: give open_clip_model or a full vision_cfg")
        if len(self.out_indices) != 4:
            raise ConfigError(
                f"encoder.out_indices must name 4 blocks (one per pyramid level), "
                f"got {list(self.out_indices)}"
            )
        if list(self.out_indices) != sorted(set(self.out_indices)) or self.out_indices[0] < 0:
            raise ConfigError(
                "encoder.out_indices must be increasing block indices, "
                f"got {list(self.out_indices)}"
            )
        if not 0.0 <= self.drop_path < 1.0:
            raise ConfigError(f"encoder.drop_path must be in [0, 1), got {self.drop_path}")
        sizes = {f"vision_cfg.{k}": v for k, v in self.vision_cfg.items()}
        sizes.update((f"timm_kwargs.{k}", v) for k, v in self.timm_kwargs.items())
        if self.embed_dim is not None:
            sizes["embed_dim"] = self.embed_dim
        for name, value in sizes.items():
            bound = _ENCODER_BOUNDS.get(name.rpartition(".")[2])
            if bound is not None:
                _check_bound(f"encoder.{name}", value, bound)


@dataclass(frozen=True)
class PixelDecoderConfig:
    """Multi-scale deformable-attention pixel decoder (Mask2Former)."""

    num_layers: int = 6
    num_heads: int = 8
    num_points: int = 4
    ffn_channels: int = 1024
    num_groups: int = 32


@dataclass(frozen=True)
class TransformerDecoderConfig:
    """Masked-attention transformer decoder (Mask2Former)."""

    num_layers: int = 9
    num_heads: int = 8
    ffn_channels: int = 2048


@dataclass(frozen=True)
class HeadConfig:
    """Mask2Former head sizes; defaults are the reference (VLTSeg / mmdet) values."""

    feat_channels: int = 256
    out_channels: int = 256
    num_queries: int = 100
    num_levels: int = 3
    pixel_decoder: PixelDecoderConfig = field(default_factory=PixelDecoderConfig)
    transformer_decoder: TransformerDecoderConfig = field(default_factory=TransformerDecoderConfig)

    def validate(self) -> None:
        """Raise :class:`ConfigError` when the head sizes cannot build a model."""
        for name in ("feat_channels", "out_channels", "num_queries"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"head.{name} must be positive")
        if not 1 <= self.num_levels <= 3:
            raise ConfigError(
                f"head.num_levels must be 1-3 (of the 4 pyramid levels), got {self.num_levels}"
            )
        pd, td = self.pixel_decoder, self.transformer_decoder
        if self.feat_channels % pd.num_groups:
            raise ConfigError(
                f"head.feat_channels ({self.feat_channels}) must be divisible by "
                f"pixel_decoder.num_groups ({pd.num_groups})"
            )
        for section, heads in (
            ("pixel_decoder", pd.num_heads),
            ("transformer_decoder", td.num_heads),
        ):
            if heads <= 0 or self.feat_channels % heads:
                raise ConfigError(
                    f"head.feat_channels ({self.feat_channels}) must be divisible by "
                    f"head.{section}.num_heads ({heads})"
                )
        if min(pd.num_layers, pd.num_points, pd.ffn_channels, td.num_layers, td.ffn_channels) < 1:
            raise ConfigError("head: layer, point and ffn counts must be positive")
        for name, bound in _HEAD_BOUNDS.items():
            section, _, field_name = name.rpartition(".")
            owner = getattr(self, section) if section else self
            _check_bound(f"head.{name}", getattr(owner, field_name), bound)


@dataclass(frozen=True)
class ClassSetConfig:
    """Names and display colors of the classes a model predicts, indexed by train id."""

    name: str
    names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    ignore_index: int = 255

    def validate(self) -> None:
        """Raise :class:`ConfigError` when names and palette disagree or overflow uint8."""
        if not self.names:
            raise ConfigError(f"class set {self.name!r} has no classes")
        if len(self.names) != len(self.palette):
            raise ConfigError(
                f"class set {self.name!r}: {len(self.names)} names but "
                f"{len(self.palette)} palette colors"
            )
        if len(self.names) >= 255 or not 0 <= self.ignore_index <= 255:
            raise ConfigError("class ids and ignore_index must fit in uint8 (< 255 classes)")
        for color in self.palette:
            if len(color) != 3 or not all(0 <= c <= 255 for c in color):
                raise ConfigError(f"class set {self.name!r}: bad RGB color {color}")

    @property
    def num_classes(self) -> int:
        """Number of classes (the ignore index excluded)."""
        return len(self.names)


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and std in RGB order on the 0-255 scale."""

    mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    std: tuple[float, float, float] = (58.395, 57.12, 57.375)

    def validate(self) -> None:
        """Raise :class:`ConfigError` for wrong lengths or non-positive std."""
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError("normalization needs 3 means and 3 positive stds (RGB)")


@dataclass(frozen=True)
class InferenceConfig:
    """How a frame is cut into network inputs.

    ``slide``: the (optionally rescaled) image is covered by ``crop_size`` windows placed every
    ``stride`` pixels (the last window flush with the border, as MMSegmentation does); images
    smaller than a crop are padded. ``whole``: the image is resized to ``whole_size`` (H, W), or
    to ``crop_size`` when unset, and run once. ``test_scale`` = (long, short) rescales the image,
    keeping its aspect ratio, to fit inside that bound before sliding (the reference test
    pipeline: (1024, 512) for GTA5-trained models, (2048, 1024) for Cityscapes-trained ones).
    """

    mode: Literal["slide", "whole"] = "slide"
    crop_size: tuple[int, int] = (512, 512)
    stride: tuple[int, int] = (426, 426)
    test_scale: tuple[int, int] | None = None
    whole_size: tuple[int, int] | None = None

    def validate(self) -> None:
        """Raise :class:`ConfigError` for unknown modes or non-positive sizes."""
        if self.mode not in ("slide", "whole"):
            raise ConfigError(f"inference.mode must be 'slide' or 'whole', got {self.mode!r}")
        pairs = {"crop_size": self.crop_size, "stride": self.stride}
        if self.test_scale is not None:
            pairs["test_scale"] = self.test_scale
        if self.whole_size is not None:
            pairs["whole_size"] = self.whole_size
        for name, pair in pairs.items():
            if len(pair) != 2 or min(pair) <= 0:
                raise ConfigError(f"inference.{name} must be two positive integers, got {pair}")
            limit = MAX_TEST_SCALE if name == "test_scale" else MAX_NETWORK_INPUT
            if max(pair) > limit:
                raise ConfigError(
                    f"inference.{name} {pair} exceeds the bound of {limit} pixels a side "
                    f"(4x that of {REFERENCE_ARCHITECTURE})"
                )
        if self.stride[0] > self.crop_size[0] or self.stride[1] > self.crop_size[1]:
            raise ConfigError(
                f"inference.stride {self.stride} must not exceed crop_size {self.crop_size} "
                "(pixels between windows would never be predicted)"
            )

    @property
    def input_size(self) -> tuple[int, int]:
        """(H, W) of every network input in this mode."""
        if self.mode == "whole" and self.whole_size is not None:
            return self.whole_size
        return self.crop_size


@dataclass(frozen=True)
class Calibration:
    """What ``vltseg calibrate`` fitted and measured on labelled held-out frames.

    Stored in the model config (so checkpoints and ONNX exports carry it). ``temperature``
    tempers the class probabilities (``p ∝ s ** (1 / T)``,
    :func:`vltseg_ros.inference.scores.apply_temperature`); the per-frame statistics are the
    reference of the domain-shift monitor (:mod:`vltseg_ros.inference.domain_shift`).

    Attributes:
        temperature: > 0; 1 = untempered.
        mean_confidence: mean over the calibration frames of each frame's mean winning-class
            probability (at ``temperature``), and its standard deviation across frames.
        anomaly_fraction: mean over the frames of the share of pixels whose anomaly score
            (``anomaly_method``) exceeds ``anomaly_threshold``, and its standard deviation.
        class_fraction: (C,) mean over the frames of the share of pixels predicted as each of
            the model's classes (the frames' predicted-class histogram); empty in calibrations
            made before it was measured (the domain-shift monitor then leaves its class term
            out).
        ece_before, ece_after: expected calibration error (15 bins) at temperature 1 and at
            ``temperature``, on the pixels the temperature was fitted on.
        frames: calibration frames; source: what they were (``cityscapes:/data/cs``, a bag).
    """

    temperature: float = 1.0
    mean_confidence: float = 0.0
    mean_confidence_std: float = 0.0
    anomaly_fraction: float = 0.0
    anomaly_fraction_std: float = 0.0
    anomaly_method: str = "rba"
    anomaly_threshold: float = DEFAULT_THRESHOLDS["rba"]
    ece_before: float = 0.0
    ece_after: float = 0.0
    frames: int = 0
    source: str = ""
    class_fraction: tuple[float, ...] = ()

    def describe(self) -> str:
        """``temperature 1.420 from 120 frames of cityscapes:/data/cs (ECE 0.081 -> 0.023)``."""
        return (
            f"temperature {self.temperature:.3f} from {self.frames} frames of "
            f"{self.source or 'unknown'} (ECE {self.ece_before:.3f} -> {self.ece_after:.3f})"
        )

    def validate(self) -> None:
        """Raise :class:`ConfigError` for a non-positive temperature or shares outside [0, 1]."""
        if not 0 < self.temperature < math.inf:
            raise ConfigError(
                f"calibration temperature must be a finite number > 0, got {self.temperature}"
            )
        for name in ("mean_confidence", "anomaly_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"calibration {name} must be in [0, 1]")
        if not all(0.0 <= share <= 1.0 for share in self.class_fraction):
            raise ConfigError("calibration class_fraction must hold shares in [0, 1]")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build a model and run it on camera frames."""

    name: str
    encoder: EncoderConfig
    head: HeadConfig = field(default_factory=HeadConfig)
    classes: ClassSetConfig | None = None
    normalization: Normalization = field(default_factory=Normalization)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    training_domain: str | None = None
    description: str = ""
    calibration: Calibration | None = None

    def validate(self) -> None:
        """Raise :class:`ConfigError` when any part is invalid."""
        if self.classes is None:
            raise ConfigError(f"model {self.name!r} has no class set")
        self.encoder.validate()
        self.head.validate()
        self.classes.validate()
        self.normalization.validate()
        self.inference.validate()
        if self.calibration is not None:
            self.calibration.validate()
            shares = len(self.calibration.class_fraction)
            if shares not in (0, self.classes.num_classes):
                raise ConfigError(
                    f"calibration class_fraction holds {shares} shares for "
                    f"{self.classes.num_classes} classes: recalibrate (vltseg calibrate)"
                )

    @property
    def class_set(self) -> ClassSetConfig:
        """The class set (validated configs always have one)."""
        if self.classes is None:
            raise ConfigError(f"model {self.name!r} has no class set")
        return self.classes

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable dictionary; :meth:`from_dict` inverts it."""
        return to_plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build and validate a config from a dictionary (as read from YAML/JSON)."""
        data = dict(data)
        classes = data.get("classes")
        if isinstance(classes, str):
            data["classes"] = _read_builtin("classes", classes, "class set")
        config = build_dataclass(cls, data, "model")
        config.validate()
        return config

    def replace(self, **changes: Any) -> ModelConfig:
        """A validated copy with top-level fields replaced (e.g. ``inference=...``)."""
        config = dataclasses.replace(self, **changes)
        config.validate()
        return config


def available_models() -> list[str]:
    """Names of the built-in model configurations."""
    root = resources.files(_CONFIG_PACKAGE).joinpath("models")
    return sorted(
        p.name.rsplit(".", 1)[0]
        for p in root.iterdir()
        if p.is_file() and p.name.endswith(_CONFIG_SUFFIXES)
    )


def load_model_config(name_or_path: str | Path) -> ModelConfig:
    """Load a built-in model config by name, or a YAML/JSON file by path.

    Raises:
        UnknownModelError: the name is neither built in nor an existing file.
        ConfigError: the file is unreadable or its content is invalid.
    """
    path = Path(name_or_path)
    if path.suffix in _CONFIG_SUFFIXES or path.exists():
        data = read_mapping_file(path, "model config file", missing=UnknownModelError)
    else:
        data = _read_builtin("models", str(name_or_path), "model")
    data.setdefault("name", path.stem if path.is_file() else str(name_or_path))
    return ModelConfig.from_dict(data)


def load_class_set(name: str) -> ClassSetConfig:
    """Load a built-in class set (e.g. ``cityscapes``) by name."""
    class_set = build_dataclass(ClassSetConfig, _read_builtin("classes", name, "class set"), name)
    class_set.validate()
    return class_set


def _check_bound(name: str, value: Any, bound: tuple[float, str]) -> None:
    """Raise :class:`ConfigError` unless ``value`` (a number or a list of numbers) is at most
    ``bound[0]``."""
    limit, reference = bound
    values = value if isinstance(value, list | tuple) else [value]
    if not values or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values
    ):
        raise ConfigError(f"{name} must be a finite number (or a list of them), got {value!r}")
    if max(values) > limit:
        raise ConfigError(
            f"{name} = {value!r} exceeds the bound of {limit:g} a model config may declare "
            f"({REFERENCE_ARCHITECTURE} has {reference})"
        )


def _read_builtin(folder: str, name: str, what: str) -> dict[str, Any]:
    root = resources.files(_CONFIG_PACKAGE).joinpath(folder)
    for suffix in _CONFIG_SUFFIXES:
        candidate = root.joinpath(name + suffix)
        if candidate.is_file():
            return parse_mapping(candidate.read_text(encoding="utf-8"), name + suffix)
    known = available_models() if what == "model" else []
    hint = f"; built-in models: {', '.join(known)}" if known else ""
    raise UnknownModelError(f"unknown {what} {name!r}{hint} (or give a path to a YAML file)")
