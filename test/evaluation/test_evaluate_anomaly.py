"""``vltseg evaluate``: ECE and reliability diagrams per domain, anomaly sets (``--anomaly``)
scored with AUROC / AP / FPR95 of the chosen score and of max probability. The numbers are
checked against numpy and scikit-learn on the same model's outputs for the same frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from test.data import layouts
from test.evaluation.test_dataset_eval import OracleEngine, acdc_set, random_pair
from vltseg_ros.cli.main import main
from vltseg_ros.config.model_config import Calibration
from vltseg_ros.data import build_dataset
from vltseg_ros.evaluation.anomaly_eval import AnomalyScoring
from vltseg_ros.evaluation.dataset_eval import score_dataset
from vltseg_ros.evaluation.report import EvaluationReport, markdown_table, write_report
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.inference.result import SegmentationResult
from vltseg_ros.model.checkpoint import save_checkpoint
from vltseg_ros.model.segmentor import build_model

SIZE = (24, 40)  # (H, W); the tiny model slides one padded 64x64 crop over it
PNG = b"\x89PNG\r\n\x1a\n"


def numpy_ece(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """Guo et al.'s ECE written out: bin b holds (b/B, (b+1)/B], bin 0 also 0."""
    confidence, total, ece = confidence.astype(np.float64), confidence.size, 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        inside = (confidence > low) & (confidence <= high)
        if b == 0:
            inside |= confidence == 0
        if inside.any():
            gap = abs(correct[inside].mean() - confidence[inside].mean())
            ece += inside.sum() / total * gap
    return float(ece)


def sklearn_metrics(is_anomaly: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    fpr, tpr, _ = roc_curve(is_anomaly, scores)
    return {
        "auroc": roc_auc_score(is_anomaly, scores),
        "average_precision": average_precision_score(is_anomaly, scores),
        "fpr_at_95_tpr": fpr[np.searchsorted(tpr, 0.95)],
    }


def _truth(seed: int) -> np.ndarray:
    """Anomaly truth 0 / 1 / 255 with an anomalous block and some void."""
    rng = np.random.default_rng(seed)
    truth = np.zeros(SIZE, np.uint8)
    truth[4:14, 10 + seed : 24 + seed] = 1
    truth[rng.random(SIZE) < 0.1] = 255
    return truth


def road_anomaly21(root: Path, frames: int = 2) -> list[tuple[np.ndarray, np.ndarray]]:
    """A SegmentMeIfYouCan anomaly-track layout; returns (image RGB, truth) per frame."""
    pairs = []
    for i in range(frames):
        image, truth = layouts.image_rgb(20 + i, SIZE), _truth(i)
        layouts.write_image(root / "images" / f"validation{i:04d}.png", image)
        layouts.write_grey(root / "labels_masks" / f"validation{i:04d}_labels_semantic.png", truth)
        pairs.append((image, truth))
    layouts.write_image(root / "images" / "test0000.png", layouts.image_rgb(9, SIZE))  # no label
    return pairs


def fishyscapes(root: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """A Fishyscapes Lost & Found layout of one frame."""
    image, truth = layouts.image_rgb(30, SIZE), _truth(3)
    base = "04_Maurener_Weg_8_000000_000030"
    layouts.write_image(root / "laf_images" / f"{base}_leftImg8bit.png", image)
    layouts.write_grey(root / "fishyscapes_lostandfound" / f"0000_{base}_labels.png", truth)
    return [(image, truth)]


def expected_anomaly(segmenter: Segmenter, pairs, method: str) -> dict[str, dict[str, float]]:
    """sklearn's metrics of the method's map and of 1 - confidence, pooled over the frames
    (predicted in one batch, as the command batches up to 4 one-crop frames)."""
    results = segmenter.predict_batch(
        [image for image, _ in pairs], anomaly_method=method, return_anomaly=True
    )
    valid = np.concatenate([(truth != 255).ravel() for _, truth in pairs])
    is_anomaly = np.concatenate([(truth == 1).ravel() for _, truth in pairs])[valid]
    maps = {
        method: np.concatenate([r.anomaly.ravel() for r in results]),
        "max_probability": np.concatenate([1.0 - r.confidence.ravel() for r in results]),
    }
    return {name: sklearn_metrics(is_anomaly, score[valid]) for name, score in maps.items()}


@pytest.fixture(scope="module")
def tempered_checkpoint(tmp_path_factory) -> Path:
    """A tiny checkpoint whose calibration temperature is 2 (confidence is tempered)."""
    model = build_model("tiny").eval()
    model.config = model.config.replace(calibration=Calibration(temperature=2.0))
    return save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "tiny_t2.safetensors")


def test_ece_reliability_and_anomaly_sets_agree_with_numpy_and_sklearn(
    tmp_path: Path, tempered_checkpoint: Path, capsys
) -> None:
    labels = [
        np.random.default_rng(i).choice(np.array([0, 1, 2, 8, 10, 13, 255], np.uint8), SIZE)
        for i in range(2)
    ]
    frames = {f"aachen_000000_{i:06d}": {"labelTrainIds": ids} for i, ids in enumerate(labels)}
    cs_root = layouts.cityscapes(tmp_path / "cs", "val", frames)
    dataset = build_dataset("cityscapes", cs_root, "val")
    for index, sample in enumerate(dataset.samples):
        layouts.write_image(sample.image, layouts.image_rgb(index, SIZE))
    ra21 = road_anomaly21(tmp_path / "ra21")
    laf = fishyscapes(tmp_path / "laf")
    out = tmp_path / "out"
    args = ["evaluate", "--checkpoint", str(tempered_checkpoint), "--out", str(out)]
    args += ["--dataset", f"cityscapes:{cs_root}", "--anomaly", f"RA21:{tmp_path / 'ra21'}"]
    assert main([*args, "--anomaly", f"fs_laf:{tmp_path / 'laf'}"]) == 0
    printed = capsys.readouterr().out

    segmenter = Segmenter.load(None, tempered_checkpoint)
    assert segmenter.temperature == 2.0
    results = segmenter.predict_batch([dataset[i]["image"] for i in range(2)])
    valid = [ids != 255 for ids in labels]
    confidence = np.concatenate([r.confidence[v] for r, v in zip(results, valid, strict=True)])
    correct = np.concatenate(
        [(r.labels == ids)[v] for r, ids, v in zip(results, labels, valid, strict=True)]
    )
    untempered = Segmenter(segmenter.engine, inference=segmenter.inference)
    untempered.temperature = 1.0
    plain = untempered.predict(dataset[0]["image"]).confidence
    assert not np.allclose(plain, results[0].confidence)  # the temperature matters here

    summary = json.loads((out / "summary.json").read_text())
    report = json.loads((out / "cityscapes" / "report.json").read_text())
    assert report["ece"] == pytest.approx(numpy_ece(confidence, correct), abs=1e-9)
    assert summary["domains"]["cityscapes"]["ece"] == report["ece"]
    assert report["calibration"]["pixels"] == report["pixels"] == confidence.size
    assert sum(report["calibration"]["bin_counts"]) == confidence.size
    assert len(report["calibration"]["bin_edges"]) == 16
    assert (out / "cityscapes" / "reliability.png").read_bytes()[:8] == PNG
    ece = f"{100 * report['ece']:.2f}"
    assert f"| ECE (%) | {ece} |" in (out / "cityscapes" / "report.md").read_text()
    assert f"| {100 * report['pixel_accuracy']:.2f} | {ece} |" in printed  # summary row

    assert list(summary["anomaly"]) == ["road_anomaly21", "fishyscapes_laf"]
    for name, pairs in (("road_anomaly21", ra21), ("fishyscapes_laf", laf)):
        data = json.loads((out / "anomaly" / name / "report.json").read_text())
        expected = expected_anomaly(segmenter, pairs, "rba")
        assert data["method"] == "rba" and data["baseline"] == "max_probability"
        assert list(data["metrics"]) == ["rba", "max_probability"]
        for score, metrics in expected.items():
            for key, value in metrics.items():
                assert data["metrics"][score][key] == pytest.approx(value, abs=1e-9), (name, key)
        assert data["auroc"] == data["metrics"]["rba"]["auroc"]
        assert data["frames"] == len(pairs) and data["checkpoint"] == str(tempered_checkpoint)
        assert data["pixels"] == sum(int((t != 255).sum()) for _, t in pairs)
        assert data["anomaly_pixels"] == sum(int((t == 1).sum()) for _, t in pairs)
        entry = summary["anomaly"][name]
        assert entry["report"] == f"anomaly/{name}/report.json"
        assert entry["metrics"] == data["metrics"] and entry["auroc"] == data["auroc"]
        cells = [
            f"{100 * data['metrics'][s][k]:.2f}"
            for s in ("rba", "max_probability")
            for k in ("auroc", "average_precision", "fpr_at_95_tpr")
        ]
        row = f"| {name} | {data['frames']} | {data['pixels']} | {data['anomaly_pixels']} | "
        assert row + " | ".join(cells) + " |" in printed
        assert (out / "anomaly" / name / "report.md").read_text().count("| rba (chosen) |") == 1
    assert (out / "summary.md").read_text() in printed


def test_anomaly_only_with_another_method_and_limit(tmp_path: Path, tempered_checkpoint) -> None:
    pairs = road_anomaly21(tmp_path / "ra21", frames=3)
    out = tmp_path / "out"
    args = ["evaluate", "--checkpoint", str(tempered_checkpoint), "--out", str(out), "--limit"]
    args += ["2", "--anomaly", f"road_anomaly21:{tmp_path / 'ra21'}"]
    assert main([*args, "--anomaly-method", "entropy"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["domains"] == {} and summary["checkpoint"] == str(tempered_checkpoint)
    data = json.loads((out / "anomaly" / "road_anomaly21" / "report.json").read_text())
    assert data["frames"] == 2 and data["method"] == "entropy"
    expected = expected_anomaly(Segmenter.load(None, tempered_checkpoint), pairs[:2], "entropy")
    for score in ("entropy", "max_probability"):
        assert data["metrics"][score]["auroc"] == pytest.approx(expected[score]["auroc"], abs=1e-9)
    assert sorted(p.name for p in out.iterdir()) == ["anomaly", "summary.json", "summary.md"]


def test_group_ece_pools_its_conditions_exactly(tmp_path: Path) -> None:
    """The oracle's one-hot scores give confidence 1, so ECE = 1 - pixel accuracy."""
    rng = np.random.default_rng(4)
    frames = {"fog": [random_pair(rng), random_pair(rng)], "night": [random_pair(rng)]}
    scores = score_dataset(
        Segmenter(OracleEngine(), batch_size=2), acdc_set(tmp_path, frames), progress=False
    )
    results = scores.calibration_results()
    assert list(results) == ["acdc", "acdc/fog", "acdc/night"]
    for domain, result in results.items():
        matrix = scores.matrices[domain]
        assert result.ece == pytest.approx(1.0 - matrix.pixel_accuracy(), abs=1e-12)
        assert result.pixels == matrix.pixels and result.bin_counts[-1] == matrix.pixels
    fog, night = results["acdc/fog"].bin_counts, results["acdc/night"].bin_counts
    np.testing.assert_array_equal(results["acdc"].bin_counts, fog + night)


def test_anomaly_scoring_and_reports_by_hand(tmp_path: Path) -> None:
    truth = np.array([[0, 0, 1, 1, 255]], np.uint8)
    anomaly = np.array([[0.1, 0.4, 0.35, 0.8, 9.0]], np.float32)  # one pair misordered
    confidence = np.array([[0.9, 0.8, 0.6, 0.7, 0.1]], np.float32)  # 1 - c: perfectly ordered
    result = SegmentationResult(np.zeros((1, 5), np.uint8), confidence, anomaly=anomaly)
    scoring = AnomalyScoring("max_logit")
    scoring.add(result, truth)
    report = scoring.report(source="s", model="tiny")
    assert report.chosen.auroc == pytest.approx(3 / 4) and report.chosen.pixels == 4
    assert report.metrics["max_probability"].auroc == pytest.approx(1.0)
    assert report.metrics["max_probability"].fpr_at_95_tpr == 0.0
    assert list(AnomalyScoring("max_probability").accumulators) == ["max_probability"]

    from vltseg_ros.evaluation import ConfusionMatrix
    from vltseg_ros.evaluation.calibration import CalibrationAccumulator

    accumulator = CalibrationAccumulator()
    accumulator.add(confidence, np.array([[True, True, False, True, False]]))
    matrix = ConfusionMatrix(2)
    matrix.update(np.zeros((1, 2), np.uint8), np.zeros((1, 2), np.uint8))
    full = EvaluationReport(("a", "b"), matrix, calibration=accumulator.result(), anomaly=report)
    data = full.to_dict()
    assert data["ece"] == pytest.approx(numpy_ece(confidence.ravel(), np.array([1, 1, 0, 1, 0])))
    assert data["anomaly"]["metrics"]["max_logit"]["auroc"] == pytest.approx(0.75)
    text = markdown_table(full)
    assert f"| ECE (%) | {100 * data['ece']:.2f} |" in text
    assert (
        "| max_logit (chosen) | 75.00 |" in text
        and "| max_probability (baseline) | 100.00 |" in text
    )
    paths = write_report(full, tmp_path / "r")
    assert set(paths) == {"markdown", "json", "iou_chart", "confusion_chart", "reliability"}
    assert paths["reliability"].read_bytes()[:8] == PNG
    bare = EvaluationReport(("a", "b"), matrix).to_dict()
    assert (bare["ece"], bare["calibration"], bare["anomaly"]) == (None, None, None)
    assert "| ECE (%) | n/a |" in markdown_table(EvaluationReport(("a", "b"), matrix))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "nothing to evaluate: give --dataset NAME:ROOT and/or --anomaly NAME:ROOT"),
        (["--anomaly", "lost_and_found:{tmp}"], "unknown anomaly data set 'lost_and_found'"),
        (["--anomaly", "road_anomaly:{tmp}/missing"], "does not exist or is not a folder"),
        (["--anomaly", "road_anomaly21:{tmp}"], "images does not exist; expected layout"),
        (["--anomaly", "road_anomaly"], "is not NAME:ROOT"),
        (["--anomaly", "ra21:{ra}", "--anomaly", "road_anomaly21:{ra}"], "given twice"),
        (["--anomaly", "ra21:{ra}", "--limit", "0"], "limit must be >= 1"),
    ],
)
def test_bad_anomaly_arguments_exit_2_with_a_message(
    tmp_path: Path, capsys, extra: list[str], message: str
) -> None:
    road_anomaly21(tmp_path / "ra", frames=1)
    extra = [e.format(tmp=tmp_path, ra=tmp_path / "ra") for e in extra]
    out = tmp_path / "out"
    assert main(["evaluate", "--model", "tiny", *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "vltseg evaluate: error:" in err and message in err, err
    assert "Traceback" not in err and "RANDOM" not in err  # before the model is loaded
    assert not out.exists()


def test_truth_without_anomaly_pixels_is_a_clear_error(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "ra"
    layouts.write_image(root / "images" / "validation0000.png", layouts.image_rgb(0, SIZE))
    label = root / "labels_masks" / "validation0000_labels_semantic.png"
    layouts.write_grey(label, np.zeros(SIZE, np.uint8))
    assert main(["evaluate", "--model", "tiny", "--anomaly", f"ra21:{root}"]) == 2
    err = capsys.readouterr().err
    assert "holds no anomaly (1) pixel" in err and "Traceback" not in err
