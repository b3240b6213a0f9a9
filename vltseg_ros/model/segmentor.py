"""The VLTSeg segmentor: CLIP / EVA-CLIP encoder -> simple feature pyramid -> Mask2Former head.

Every model is first built on PyTorch's ``meta`` device (shapes only, no memory;
:func:`expected_layout`): an architecture over :data:`MAX_PARAMETERS` weights is refused before
anything is allocated, and checkpoints are compared with that layout before the real build.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from vltseg_ros.config.model_config import (
    MAX_PARAMETERS,
    REFERENCE_ARCHITECTURE,
    ModelConfig,
    load_model_config,
)
from vltseg_ros.errors import ConfigError, VLTSegError
from vltseg_ros.model.encoder import ClipEncoder
from vltseg_ros.model.mask2former_head import Mask2FormerHead
from vltseg_ros.model.pyramid import SimpleFeaturePyramid


class VLTSeg(nn.Module):
    """Encoder, pyramid and head built from one :class:`ModelConfig`.

    State-dict layout: ``encoder.visual.*`` (open_clip's tower keys), ``neck.fpn1.*`` /
    ``neck.fpn2.*`` and ``head.*`` (MMDetection's Mask2Former key names).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        if torch.get_default_device().type != "meta":
            expected_layout(config)  # refuses an oversized architecture before allocating it
        self.config = config
        self.encoder = ClipEncoder(config.encoder)
        self.neck = SimpleFeaturePyramid(self.encoder.width)
        self.head = Mask2FormerHead(
            [self.encoder.width] * 4, config.class_set.num_classes, config.head
        )

    @property
    def min_input_size(self) -> tuple[int, int]:
        """Smallest (H, W) the network accepts: 2 patches, so the 2x max-pooled level exists."""
        ph, pw = self.encoder.patch_size
        return 2 * ph, 2 * pw

    def features(self, images: Tensor) -> list[Tensor]:
        """Pyramid features (4 levels, high to low resolution) of normalized RGB images."""
        return self.neck(self.encoder(images))

    def forward(self, images: Tensor) -> Tensor:
        """Raw Mask2Former semantic scores at the input resolution.

        Args:
            images: (N, 3, H, W) float, RGB normalized with the config's mean / std.

        Returns:
            (N, num_classes, H, W) float, sum over queries of class probability (no-object
            dropped) times sigmoid mask; not normalized over classes (see Segmenter).
        """
        return self.head.predict_semantic(self.features(images), tuple(images.shape[-2:]))


def build_model(config: ModelConfig | str | Path) -> VLTSeg:
    """Build a model with freshly initialized (random) weights.

    Args:
        config: a :class:`ModelConfig`, a built-in model name (``vltseg_ros.available_models()``)
            or the path of a YAML / JSON model config file.
    """
    if not isinstance(config, ModelConfig):
        config = load_model_config(config)
    return VLTSeg(config)


@dataclass(frozen=True)
class StateLayout:
    """Names, shapes and dtypes of a state dict (of a model, or of a checkpoint's tensors).

    Attributes:
        shapes: key -> shape.
        dtypes: key -> dtype (floating for weights; BatchNorm's ``num_batches_tracked`` int64).
    """

    shapes: Mapping[str, tuple[int, ...]]
    dtypes: Mapping[str, torch.dtype]

    @classmethod
    def of(cls, state: nn.Module | Mapping[str, Tensor]) -> StateLayout:
        """The layout of a module's state dict, or of a mapping of tensors (meta ones too)."""
        tensors = state.state_dict() if isinstance(state, nn.Module) else state
        return cls(
            {k: tuple(v.shape) for k, v in tensors.items()},
            {k: v.dtype for k, v in tensors.items()},
        )

    @property
    def weights(self) -> int:
        """Elements of all tensors together."""
        return sum(math.prod(shape) for shape in self.shapes.values())


_LAYOUTS: dict[str, StateLayout] = {}
_LAYOUTS_LOCK = threading.Lock()
_CACHED_LAYOUTS = 16


def expected_layout(config: ModelConfig) -> StateLayout:
    """The state-dict layout of ``VLTSeg(config)``, from a build on the ``meta`` device: no
    tensor memory, well under a second for the largest architecture, and cached per
    architecture (encoder, head and number of classes).

    Raises:
        ConfigError: the architecture cannot be built (naming why), or it has more than
            :data:`MAX_PARAMETERS` weights.
    """
    architecture = {
        "encoder": dataclasses.asdict(config.encoder),
        "head": dataclasses.asdict(config.head),
        "classes": config.class_set.num_classes,
    }
    key = json.dumps(architecture, sort_keys=True, default=str)
    with _LAYOUTS_LOCK:
        layout = _LAYOUTS.get(key)
    if layout is not None:
        return layout
    try:
        with torch.device("meta"):
            layout = StateLayout.of(VLTSeg(config))
    except VLTSegError:
        raise
    except Exception as exc:  # open_clip / timm reject impossible sizes in their own ways
        raise ConfigError(
            f"model {config.name!r} cannot be built from its config: {type(exc).__name__}: "
            f"{_first_line(exc)}"
        ) from exc
    if layout.weights > MAX_PARAMETERS:
        raise ConfigError(
            f"model {config.name!r} declares {layout.weights / 1e6:.0f} M weights "
            f"({layout.weights * 4 / 1e9:.1f} GB in float32), more than the bound of "
            f"{MAX_PARAMETERS / 1e6:.0f} M (about twice {REFERENCE_ARCHITECTURE}, 342 M)"
        )
    with _LAYOUTS_LOCK:
        if len(_LAYOUTS) >= _CACHED_LAYOUTS:
            _LAYOUTS.pop(next(iter(_LAYOUTS)))
        _LAYOUTS[key] = layout
    return layout


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
