"""Nothing half-written: SIGTERM (like Ctrl-C) and a full disk leave either nothing or a complete
result at every output path, the error names the path, and the next run to the same path works.

A full disk is simulated: the function that writes the bytes raises ``OSError(ENOSPC)`` part
way (after writing some of them, as a real full disk does).
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from rosbags.rosbag2 import Reader
from rosbags.rosbag2.storage_mcap import McapWriter
from safetensors import SafetensorError

from test.bag import START_NS
from test.data.layouts import image_rgb, write_image
from vltseg_ros.bag.make_bag import BagLayout, synthetic_frames, write_frames_bag
from vltseg_ros.cli.main import main, sigterm_interrupts
from vltseg_ros.errors import CheckpointError
from vltseg_ros.io.files import PARTIAL, atomic_path, staged, write_bytes
from vltseg_ros.model import checkpoint as checkpoint_module
from vltseg_ros.model.checkpoint import save_checkpoint
from vltseg_ros.model.segmentor import build_model
from vltseg_ros.training.state import save_state

FAST = ["--model", "tiny", "--inference.mode", "whole", "--inference.whole-size", "64", "128"]


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if PARTIAL in p.name]


def _readable(bag: Path) -> int:
    """Messages of a bag rosbags opens (it fails on a truncated one)."""
    with Reader(bag) as reader:
        return sum(1 for _ in reader.messages())


# --- SIGTERM ------------------------------------------------------------------------------------


def _sigterm_while_staging(argv: list[str], tmp_path: Path) -> None:
    """Start ``vltseg *argv``, SIGTERM it once it stages its output, and check that it exited
    130 with the one-line interruption message and no traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "vltseg_ros.cli.main", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_staging(proc, tmp_path)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.rstrip().endswith(f"vltseg {argv[0]}: interrupted by SIGTERM"), err[-300:]
    assert "Traceback" not in err


def test_sigterm_during_make_bag_leaves_nothing_and_the_next_run_works(tmp_path: Path) -> None:
    out = tmp_path / "frames_bag"
    argv = ["make-bag", "-", str(out), "--synthetic", "5000", "--synthetic-size", "64", "128"]
    _sigterm_while_staging(argv, tmp_path)
    assert not out.exists() and not _leftovers(tmp_path)
    again = ["make-bag", "-", str(out), "--synthetic", "2", "--synthetic-size", "64", "128"]
    assert main(again) == 0
    assert _readable(out) == 6  # 2 images, 2 labels, 2 camera infos


def test_sigterm_during_bag_eval_write_bag_leaves_nothing(tmp_path: Path) -> None:
    bag, out = tmp_path / "input", tmp_path / "segmented"
    layout = BagLayout(start_ns=START_NS)
    write_frames_bag(bag, synthetic_frames(400, 64, 128), layout)
    argv = ["bag-eval", str(bag), "--out", str(tmp_path / "eval"), "--write-bag", str(out)]
    _sigterm_while_staging([*argv, *FAST], tmp_path)
    assert not out.exists() and not _leftovers(tmp_path)
    assert not (tmp_path / "eval" / "report.md").exists()
    small = tmp_path / "small"
    write_frames_bag(small, synthetic_frames(2, 64, 128), layout)
    assert main(["bag-eval", str(small), "--write-bag", str(out), *FAST]) == 0
    assert _readable(out) > 0


def _wait_for_staging(proc: subprocess.Popen, folder: Path, timeout: float = 240.0) -> None:
    """Until ``proc`` has a staging folder in ``folder``, then one second more (it is writing
    frames then)."""
    deadline = time.monotonic() + timeout
    while not _leftovers(folder):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the command never started writing"
        time.sleep(0.05)
    time.sleep(1.0)
    assert proc.poll() is None, "the command finished before it could be interrupted"


def test_sigterm_raises_keyboard_interrupt_inside_and_is_restored_after() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"), sigterm_interrupts():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this
    assert signal.getsignal(signal.SIGTERM) is before


# --- a full disk --------------------------------------------------------------------------------


def _full_disk_after(monkeypatch, calls: int) -> None:
    """``Path.write_bytes`` writes half its data and raises ENOSPC from its ``calls``-th call."""
    original = Path.write_bytes
    count = {"n": 0}

    def write_bytes(self: Path, data) -> int:
        count["n"] += 1
        if count["n"] >= calls:
            original(self, bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)


def test_segment_on_a_full_disk_names_the_file_and_leaves_no_partial_set(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    images = []
    for name in ("a", "b"):
        images.append(tmp_path / f"{name}.png")
        write_image(images[-1], image_rgb(len(images), (64, 128)))
    out = tmp_path / "out"
    _full_disk_after(monkeypatch, calls=7)  # a's four PNGs, then b's third
    code = main(["segment", *map(str, images), "--out", str(out), *FAST])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        f"vltseg segment: error: No space left on device: {out / 'b_overlay.png'}"
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "a_anomaly.png",
        "a_confidence.png",
        "a_labels.png",
        "a_overlay.png",
    ]  # the complete set of a, nothing of b


@pytest.mark.parametrize("command", ["make-bag", "bag-eval"])
def test_a_bag_on_a_full_disk_is_named_and_removed(
    tmp_path: Path, monkeypatch, capsys, command
) -> None:
    bag, out = tmp_path / "input", tmp_path / "written"
    write_frames_bag(bag, synthetic_frames(6, 64, 128), BagLayout(start_ns=START_NS))
    original = McapWriter.write
    count = {"n": 0}

    def write(self, connection, timestamp, data) -> None:
        count["n"] += 1
        if count["n"] > 10:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        original(self, connection, timestamp, data)

    monkeypatch.setattr(McapWriter, "write", write)
    argv = {
        "make-bag": [
            "make-bag",
            "-",
            str(out),
            "--synthetic",
            "6",
            "--synthetic-size",
            "64",
            "128",
        ],
        "bag-eval": ["bag-eval", str(bag), "--write-bag", str(out), *FAST],
    }[command]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line == f"vltseg {command}: error: cannot write bag {out}: No space left on device"
    assert not out.exists() and not _leftovers(tmp_path)
    monkeypatch.setattr(McapWriter, "write", original)
    assert main(argv) == 0  # the path is free for the next run
    assert _readable(out) > 0


def test_a_checkpoint_on_a_full_disk(tmp_path: Path, monkeypatch) -> None:
    def save_file(tensors, path, metadata=None) -> None:
        Path(path).write_bytes(b"partial")
        raise SafetensorError("Error while serializing: I/O error: No space left on device")

    monkeypatch.setattr(checkpoint_module, "save_file", save_file)
    path = tmp_path / "model.safetensors"
    with pytest.raises(CheckpointError, match=f"cannot write checkpoint '{path}'.*No space"):
        save_checkpoint(build_model("tiny"), path)
    assert list(tmp_path.iterdir()) == []


def test_a_training_state_on_a_full_disk(tmp_path: Path, monkeypatch) -> None:
    def full(data, handle) -> None:  # what torch.save raises when the disk fills
        handle.write(b"PK\x03\x04 partial")
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos")  # noqa: B904

    monkeypatch.setattr(torch, "save", full)
    path = tmp_path / "iter_000010.state.pt"
    with pytest.raises(OSError, match="No space left") as caught:
        save_state(path, {"iteration": 10})
    assert caught.value.filename == str(path)
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_export_leaves_no_onnx_file(tmp_path: Path, monkeypatch) -> None:
    from vltseg_ros.export import onnx_export

    def interrupted(path: str) -> None:  # SIGTERM while the written file is being checked
        assert Path(path).stat().st_size > 0 and Path(path).parent != tmp_path
        raise KeyboardInterrupt("SIGTERM")

    monkeypatch.setattr(onnx_export.onnx.checker, "check_model", interrupted)
    with pytest.raises(KeyboardInterrupt):
        onnx_export.export_onnx(build_model("tiny"), tmp_path / "tiny.onnx", input_size=(64, 64))
    assert list(tmp_path.iterdir()) == []


# --- the helper ---------------------------------------------------------------------------------


def test_atomic_path_keeps_the_old_file_until_the_new_one_is_complete(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    write_bytes(path, b"old")
    with pytest.raises(OSError) as caught, atomic_path(path) as staged_path:
        assert staged_path.name == path.name and staged_path.parent != tmp_path
        staged_path.write_bytes(b"ne")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert caught.value.filename == str(path)  # the destination, not the staging path
    assert path.read_bytes() == b"old" and not _leftovers(tmp_path)
    write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and not _leftovers(tmp_path)


def test_staged_files_arrive_together_or_not_at_all(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), staged(tmp_path, "frame") as stage:
        (stage / "a.png").write_bytes(b"a")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with staged(tmp_path, "frame") as stage:
        (stage / "a.png").write_bytes(b"a")
        (stage / "b.png").write_bytes(b"b")
        assert list(tmp_path.iterdir()) == [stage]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]
