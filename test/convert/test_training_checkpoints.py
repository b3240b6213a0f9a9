"""MMEngine training checkpoints (``message_hub`` with HistoryBuffer statistics methods, pickled
through ``builtins.getattr``) convert without running anything; real getattr gadgets are still
refused and never run."""

from __future__ import annotations

import importlib
import pickletools
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
import torch

from test.convert.mmseg_fixtures import (
    TINY_MODEL,
    HistoryBuffer,
    reference_state_dict,
    register_fake_mmengine,
    training_message_hub,
    write_reference_checkpoint,
)
from vltseg_ros.convert.pipeline import convert_vltseg_checkpoint
from vltseg_ros.convert.safe_load import InertObject, load_with_inert_metadata
from vltseg_ros.errors import CheckpointError
from vltseg_ros.model.checkpoint import load_model


def _pickle_ops(path: Path) -> list[tuple[str, Any]]:
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
        data = archive.read(name)
    return [(op.name, arg) for op, arg, _ in pickletools.genops(data)]


def test_training_checkpoint_uses_getattr_and_loads_inert(tmp_path, monkeypatch) -> None:
    register_fake_mmengine(monkeypatch)
    state = OrderedDict(
        {"backbone.pos_embed": torch.randn(1, 5, 4), "decode_head.x": torch.ones(3)}
    )
    path = write_reference_checkpoint(
        tmp_path / "iter_4000.pth", state, message_hub=training_message_hub()
    )
    # the pattern of MMEngine's checkpoints: protocol 2, getattr(HistoryBuffer, "<method>")
    ops = _pickle_ops(path)
    assert ops[0] == ("PROTO", 2)
    assert ("GLOBAL", "__builtin__ getattr") in ops
    assert ("GLOBAL", "mmengine.logging.history_buffer HistoryBuffer") in ops

    obj, names = load_with_inert_metadata(path)
    assert "builtins.getattr" in names
    for key, value in state.items():
        assert torch.equal(obj["state_dict"][key], value)
    loss = obj["message_hub"]["log_scalars"]["loss"]
    assert isinstance(loss, InertObject)
    methods = loss.state["_statistics_methods"]
    assert set(methods) == {"min", "max", "current", "mean"}
    for name, stand_in in methods.items():  # inert stand-ins, not the real methods
        assert issubclass(stand_in, InertObject)
        assert stand_in.source == f"mmengine.logging.history_buffer.HistoryBuffer.{name}"
        assert stand_in is not getattr(HistoryBuffer, name)
    assert obj["message_hub"]["runtime_info"] == {"iter": 4000, "epoch": 0}


def test_training_checkpoint_converts_exactly(tmp_path, monkeypatch) -> None:
    register_fake_mmengine(monkeypatch)
    state = reference_state_dict()
    source = write_reference_checkpoint(
        tmp_path / "iter_4000.pth", state, message_hub=training_message_hub()
    )
    out = tmp_path / "converted.safetensors"
    result = convert_vltseg_checkpoint(source, out, model=TINY_MODEL)
    assert "builtins.getattr" in result.stand_ins
    weights = load_model(out).state_dict()
    head = {k: v for k, v in state.items() if k.startswith("decode_head.")}
    assert len(head) > 50
    for key, value in head.items():
        assert torch.equal(weights[key.replace("decode_head.", "head.", 1)], value), key


# ---- gadgets: each would touch ``marker`` if anything real were reached -----------------------


class _Import:
    """Pickles as ``importlib.import_module(name)``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self):
        return (importlib.import_module, (self.name,))


class _GetAttr:
    """Pickles as ``getattr(owner, name)``; callable, so that :class:`_Call` may call it."""

    def __init__(self, owner: Any, name: Any) -> None:
        self.owner, self.name = owner, name

    def __call__(self, *args: Any) -> None:
        raise AssertionError("never called while pickling")

    def __reduce__(self):
        return (getattr, (self.owner, self.name))


class _Call:
    """Pickles as ``func(*args)``."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def _gadgets(marker: Path) -> dict[str, tuple[Any, str]]:
    """Gadget -> the name the refusal must mention."""
    touch = f"touch {marker}"
    code = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    return {
        "getattr(os, 'system')": (
            _Call(_GetAttr(_Import("os"), "system"), touch),
            "import_module",
        ),
        "getattr(builtins, 'eval')": (
            _Call(_GetAttr(_Import("builtins"), "eval"), code),
            "import_module",
        ),
        "getattr(subprocess, 'call')": (
            _Call(_GetAttr(_Import("subprocess"), "call"), ["touch", str(marker)]),
            "import_module",
        ),
        "getattr of a dunder of HistoryBuffer": (
            _Call(_GetAttr(HistoryBuffer, "__init__"), None, [1.0], [1]),
            "getattr(mmengine.logging.history_buffer.HistoryBuffer, '__init__')",
        ),
        "getattr of a method's globals": (
            _GetAttr(_GetAttr(HistoryBuffer, "mean"), "__globals__"),
            "getattr(mmengine.logging.history_buffer.HistoryBuffer.mean, '__globals__')",
        ),
        "getattr of a string": (_GetAttr("", "__class__"), "getattr(a str, '__class__')"),
        "getattr of a class torch allows": (
            _Call(_GetAttr(OrderedDict, "fromkeys"), ["a"]),
            "getattr(class collections.OrderedDict, 'fromkeys')",
        ),
        "getattr with a default": (
            _Call(getattr, HistoryBuffer, "mean", None),
            "getattr(mmengine.logging.history_buffer.HistoryBuffer, 'mean')",
        ),
    }


@pytest.mark.parametrize("gadget", list(_gadgets(Path("x"))))
def test_getattr_gadgets_are_refused_and_nothing_runs(tmp_path, monkeypatch, gadget) -> None:
    register_fake_mmengine(monkeypatch)
    marker = tmp_path / "pwned"
    payload, named = _gadgets(marker)[gadget]
    path = tmp_path / "evil.pth"
    hub = training_message_hub()
    hub["runtime_info"]["hook"] = payload
    write_reference_checkpoint(path, OrderedDict(w=torch.zeros(2)), message_hub=hub)
    assert ("GLOBAL", "__builtin__ getattr") in _pickle_ops(path)
    with pytest.raises(CheckpointError, match="refusing to load") as info:
        load_with_inert_metadata(path)
    assert named in str(info.value)
    assert "\n" not in str(info.value)
    assert not marker.exists()
