"""MMSegmentation checkpoints load with their metadata as inert stand-ins; code never runs."""

from __future__ import annotations

import os
import pickle
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from test.convert.mmseg_fixtures import (
    HistoryBuffer,
    register_fake_mmengine,
    write_reference_checkpoint,
)
from vltseg_ros.convert.safe_load import InertObject, load_with_inert_metadata
from vltseg_ros.errors import CheckpointError, CheckpointNotFoundError


def _small_state() -> OrderedDict[str, torch.Tensor]:
    return OrderedDict(
        {"backbone.pos_embed": torch.randn(1, 5, 4), "decode_head.x": torch.ones(3)}
    )


def test_mmseg_checkpoint_loads_with_metadata_as_stand_ins(tmp_path, monkeypatch) -> None:
    register_fake_mmengine(monkeypatch)
    state = _small_state()
    path = write_reference_checkpoint(tmp_path / "ckpt.pth", state)
    with pytest.raises(pickle.UnpicklingError):  # why stand-ins are needed
        torch.load(path, weights_only=True)
    obj, names = load_with_inert_metadata(path)
    for key, value in state.items():
        assert torch.equal(obj["state_dict"][key], value)
    assert "mmengine.logging.history_buffer.HistoryBuffer" in names
    assert any(name.startswith("numpy.") for name in names)
    assert all(name.split(".")[0] in ("mmengine", "numpy") for name in names)
    meta = obj["meta"]
    assert meta["iter"] == 5000 and meta["cfg"].startswith("model = dict")
    assert meta["dataset_meta"]["classes"] == ("road", "sidewalk")
    for key in ("seed", "lr", "dtype", "loss_history"):
        assert isinstance(meta[key], InertObject), key
    history = meta["loss_history"]
    assert history.source == "mmengine.logging.history_buffer.HistoryBuffer"
    assert type(history).__module__ == "mmengine.logging.history_buffer"
    assert set(history.state) == {"_max_length", "_log_history", "_count_history"}
    assert isinstance(obj["message_hub"]["log_scalars"]["loss"], InertObject)


def test_stand_ins_are_not_left_allowed(tmp_path, monkeypatch) -> None:
    register_fake_mmengine(monkeypatch)
    before = set(torch.serialization.get_safe_globals())
    load_with_inert_metadata(write_reference_checkpoint(tmp_path / "c.pth", _small_state()))
    assert set(torch.serialization.get_safe_globals()) == before


class _RunsSystem:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _RunsEval:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"__import__('pathlib').Path({str(self.marker)!r}).touch()",))


@pytest.mark.parametrize(("evil", "named"), [(_RunsSystem, "system"), (_RunsEval, "eval")])
def test_code_running_pickle_is_refused_and_nothing_runs(tmp_path, evil, named) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"meta": {"x": evil(marker)}, "state_dict": _small_state()}, path)
    with pytest.raises(CheckpointError, match=rf"refusing to load .*{named}"):
        load_with_inert_metadata(path)
    assert not marker.exists()


def test_callable_under_a_metadata_package_name_only_becomes_inert(tmp_path, monkeypatch) -> None:
    """Even a real function named under mmengine.* is replaced: its arguments are kept, not run."""
    marker = tmp_path / "ran"

    def boom(path: str) -> None:
        Path(path).touch()

    module = types.ModuleType("mmengine.hooks_evil")
    boom.__module__, boom.__qualname__ = module.__name__, "boom"
    module.boom = boom
    monkeypatch.setitem(sys.modules, "mmengine", types.ModuleType("mmengine"))
    monkeypatch.setitem(sys.modules, module.__name__, module)

    class CallsBoom:
        def __reduce__(self):
            return (boom, (str(marker),))

    path = tmp_path / "c.pth"
    torch.save({"meta": {"hook": CallsBoom(), "n": np.float32(2)}, "state_dict": {}}, path)
    obj, names = load_with_inert_metadata(path)
    assert not marker.exists()
    assert "mmengine.hooks_evil.boom" in names
    assert isinstance(obj["meta"]["hook"], InertObject)
    assert obj["meta"]["hook"].args == (str(marker),)


def test_unreadable_files(tmp_path) -> None:
    with pytest.raises(CheckpointNotFoundError):
        load_with_inert_metadata(tmp_path / "missing.pth")
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        load_with_inert_metadata(text)
    good = tmp_path / "good.pth"
    torch.save({"state_dict": _small_state()}, good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError):
        load_with_inert_metadata(truncated)


def test_history_buffer_fixture_is_the_mmengine_name() -> None:
    assert f"{HistoryBuffer.__module__}.{HistoryBuffer.__qualname__}" == (
        "mmengine.logging.history_buffer.HistoryBuffer"
    )
