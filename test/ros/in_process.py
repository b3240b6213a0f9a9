"""vltseg_node in the test's own process: built from a parameter dict, spun by the Peer's
executor, with an optional fault-injecting engine around the real one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from rclpy.parameter import Parameter
from torch import Tensor

from vltseg_ros.engines.base import Engine
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.ros.node import VLTSegNode

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
    def max_batch(self) -> int | None:
        return self.inner.max_batch

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


def inject_faults(monkeypatch: pytest.MonkeyPatch, fault: Fault) -> list[FaultyEngine]:
    """Make every Segmenter.load wrap its engine in a FaultyEngine; returns the list the
    engines are appended to."""
    engines: list[FaultyEngine] = []
    load = Segmenter.load.__func__

    def faulty_load(cls: type[Segmenter], *args: Any, **kwargs: Any) -> Segmenter:
        segmenter = load(cls, *args, **kwargs)
        segmenter.engine = FaultyEngine(segmenter.engine, fault)
        engines.append(segmenter.engine)
        return segmenter

    monkeypatch.setattr(Segmenter, "load", classmethod(faulty_load))
    return engines


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
