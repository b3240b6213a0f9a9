"""``vltseg segment`` writes label, confidence and overlay PNGs at each frame's resolution."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from test.conftest import shared_frame
from vltseg_ros.checkpoint import save_checkpoint
from vltseg_ros.cli.main import main
from vltseg_ros.model.segmentor import build_model

FAST = ["--model", "tiny", "--mode", "whole", "--whole-size", "64", "128"]


def _outputs(out: Path, stem: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels = cv2.imread(str(out / f"{stem}_labels.png"), cv2.IMREAD_UNCHANGED)
    confidence = cv2.imread(str(out / f"{stem}_confidence.png"), cv2.IMREAD_UNCHANGED)
    overlay = cv2.imread(str(out / f"{stem}_overlay.png"), cv2.IMREAD_UNCHANGED)
    return labels, confidence, overlay


def test_real_frame_gives_three_pngs_at_frame_resolution(tmp_path: Path, capsys) -> None:
    frame = shared_frame("cityscapes_frankfurt_000001_055709_leftImg8bit.png")
    assert main(["segment", str(frame), "--out", str(tmp_path), *FAST]) == 0
    labels, confidence, overlay = _outputs(tmp_path, frame.stem)
    assert labels.shape == (1024, 2048) and labels.dtype == np.uint8
    assert labels.max() < 19
    assert confidence.shape == (1024, 2048) and confidence.dtype == np.uint8
    assert confidence.min() >= 255 // 19  # normalized over 19 classes: at least 1/19
    assert overlay.shape == (1024, 2048, 3)
    assert "RANDOM" in capsys.readouterr().err


def test_palette_frame_and_checkpoint(tmp_path: Path) -> None:
    frame = shared_frame("cityscapes_demo_1024x512.png")  # a palette PNG: read as color
    checkpoint = save_checkpoint(build_model("tiny"), tmp_path / "tiny.safetensors")
    out = tmp_path / "out"
    code = main(
        [
            "segment",
            str(frame),
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(out),
            "--mode",
            "whole",
            "--whole-size",
            "64",
            "128",
            "--threshold",
            "0.9",
        ]
    )
    assert code == 0
    labels, _, overlay = _outputs(out, frame.stem)
    assert labels.shape == (512, 1024) and overlay.shape == (512, 1024, 3)
    assert np.all(labels == 255)  # random tiny weights are never 90 % sure


def test_synthetic_scene_and_a_bad_file_do_not_stop_the_rest(tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    out = tmp_path / "out"
    code = main(["segment", str(broken), "--synthetic", "--out", str(out), *FAST])
    assert code == 1  # one input failed
    labels, _, overlay = _outputs(out, "synthetic")
    assert labels.shape == (512, 1024) and overlay.shape == (512, 1024, 3)
    assert cv2.imread(str(out / "synthetic.png")).shape == (512, 1024, 3)
    assert not (out / "broken_labels.png").exists()


def test_usage_errors(tmp_path: Path, capsys) -> None:
    assert main(["segment", "--out", str(tmp_path)]) == 2
    assert main(["segment", "--synthetic", "--out", str(tmp_path), "--model", "nope"]) == 2
    err = capsys.readouterr().err
    assert "give at least one IMAGE" in err and "unknown model 'nope'" in err
    assert (
        main(
            [
                "segment",
                "--synthetic",
                "--out",
                str(tmp_path),
                "--checkpoint",
                str(tmp_path / "missing.safetensors"),
            ]
        )
        == 2
    )
    assert "does not exist" in capsys.readouterr().err


def test_module_entry_point_runs(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "vltseg_ros.cli.main", "segment", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0
    assert "--checkpoint" in proc.stdout and "--synthetic" in proc.stdout


@pytest.mark.parametrize("stems", [["a", "a", "b"]])
def test_duplicate_stems_get_suffixes(stems, tmp_path: Path) -> None:
    from vltseg_ros.cli.segment import _unique_stems

    assert _unique_stems([tmp_path / "x" / f"{s}.png" for s in stems]) == ["a", "a_2", "b"]
