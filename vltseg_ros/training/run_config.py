"""Typed configuration of a training run, loaded from YAML with ``key=value`` overrides.

A run config names the model, the encoder's open_clip initialization, the source data set and
the target data sets evaluated during training, and the optimization recipe; its defaults are
the VLTSeg reference's (AdamW lr 1e-4, weight decay 0.05, backbone lr x0.1, lr constant for 500
iterations then poly 0.9 to 0, grad-norm clip 0.01, drop-path 0.2, the Mask2Former loss
weights). Built-in run configs live in ``vltseg_ros/config/training/`` (selected by name);
:func:`load_run_config` reads one of them or any YAML file, applies command-line overrides such
as ``train.iterations=200`` or ``data.source=gta5:/data/gta5`` (values are YAML) and validates
the result, raising :class:`~vltseg_ros.errors.ConfigError` with the offending key.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from vltseg_ros.config.model_config import ModelConfig, load_model_config
from vltseg_ros.config.typed_yaml import (
    build_dataclass,
    parse_mapping,
    read_mapping_file,
    to_plain,
)
from vltseg_ros.data.factory import parse_dataset_spec
from vltseg_ros.data.transforms import REFERENCE_TRAIN_SIZES
from vltseg_ros.engines.base import Precision
from vltseg_ros.errors import ConfigError, DatasetError, UnknownModelError
from vltseg_ros.training.point_sampling import check_sampling

_CONFIG_PACKAGE = "vltseg_ros.config.training"
_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class ModelSection:
    """The network: a model config, the encoder's initial weights, drop-path, inference.

    ``config`` is a built-in model config name (``vltseg_ros.available_models()``) or a YAML
    file; ``init`` an open_clip CLIP / EVA-CLIP checkpoint file whose image tower initializes
    the encoder (None: random encoder, only sensible for tests); ``drop_path`` replaces the
    encoder's stochastic-depth rate (timm / EVA02 towers only; 0 for open_clip ViTs);
    ``inference`` entries replace the model config's inference settings (crop, stride, test
    scale) stored with the checkpoints and used by the periodic evaluation.
    """

    config: str = "eva02-l-14"
    init: str | None = None
    drop_path: float = 0.2
    inference: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataSection:
    """Source data, augmentation and evaluation targets.

    ``source`` and every entry of ``targets`` are ``NAME:ROOT`` (see
    :func:`vltseg_ros.data.build_dataset`). ``scale`` (W, H) and ``crop_size`` (H, W) default
    to the reference's values for the source (:data:`REFERENCE_TRAIN_SIZES`).
    """

    source: str = ""
    split: str = "train"
    targets: tuple[str, ...] = ()
    target_split: str = "val"
    scale: tuple[int, int] | None = None
    crop_size: tuple[int, int] | None = None
    cat_max_ratio: float = 0.75
    flip_prob: float = 0.5
    photometric: bool = True
    num_workers: int = 2


@dataclass(frozen=True)
class LossSection:
    """Mask2Former loss and matching settings; the defaults are the VLTSeg reference's.

    The argument of :class:`~vltseg_ros.training.criterion.Mask2FormerCriterion`.
    ``class_weight``, ``mask_weight``, ``dice_weight``: weights (>= 0) of the class
    cross-entropy, the mask BCE and the dice loss, also the default matcher's cost weights;
    ``no_object_weight``: class weight of no-object in the class cross-entropy, in [0, 1];
    ``num_points``: P >= 1, points per matched mask for the mask losses (and per image for the
    default matcher's cost); ``oversample_ratio`` (>= 1) and ``importance_ratio`` (in [0, 1]):
    the importance sampling of the mask-loss points.
    """

    class_weight: float = 2.0
    mask_weight: float = 5.0
    dice_weight: float = 5.0
    no_object_weight: float = 0.1
    num_points: int = 12544
    oversample_ratio: float = 3.0
    importance_ratio: float = 0.75

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first invalid setting."""
        for key in ("class_weight", "mask_weight", "dice_weight"):
            value = getattr(self, key)
            _check(value >= 0, f"loss.{key} must be >= 0, got {value}")
        _check(
            0.0 <= self.no_object_weight <= 1.0,
            f"loss.no_object_weight must be in [0, 1], got {self.no_object_weight}",
        )
        try:
            check_sampling(self.num_points, self.oversample_ratio, self.importance_ratio)
        except ConfigError as exc:
            raise ConfigError(f"loss.{exc}") from exc


@dataclass(frozen=True)
class TrainSection:
    """Optimization: iterations, global batch, AdamW, lr schedule, clipping, precision.

    ``batch_size`` is the global batch (all processes together). ``batchnorm``: ``auto`` =
    SyncBatchNorm for multi-GPU CUDA runs, per-process BatchNorm otherwise; ``sync`` (CUDA
    only), ``local`` (per-process batch statistics), ``frozen`` (BatchNorm layers kept in eval
    mode: running statistics used and not updated, affine parameters still trained).
    ``amp`` enables autocast (+ a gradient scaler for float16) on CUDA; it is ignored on CPU.
    ``grad_clip`` 0 disables gradient-norm clipping.
    """

    iterations: int = 5000
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 0.05
    backbone_lr_mult: float = 0.1
    constant_iterations: int = 500
    poly_power: float = 0.9
    grad_clip: float = 0.01
    amp: bool = True
    amp_dtype: Literal["float16", "bfloat16"] = "float16"
    batchnorm: Literal["auto", "sync", "local", "frozen"] = "auto"
    seed: int = 0
    log_interval: int = 50


@dataclass(frozen=True)
class EvalSection:
    """Periodic evaluation on ``data.targets`` (every ``interval`` iterations and at the end;
    ``interval`` 0: only at the end); ``limit`` frames per domain (None: all), ``batch_size``
    crops per forward pass, ``precision`` of the evaluation forward passes (CUDA only)."""

    interval: int = 500
    limit: int | None = None
    batch_size: int = 4
    precision: Precision = "fp32"


@dataclass(frozen=True)
class CheckpointSection:
    """Checkpoints every ``interval`` iterations and at the end; the newest ``keep`` are kept."""

    interval: int = 500
    keep: int = 1


@dataclass(frozen=True)
class RunConfig:
    """A complete training run; ``output_dir`` None: ``work_dirs/<name>``."""

    name: str
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    loss: LossSection = field(default_factory=LossSection)
    train: TrainSection = field(default_factory=TrainSection)
    eval: EvalSection = field(default_factory=EvalSection)
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)
    output_dir: str | None = None
    description: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """Build and validate a run config from a (YAML) mapping.

        Raises:
            ConfigError: unknown keys, wrong types or invalid values.
        """
        config = build_dataclass(cls, data)
        config.validate()
        return config

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON-ready dictionary; :meth:`from_dict` inverts it."""
        return to_plain(dataclasses.asdict(self))

    @property
    def source_name(self) -> str:
        """Canonical name of the source data set (e.g. ``gta5``)."""
        return parse_dataset_spec(self.data.source)[0]

    @property
    def scale(self) -> tuple[int, int]:
        """(W, H) every training image is resized to."""
        return self.data.scale or REFERENCE_TRAIN_SIZES[self.source_name][0]

    @property
    def crop_size(self) -> tuple[int, int]:
        """(H, W) of the training crops."""
        return self.data.crop_size or REFERENCE_TRAIN_SIZES[self.source_name][1]

    @property
    def output_path(self) -> Path:
        """Folder of checkpoints, logs and plots."""
        return Path(self.output_dir or Path("work_dirs") / self.name).expanduser()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first invalid setting."""
        _validate_data(self.data)
        if (self.data.scale is None or self.data.crop_size is None) and (
            self.source_name not in REFERENCE_TRAIN_SIZES
        ):
            raise ConfigError(
                f"data.scale and data.crop_size are required for source {self.source_name!r} "
                "(no reference sizes)"
            )
        _validate_train(self.train)
        _check(self.eval.interval >= 0, "eval.interval must be >= 0 (0: only at the end)")
        _check(self.eval.limit is None or self.eval.limit >= 1, "eval.limit must be >= 1")
        _check(self.eval.batch_size >= 1, "eval.batch_size must be >= 1")
        _check(self.checkpoint.interval >= 1, "checkpoint.interval must be >= 1")
        _check(self.checkpoint.keep >= 1, "checkpoint.keep must be >= 1")
        _check(0.0 <= self.model.drop_path < 1.0, "model.drop_path must be in [0, 1)")
        self.loss.validate()
        resolve_model_config(self)


def resolve_model_config(run: RunConfig) -> ModelConfig:
    """The run's model config: ``model.config`` with its drop-path and inference overrides.

    Raises:
        ConfigError: unknown model, or overrides the model config rejects.
    """
    try:
        base = load_model_config(run.model.config)
    except UnknownModelError as exc:
        raise ConfigError(f"model.config: {exc}") from exc
    data = base.to_dict()
    data["encoder"]["drop_path"] = run.model.drop_path
    data["inference"].update(copy.deepcopy(run.model.inference))
    try:
        return ModelConfig.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"model.inference / model.drop_path: {exc}") from exc


def available_run_configs() -> list[str]:
    """Names of the built-in run configs (``vltseg_ros/config/training/*.yaml``)."""
    root = resources.files(_CONFIG_PACKAGE)
    return sorted(
        p.name.rsplit(".", 1)[0]
        for p in root.iterdir()
        if p.is_file() and p.name.endswith(_SUFFIXES)
    )


def load_run_config(name_or_path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """Load a built-in run config by name or a YAML file, apply overrides and validate.

    Args:
        name_or_path: a name of :func:`available_run_configs` or a YAML file path.
        overrides: ``dotted.key=value`` strings; values are parsed as YAML (``200``,
            ``[512, 512]``, ``null``, ``gta5:/data/gta5``); a list field also takes a
            comma-separated string.

    Raises:
        ConfigError: unknown name, unreadable file, bad override or invalid result.
    """
    path = Path(name_or_path)
    if path.suffix in _SUFFIXES or path.exists():
        data = read_mapping_file(path, "run config file")
    else:
        data = _read_builtin(str(name_or_path))
    data.setdefault("name", path.stem)
    return RunConfig.from_dict(apply_overrides(data, overrides))


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A deep copy of ``data`` with ``dotted.key=value`` overrides set (values parsed as YAML).

    Raises:
        ConfigError: an override without ``=`` or one that descends into a non-mapping.
    """
    result = copy.deepcopy(dict(data))
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"override {override!r} is not KEY=VALUE (e.g. train.iterations=200)"
            )
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        node = result
        parts = key.strip().split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {override!r}: {'.'.join(parts[: i + 1])} is a value")
            node = child
        node[parts[-1]] = value
    return result


def _validate_data(data: DataSection) -> None:
    for key, spec in [("data.source", data.source)] + [
        (f"data.targets[{i}]", t) for i, t in enumerate(data.targets)
    ]:
        try:
            parse_dataset_spec(spec)
        except DatasetError as exc:
            raise ConfigError(f"{key}: {exc}") from exc
    for name, pair in (("data.scale", data.scale), ("data.crop_size", data.crop_size)):
        _check(pair is None or min(pair) > 0, f"{name} must be two positive integers")
    _check(0.0 < data.cat_max_ratio <= 1.0, "data.cat_max_ratio must be in (0, 1]")
    _check(0.0 <= data.flip_prob <= 1.0, "data.flip_prob must be in [0, 1]")
    _check(data.num_workers >= 0, "data.num_workers must be >= 0")


def _validate_train(train: TrainSection) -> None:
    _check(train.iterations >= 1, "train.iterations must be >= 1")
    _check(train.batch_size >= 1, "train.batch_size must be >= 1")
    _check(train.lr > 0, "train.lr must be > 0")
    _check(train.weight_decay >= 0, "train.weight_decay must be >= 0")
    _check(train.backbone_lr_mult >= 0, "train.backbone_lr_mult must be >= 0")
    _check(train.constant_iterations >= 0, "train.constant_iterations must be >= 0")
    _check(train.poly_power > 0, "train.poly_power must be > 0")
    _check(train.grad_clip >= 0, "train.grad_clip must be >= 0 (0: no clipping)")
    _check(train.log_interval >= 1, "train.log_interval must be >= 1")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _read_builtin(name: str) -> dict[str, Any]:
    root = resources.files(_CONFIG_PACKAGE)
    for suffix in _SUFFIXES:
        candidate = root.joinpath(name + suffix)
        if candidate.is_file():
            data = parse_mapping(candidate.read_text(encoding="utf-8"), name + suffix)
            data.setdefault("name", name)
            return data
    raise ConfigError(
        f"unknown run config {name!r}; built-in: {', '.join(available_run_configs())} "
        "(or give a path to a YAML file)"
    )
