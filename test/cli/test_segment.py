"""``vltseg segment`` writes label, confidence, overlay and anomaly PNGs at each frame's
resolution."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from test.conftest import shared_frame
from vltseg_ros.cli.main import main
from vltseg_ros.model.checkpoint import save_checkpoint
from vltseg_ros.model.segmentor import build_model

FAST = ["--model", "tiny", "--inference.mode", "whole", "--inference.whole-size", "64", "128"]


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
            "--inference.mode",
            "whole",
            "--inference.whole-size",
            "64",
            "128",
            "--confidence-threshold",
            "0.9",
        ]
    )
    assert code == 0
    labels, _, overlay = _outputs(out, frame.stem)
    assert labels.shape == (512, 1024) and overlay.shape == (512, 1024, 3)
    assert np.all(labels == 255)  # random tiny weights are never 90 % sure


def test_anomaly_png_is_the_predictors_score_scaled(tmp_path: Path) -> None:
    from vltseg_ros.config.model_config import InferenceConfig
    from vltseg_ros.data.scenes import synthetic_street_scene
    from vltseg_ros.inference.predictor import Segmenter
    from vltseg_ros.inference.visualize import anomaly_to_uint8

    checkpoint = save_checkpoint(build_model("tiny"), tmp_path / "tiny.safetensors")
    image, _ = synthetic_street_scene(128, 256, seed=3)
    frame = tmp_path / "scene.png"
    cv2.imwrite(str(frame), image[..., ::-1])
    args = ["--inference.mode", "whole", "--inference.whole-size", "64", "128"]
    for method in ("rba", "entropy"):
        out = tmp_path / method
        common = ["--checkpoint", str(checkpoint), "--anomaly-method", method, *args]
        assert main(["segment", str(frame), "--out", str(out), *common]) == 0
        written = cv2.imread(str(out / "scene_anomaly.png"), cv2.IMREAD_UNCHANGED)
        segmenter = Segmenter.load(
            checkpoint=checkpoint, inference=InferenceConfig("whole", whole_size=(64, 128))
        )
        result = segmenter.predict(image, anomaly_method=method, return_anomaly=True)
        assert written.shape == (128, 256) and written.dtype == np.uint8
        expected = anomaly_to_uint8(result.anomaly, method)
        assert np.abs(written.astype(int) - expected).max() <= 1
        if method == "entropy":  # (random weights: every rba score is below -1, clipped to 0)
            assert written.std() > 0  # a map, not a constant


def test_synthetic_scene_and_a_bad_file_do_not_stop_the_rest(tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    out = tmp_path / "out"
    code = main(["segment", str(broken), "--synthetic", "--out", str(out), *FAST])
    assert code == 1  # one input failed
    labels, _, overlay = _outputs(out, "synthetic")
    assert labels.shape == (512, 1024) and overlay.shape == (512, 1024, 3)
    assert cv2.imread(str(out / "synthetic_anomaly.png"), cv2.IMREAD_UNCHANGED).shape == (
        512,
        1024,
    )
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
    from vltseg_ros.data.frame_files import unique_stems

    assert unique_stems([tmp_path / "x" / f"{s}.png" for s in stems]) == ["a", "a_2", "b"]


def test_onnxruntime_backend_gives_the_pytorch_labels(tmp_path: Path, tiny_onnx, capsys) -> None:
    model, onnx_path = tiny_onnx
    frame = tmp_path / "frame.png"
    cv2.imwrite(str(frame), np.random.default_rng(3).integers(0, 256, (100, 150, 3), np.uint8))
    checkpoint = save_checkpoint(model, tmp_path / "tiny.safetensors")
    args = ["segment", str(frame), "--confidence-threshold", "0"]
    assert main([*args, "--checkpoint", str(checkpoint), "--out", str(tmp_path / "pt")]) == 0
    onnx_args = [
        "--backend",
        "onnxruntime",
        "--checkpoint",
        str(onnx_path),
        "--onnxruntime.threads",
        "2",
    ]
    assert main([*args, *onnx_args, "--out", str(tmp_path / "ort")]) == 0
    expected, _, _ = _outputs(tmp_path / "pt", "frame")
    labels, confidence, _ = _outputs(tmp_path / "ort", "frame")
    assert labels.shape == (100, 150) and confidence.shape == (100, 150)
    assert np.mean(labels == expected) >= 0.999
    assert "RANDOM" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--backend", "pytorch", "--checkpoint", "{onnx}"], "is an ONNX model"),
        (["--backend", "onnxruntime"], "runs an exported .onnx file"),
        (["--model", "tiny", "--checkpoint", "{onnx}"], "carries its architecture"),
        (
            ["--model", "tiny", "--onnxruntime.cache-dir", "cache"],
            "onnxruntime.cache_dir apply to the onnxruntime backend, not pytorch",
        ),
        (
            ["--checkpoint", "{onnx}", "--pytorch.compile"],
            "pytorch.compile apply to the pytorch backend, not onnxruntime",
        ),
        (
            ["--checkpoint", "{onnx}", "--onnxruntime.providers", "openvino"],
            "unknown execution provider",
        ),
        (
            [
                "--checkpoint",
                "{onnx}",
                "--inference.mode",
                "whole",
                "--inference.whole-size",
                "64",
                "128",
            ],
            "static",
        ),
    ],
)
def test_backend_errors(tmp_path: Path, tiny_onnx, capsys, extra, message) -> None:
    extra = [e.replace("{onnx}", str(tiny_onnx[1])) for e in extra]
    assert main(["segment", "--synthetic", "--out", str(tmp_path), *extra]) == 2
    assert message in capsys.readouterr().err
