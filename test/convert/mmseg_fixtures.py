"""Builders of VLTSeg-reference (MMSegmentation 1.x) checkpoints for the conversion tests.

The backbone weights are the golden reference run (test/golden/vltseg_reference_eva02_tiny.*);
the head weights come from a seeded Mask2Former of the matching tiny model config, renamed to
``decode_head.*`` as MMSegmentation stores them. ``meta`` / ``message_hub`` hold objects like
MMEngine's: an ``mmengine.logging.history_buffer.HistoryBuffer`` stand-in class registered
under that module name, numpy arrays, scalars and dtypes.
"""

from __future__ import annotations

import sys
import types
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import Tensor

from vltseg_ros.config.model_config import ModelConfig, load_model_config
from vltseg_ros.model.segmentor import VLTSeg

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
GOLDEN_WEIGHTS = GOLDEN / "vltseg_reference_eva02_tiny.safetensors"
TINY_MODEL = GOLDEN / "vltseg_reference_eva02_tiny_model.yaml"
FULL_KEYS = GOLDEN / "vltseg_reference_full_keys.json"


class HistoryBuffer:
    """Shaped like ``mmengine.logging.HistoryBuffer`` (pickled under that module name).

    With ``statistics`` it also carries its statistics methods, as the buffers in the
    ``message_hub`` of MMEngine's training checkpoints do: pickle protocol 2 writes each as
    ``builtins.getattr(HistoryBuffer, "mean")``.
    """

    def __init__(self, log: list[float], count: list[int], statistics: bool = False) -> None:
        self._max_length = 1000000
        self._log_history = np.array(log)
        self._count_history = np.array(count)
        if statistics:
            methods = (HistoryBuffer.min, HistoryBuffer.max, HistoryBuffer.current)
            self._statistics_methods = {m.__name__: m for m in (*methods, HistoryBuffer.mean)}

    def mean(self) -> float:
        return float(self._log_history.sum() / self._count_history.sum())

    def min(self) -> float:
        return float(self._log_history.min())

    def max(self) -> float:
        return float(self._log_history.max())

    def current(self) -> float:
        return float(self._log_history[-1])


HistoryBuffer.__module__ = "mmengine.logging.history_buffer"


def register_fake_mmengine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``mmengine.logging.history_buffer.HistoryBuffer`` picklable (test-only modules)."""
    names = ("mmengine", "mmengine.logging", "mmengine.logging.history_buffer")
    for name in names:
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    sys.modules[names[-1]].HistoryBuffer = HistoryBuffer


def golden() -> dict[str, Tensor]:
    """The golden file's tensors: ``backbone.*``, ``input``, ``output.0``-``output.3``."""
    return load_file(str(GOLDEN_WEIGHTS))


def tiny_config() -> ModelConfig:
    """Our model config with the golden backbone's structure."""
    return load_model_config(TINY_MODEL)


def reference_state_dict(seed: int = 0) -> OrderedDict[str, Tensor]:
    """A full reference ``state_dict`` (float32) for the tiny config: golden backbone + head."""
    state: OrderedDict[str, Tensor] = OrderedDict()
    for key, value in golden().items():
        if key.startswith("backbone."):
            state[key] = value.float() if value.is_floating_point() else value
    torch.manual_seed(seed)
    head = VLTSeg(tiny_config()).head
    state.update((f"decode_head.{k}", v.clone()) for k, v in head.state_dict().items())
    return state


def mmengine_meta() -> dict[str, Any]:
    """``meta`` as MMEngine's runner writes it, with numpy values and a HistoryBuffer."""
    return {
        "mmengine_version": "0.10.5",
        "cfg": "model = dict(type='EncoderDecoder', ...)",
        "seed": np.int64(1234),
        "iter": 5000,
        "dataset_meta": {"classes": ("road", "sidewalk"), "palette": [[128, 64, 128]]},
        "lr": np.float64(1.5e-6),
        "dtype": np.dtype("float32"),
        "loss_history": HistoryBuffer([0.9, 0.5, 0.25], [1, 1, 1]),
    }


def training_message_hub() -> dict[str, Any]:
    """``message_hub`` of an unpublished MMEngine training checkpoint (``iter_N.pth``): its
    history buffers carry their statistics methods (pickled through ``builtins.getattr``)."""
    return {
        "log_scalars": OrderedDict(
            loss=HistoryBuffer([0.9, 0.3], [1, 1], statistics=True),
            lr=HistoryBuffer([1e-4], [1], statistics=True),
        ),
        "runtime_info": {"iter": 4000, "epoch": 0},
        "resumed_keys": {"iter": True},
    }


def write_reference_checkpoint(
    path: Path,
    state: OrderedDict[str, Tensor],
    meta: dict[str, Any] | None = None,
    message_hub: dict[str, Any] | None = None,
) -> Path:
    """``torch.save`` of an MMSegmentation-style checkpoint (register_fake_mmengine first)."""
    meta = mmengine_meta() if meta is None else meta
    if message_hub is None:
        message_hub = {"log_scalars": OrderedDict(loss=HistoryBuffer([0.3], [1]))}
    checkpoint = {"meta": meta, "state_dict": state, "message_hub": message_hub}
    torch.save(checkpoint, path)
    return path
