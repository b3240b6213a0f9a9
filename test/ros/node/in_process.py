"""vltseg_node in the test's own process: built from a parameter dict, spun by the Peer's
executor, with a fake engine (known labels, no network) or a fault-injecting one around the
real one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from rclpy.parameter import Parameter
from torch import Tensor

from vltseg_ros.config.model_config import load_model_config
from vltseg_ros.engines.base import Engine
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.ros.node.vltseg_node import VLTSegNode

Fault = Callable[[Tensor, int], BaseException | None]
"""(engine inputs, number of this call from 1) -> the exception to raise, or None."""


def parameters(tree: dict[str, Any], prefix: str = "") -> list[Parameter]:
    """Nested parameter dict (as in a params file) -> rclpy Parameters with dotted names."""
    flat: list[Parameter] = []
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.extend(parameters(value, f"{prefix}{key}."))
        else:
            flat.append(Parameter(f"{prefix}{key}", value=value))
    return flat


class FaultyEngine(Engine):
    """Runs ``inner``, but raises what ``fault`` returns for a call instead.

    Attributes:
        calls: the batch size of every call, in order (failed ones included).
        released: how often :meth:`release_cached_memory` ran.
    """

    def __init__(self, inner: Engine, fault: Fault) -> None:
        self.inner, self.fault = inner, fault
        self.name, self.config = inner.name, inner.config
        self.device, self.precision = inner.device, inner.precision
        self.calls: list[int] = []
        self.released = 0

    @property
    def patch_size(self) -> tuple[int, int]:
        return self.inner.patch_size

    @property
    def batch_size(self) -> int | None:
        return self.inner.batch_size

    @property
    def description(self) -> str:
        return f"faulty {self.inner.description}"

    def __call__(self, inputs: Tensor) -> Tensor:
        self.calls.append(len(inputs))
        error = self.fault(inputs, len(self.calls))
        if error is not None:
            raise error
        return self.inner(inputs)

    def close(self) -> None:
        self.inner.close()

    def release_cached_memory(self) -> None:
        self.released += 1
        super().release_cached_memory()


class FakeEngine(Engine):
    """No network (instant): where a pixel's red value is r (0-255), class min(r // 14, 18)
    scores 1.0 and every other class 0.1, so the labels of a frame are known from it and the
    confidence is 1 / 2.8 everywhere. The tiny model's config (patch 8, 64x64 crops)."""

    name = "fake"
    CONFIDENCE = 1.0 / 2.8

    def __init__(self, batch_size: int | None = None) -> None:
        self.config = load_model_config("tiny")
        self.device, self.precision = torch.device("cpu"), "fp32"
        self._batch_size = batch_size
        self.calls: list[int] = []

    @staticmethod
    def label(red: int) -> int:
        """The label of a pixel whose red value is ``red``."""
        return min(red // 14, 18)

    @property
    def patch_size(self) -> tuple[int, int]:
        return (8, 8)

    @property
    def batch_size(self) -> int | None:
        return self._batch_size

    @property
    def description(self) -> str:
        return "fake engine (labels from the red channel)"

    def __call__(self, inputs: Tensor) -> Tensor:
        self.check_inputs(inputs)
        self.calls.append(len(inputs))
        norm = self.config.normalization
        red = inputs[:, 0] * norm.std[0] + norm.mean[0]
        classes = (red.round().clamp(0, 255) // 14).clamp(max=18).long()
        scores = torch.full((len(inputs), 19, *inputs.shape[-2:]), 0.1)
        return scores.scatter_(1, classes.unsqueeze(1), 1.0)

    def close(self) -> None:
        pass


def replace_engine(
    monkeypatch: pytest.MonkeyPatch, make: Callable[[Segmenter, tuple, dict], Engine]
) -> list[Engine]:
    """Make every Segmenter.load put ``make(real segmenter, args, kwargs)`` in place of its
    engine; returns the list the engines are appended to."""
    engines: list[Engine] = []
    load = Segmenter.load.__func__

    def patched_load(cls: type[Segmenter], *args: Any, **kwargs: Any) -> Segmenter:
        segmenter = load(cls, *args, **kwargs)
        segmenter.engine = make(segmenter, args, kwargs)
        engines.append(segmenter.engine)
        return segmenter

    monkeypatch.setattr(Segmenter, "load", classmethod(patched_load))
    return engines


def use_fake_engine(monkeypatch: pytest.MonkeyPatch) -> list[Engine]:
    """Every model the node loads runs on a :class:`FakeEngine` (with its batch size)."""
    return replace_engine(monkeypatch, lambda seg, *_: FakeEngine(seg.batch_size))


def inject_faults(monkeypatch: pytest.MonkeyPatch, fault: Fault) -> list[Engine]:
    """Make every Segmenter.load wrap its real engine in a :class:`FaultyEngine`."""
    return replace_engine(monkeypatch, lambda seg, *_: FaultyEngine(seg.engine, fault))


def state(node: VLTSegNode) -> str:
    """The node's lifecycle state label, read in this process (rclpy has no public getter; the
    process-level tests ask the get_state service)."""
    return node._state_machine.current_state[1]


@contextmanager
def node_in_process(
    peer: Any, params: dict[str, Any], cli_args: list[str] | None = None
) -> Iterator[VLTSegNode]:
    """A VLTSegNode (not yet configured) spun by ``peer``'s executor; shut down afterwards."""
    node = VLTSegNode(parameter_overrides=parameters(params), cli_args=cli_args)
    peer.add(node)
    try:
        yield node
    finally:
        peer.remove(node)
        node.trigger_shutdown()
        node.destroy_node()
