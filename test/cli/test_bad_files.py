"""Every subcommand given a missing file, an empty file, a folder, a file of the wrong type and
a truncated file: exit code 2 (1 for images that are skipped), no traceback, and a message that
names the file and the problem."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from test.data.layouts import image_rgb, write_grey, write_image
from vltseg_ros.cli.main import main
from vltseg_ros.model.checkpoint import save_checkpoint
from vltseg_ros.model.segmentor import build_model

FAST = ["--model", "tiny", "--inference.mode", "whole", "--inference.whole-size", "64", "128"]
KINDS = ("missing", "empty", "folder", "wrong type", "truncated")


def _truncate(source: Path, target: Path, fraction: float = 0.5) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Good files and their bad twins, made once for the module."""
    root = tmp_path_factory.mktemp("files")
    (root / "folder").mkdir()
    (root / "text.txt").write_text("hello, not what you expected\n")
    torch.manual_seed(0)
    model = build_model("tiny")
    save_checkpoint(model, root / "tiny.safetensors")
    torch.save(model.state_dict(), root / "tiny.pth")
    write_image(root / "image.png", image_rgb(0, (64, 128)))
    (root / "model.yaml").write_text(
        "encoder: {open_clip_model: ViT-S-16}\nclasses: cityscapes\ninference: {mode: whole}\n"
    )
    for i in range(2):
        write_image(root / f"cs/leftImg8bit/val/a/a_{i}_leftImg8bit.png", image_rgb(i, (64, 128)))
        write_grey(
            root / f"cs/gtFine/val/a/a_{i}_gtFine_labelTrainIds.png", np.zeros((64, 128), np.uint8)
        )
    synthetic = ["--synthetic", "2", "--synthetic-size", "64", "128"]
    assert main(["make-bag", "-", str(root / "bag"), *synthetic]) == 0
    return root


def _bad(files: Path, kind: str, suffix: str, good: str | None, wrong: str) -> Path:
    """A bad file of ``kind`` with ``suffix``: truncated copies of ``good``, ``wrong`` (a file
    name in ``files``) renamed for the wrong type."""
    target = files / f"{kind.replace(' ', '_')}{suffix}"
    if kind == "missing":
        return files / f"missing{suffix}"
    if kind == "folder":
        return files / "folder"
    if kind == "empty":
        target.write_bytes(b"")
    elif kind == "wrong type":
        shutil.copy(files / wrong, target)
    else:
        _truncate(files / good, target)
    return target


PROBLEMS = {
    "missing": "does not exist",
    "empty": r"is empty \(0 bytes\)",
    "folder": "is a folder, not a file",
}


def _run(argv: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    return code, err


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("suffix", "good", "wrong", "problems"),
    [
        (
            ".pth",
            "tiny.pth",
            "text.txt",
            {
                "wrong type": r"is not a PyTorch checkpoint: it starts with b'hell'",
                "truncated": "truncated or corrupt PyTorch file",
            },
        ),
        (
            ".safetensors",
            "tiny.safetensors",
            "image.png",
            {
                "wrong type": "cannot read safetensors file .*header too large",
                "truncated": "cannot read safetensors file .*incomplete metadata",
            },
        ),
    ],
)
@pytest.mark.parametrize("command", ["segment", "export", "bag-eval", "evaluate", "train"])
def test_bad_checkpoints(files, capsys, command, kind, suffix, good, wrong, problems) -> None:
    path = _bad(files, kind, suffix, good, wrong)
    out, dataset = files / "out" / command, files / "cs"
    argv = {
        "segment": ["segment", "--synthetic", "--out", str(out), "--checkpoint", str(path)],
        "export": ["export", "--out", str(out / "x.onnx"), "--checkpoint", str(path)],
        "bag-eval": ["bag-eval", str(files / "bag"), "--out", str(out), "--checkpoint", str(path)],
        "evaluate": ["evaluate", "--dataset", f"cityscapes:{dataset}", "--checkpoint", str(path)],
        "train": ["train", "tiny", f"model.init={path}", f"data.source=cityscapes:{dataset}"],
    }[command]
    if command in ("evaluate", "train"):
        argv += ["--out", str(out)]
    if suffix == ".pth" and command != "train":
        argv += ["--model", "tiny"]  # a state dict needs its architecture
    code, err = _run(argv, capsys)
    assert code == 2
    assert f"vltseg {command}: error: " in err
    assert str(path) in err
    assert re.search({**PROBLEMS, **problems}[kind], err), err


@pytest.mark.parametrize("kind", KINDS)
def test_bad_reference_checkpoint_to_convert(files, capsys, kind) -> None:
    path = _bad(files, kind, ".pth", "tiny.pth", "text.txt")
    code, err = _run(
        ["convert-checkpoint", str(path), str(files / "converted.safetensors")], capsys
    )
    problems = {
        **PROBLEMS,
        "wrong type": r"is not a PyTorch checkpoint: it starts with b'hell'",
        "truncated": "not a PyTorch checkpoint written by torch.save",
    }
    assert code == 2 and str(path) in err
    assert re.search(problems[kind], err), err


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", ["segment", "export", "train"])
def test_bad_config_files(files, capsys, command, kind) -> None:
    path = _bad(files, kind, ".yaml", "model.yaml", "image.png")
    out = files / "out" / command
    argv = {
        "segment": ["segment", "--synthetic", "--out", str(out), "--model", str(path)],
        "export": ["export", "--out", str(out / "x.onnx"), "--model", str(path)],
        "train": ["train", str(path), "--out", str(out)],
    }[command]
    code, err = _run(argv, capsys)
    problems = {
        **PROBLEMS,
        "wrong type": r"is not a UTF-8 text \(YAML / JSON\) file",
        "truncated": "cannot parse",
    }
    assert code == 2 and str(path) in err
    assert re.search(problems[kind], err), err


@pytest.mark.parametrize("kind", KINDS)
def test_bad_images_are_skipped_and_named(files, capsys, caplog, kind) -> None:
    path = _bad(files, kind, ".png", "image.png", "tiny.safetensors")
    good = files / "image.png"
    with caplog.at_level(logging.ERROR):
        code, _ = _run(
            ["segment", str(path), str(good), "--out", str(files / "seg"), *FAST], capsys
        )
    problems = {
        **PROBLEMS,
        "wrong type": r"not an image in a supported format \(JPEG, PNG",
        "truncated": r"is a truncated PNG image \(\d+ bytes, 128x64\)",
    }
    assert code == 1  # the bad image is skipped, the good one still segmented
    assert (files / "seg" / "image_labels.png").is_file()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and str(path) in errors[0] and errors[0].endswith("; skipped")
    assert re.search(problems[kind], errors[0]), errors


@pytest.mark.parametrize("kind", KINDS)
def test_bad_bags(files, capsys, kind) -> None:
    if kind in ("missing", "folder"):
        path = files / ("missing_bag" if kind == "missing" else "folder")
    else:
        path = files / f"{kind.replace(' ', '_')}_bag"
        shutil.copytree(files / "bag", path, dirs_exist_ok=True)
        storage = next(path.glob("*.mcap"))
        if kind == "empty":
            storage.write_bytes(b"")
        elif kind == "wrong type":
            shutil.copy(files / "image.png", storage)
        else:
            _truncate(files / "bag" / storage.name, storage)
    code, err = _run(["bag-eval", str(path), "--out", str(files / "be"), *FAST], capsys)
    problems = {
        "missing": "does not exist",
        "folder": "is not a rosbag2: expected a bag directory with metadata.yaml",
        "empty": "seems to be empty",
        "wrong type": "it is truncated, corrupt or not a rosbag2",
        "truncated": "it is truncated, corrupt or not a rosbag2",
    }
    assert code == 2 and str(path) in err
    assert re.search(problems[kind], err), err


@pytest.mark.parametrize("kind", KINDS)
def test_bad_image_folders(files, capsys, kind) -> None:
    folder = files / f"frames_{kind.replace(' ', '_')}"
    if kind == "wrong type":
        folder = files / "text.txt"  # a file where a folder belongs
    elif kind != "missing":
        folder.mkdir(exist_ok=True)  # "folder": a folder without images
        if kind == "empty":
            (folder / "a.png").write_bytes(b"")
        elif kind == "truncated":
            _truncate(files / "image.png", folder / "a.png")
    code, err = _run(["make-bag", str(folder), str(files / f"bag_{id(folder)}")], capsys)
    problems = {
        "missing": "does not exist or is not a folder",
        "wrong type": "does not exist or is not a folder",
        "folder": "no image files",
        "empty": r"is empty \(0 bytes\)",
        "truncated": "is a truncated PNG image",
    }
    assert code == 2 and str(folder) in err
    assert re.search(problems[kind], err), err


@pytest.mark.parametrize("kind", ["truncated image", "text label", "missing root", "file root"])
def test_bad_data_sets(files, capsys, kind) -> None:
    root = files / f"cs_{kind.replace(' ', '_')}"
    if kind == "file root":
        root = files / "text.txt"
    elif kind != "missing root":
        shutil.copytree(files / "cs", root, dirs_exist_ok=True)
        image = root / "leftImg8bit/val/a/a_1_leftImg8bit.png"
        label = root / "gtFine/val/a/a_1_gtFine_labelTrainIds.png"
        if kind == "truncated image":
            _truncate(files / "cs/leftImg8bit/val/a/a_1_leftImg8bit.png", image)
        else:
            label.write_text("hi")
    argv = ["evaluate", "--dataset", f"cityscapes:{root}", "--out", str(files / "ev"), *FAST]
    code, err = _run(argv, capsys)
    problems = {
        "truncated image": "a_1_leftImg8bit.png is a truncated PNG image",
        "text label": "a_1_gtFine_labelTrainIds.png is not an image in a supported format",
        "missing root": "does not exist or is not a folder",
        "file root": "does not exist or is not a folder",
    }
    assert code == 2
    assert re.search(problems[kind], err), err


def test_an_output_path_that_is_a_file(files, capsys) -> None:
    code, err = _run(["segment", "--synthetic", "--out", str(files / "text.txt"), *FAST], capsys)
    assert code == 2 and "--out" in err and "is a file" in err
    argv = ["bag-eval", str(files / "bag"), "--out", str(files / "text.txt"), *FAST]
    code, err = _run(argv, capsys)
    assert code == 2 and "File exists" in err and str(files / "text.txt") in err
