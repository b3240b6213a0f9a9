"""``vltseg evaluate``: reports per domain and a summary whose numbers agree with each other
and with :func:`evaluate_dataset`; clear exit-code-2 errors for bad data set arguments."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from test.data import layouts
from vltseg_ros.cli.main import main
from vltseg_ros.data import build_dataset
from vltseg_ros.evaluation.dataset_eval import evaluate_dataset
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.model.checkpoint import save_checkpoint
from vltseg_ros.model.segmentor import build_model

SIZE = (24, 40)  # (H, W); the tiny model slides one padded 64x64 crop over it


def _labels(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.choice(np.array([0, 1, 2, 8, 10, 13, 255], np.uint8), SIZE)


def _with_images(root: Path, name: str, split: str = "val") -> Path:
    """Replace the layout writers' 6x8 images by SIZE ones (the model needs >= 8x8)."""
    for index, sample in enumerate(build_dataset(name, root, split).samples):
        layouts.write_image(sample.image, layouts.image_rgb(index, SIZE))
    return root


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Path]:
    """A Cityscapes val split of 2 frames and an ACDC one of fog x2, night, rain, snow."""
    frames = {f"aachen_000000_{i:06d}": {"labelTrainIds": _labels(i)} for i in range(2)}
    cityscapes = _with_images(layouts.cityscapes(tmp_path / "cs", "val", frames), "cityscapes")
    acdc = tmp_path / "acdc"
    for i, condition in enumerate(("fog", "fog", "night", "rain", "snow")):
        layouts.acdc(acdc, "val", condition, f"{condition}_{i:03d}", _labels(10 + i))
    _with_images(acdc, "acdc")
    return {"cityscapes": cityscapes, "acdc": acdc}


def _read(out: Path, path: str) -> dict:
    return json.loads((out / path).read_text())


def test_checkpoint_reports_agree_with_each_other_and_the_core(
    data, tmp_path: Path, monkeypatch, capsys
) -> None:
    checkpoint = save_checkpoint(build_model("tiny").eval(), tmp_path / "tiny_w.safetensors")
    monkeypatch.chdir(tmp_path)
    specs = ["--dataset", f"cityscapes:{data['cityscapes']}", "--dataset", f"acdc:{data['acdc']}"]
    args = ["evaluate", "--checkpoint", str(checkpoint), *specs, "--conditions", "fog", "night"]
    assert main(args) == 0
    out = tmp_path / "eval_tiny_w"  # default: eval_<checkpoint stem>
    summary = _read(out, "summary.json")
    assert list(summary["domains"]) == ["cityscapes", "acdc", "acdc/fog", "acdc/night"]
    assert summary["random_weights"] is False and summary["checkpoint"] == str(checkpoint)
    assert [d["frames"] for d in summary["domains"].values()] == [2, 3, 2, 1]
    text = (out / "summary.md").read_text()
    assert text in capsys.readouterr().out
    assert "WARNING" not in text

    segmenter = Segmenter.load(None, checkpoint)
    core = evaluate_dataset(
        segmenter, build_dataset("acdc", data["acdc"], "val", conditions=["fog", "night"])
    )
    core |= evaluate_dataset(segmenter, build_dataset("cityscapes", data["cityscapes"], "val"))
    for domain, entry in summary["domains"].items():
        report = _read(out, entry["report"])
        assert entry["report"] == f"{domain}/report.json"
        assert report["confusion"]["matrix"] == core[domain].matrix.tolist()
        for key in ("miou", "pixel_accuracy", "iou", "frames", "pixels"):
            assert report[key] == entry[key], (domain, key)
        markdown = (out / domain / "report.md").read_text()
        assert f"| mIoU (%) | {100 * report['miou']:.2f} |" in markdown
        for name, iou in report["iou"].items():
            shown = "n/a" if iou is None else f"{100 * iou:.2f}"
            assert f"| {name} | {shown} |" in markdown
        row = f"| {domain} | {entry['frames']} | {entry['pixels']} | {100 * entry['miou']:.2f} |"
        assert row in text
        for chart in ("iou.png", "confusion.png", "reliability.png"):
            assert (out / domain / chart).read_bytes()[:4] == b"\x89PNG"
        assert report["ece"] == entry["ece"] and 0.0 <= report["ece"] <= 1.0
        assert report["calibration"]["pixels"] == report["pixels"]
        assert f"| ECE (%) | {100 * report['ece']:.2f} |" in markdown


def test_random_weights_warn_and_limit_frames(data, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    args = ["evaluate", "--model", "tiny", "--dataset", f"acdc:{data['acdc']}", "--limit", "1"]
    assert main([*args, "--out", str(out), "--batch-size", "2"]) == 0
    captured = capsys.readouterr()
    assert "RANDOM" in captured.err
    assert "WARNING: no checkpoint" in captured.out
    summary = _read(out, "summary.json")
    assert summary["random_weights"] is True
    frames = {domain: entry["frames"] for domain, entry in summary["domains"].items()}
    conditions = ("fog", "night", "rain", "snow")
    assert frames == {"acdc": 4, **{f"acdc/{c}": 1 for c in conditions}}
    pixels = summary["domains"]["acdc"]["pixels"]
    assert pixels == sum(summary["domains"][f"acdc/{c}"]["pixels"] for c in conditions)


def _empty_cityscapes(tmp_path: Path) -> Path:
    for folder in ("leftImg8bit/val/aachen", "gtFine/val/aachen"):
        (tmp_path / "empty" / folder).mkdir(parents=True)
    return tmp_path / "empty"


@pytest.mark.parametrize(
    ("spec", "extra", "message"),
    [
        ("cityscapes", [], "is not NAME:ROOT"),
        ("kitti:{tmp}", [], "unknown data set 'kitti'"),
        ("cityscapes:{tmp}/missing", [], "does not exist"),
        ("cityscapes:{empty}", [], "no image files"),
        ("cityscapes:{cs}", ["--conditions", "fog"], "add --dataset acdc:ROOT"),
        ("acdc:{acdc}", ["--conditions", "haze"], "unknown ACDC condition"),
        ("cityscapes:{cs}", ["--limit", "0"], "limit must be >= 1"),
        ("cityscapes:{cs}", ["--split", "train"], "does not exist"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    data, tmp_path: Path, capsys, spec: str, extra: list[str], message: str
) -> None:
    spec = spec.format(
        tmp=tmp_path, empty=_empty_cityscapes(tmp_path), cs=data["cityscapes"], acdc=data["acdc"]
    )
    out = tmp_path / "out"
    assert main(["evaluate", "--dataset", spec, *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "vltseg evaluate: error:" in err and message in err
    assert "RANDOM" not in err  # checked before the model is loaded
    assert not out.exists()


def test_same_data_set_twice_is_refused(data, capsys) -> None:
    spec = f"cityscapes:{data['cityscapes']}"
    assert main(["evaluate", "--dataset", spec, "--dataset", spec]) == 2
    assert "given twice" in capsys.readouterr().err
