"""The stand-ins test/docs/test_docs.py puts beside the documented commands (its table FILES
says what each is): small checkpoints, a generated frame, a bag of generated scenes, and tiny
data sets in the layouts docs/training.md and docs/anomaly_evaluation.md describe, all from
generated 128x256 street scenes with exact labels."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from test.data.layouts import write_grey, write_image
from test.docs.blocks import REPO


def make_stand_ins(root: Path) -> Path:
    """Write every stand-in into the folder ``root``."""
    import torch

    from vltseg_ros.cli.main import main
    from vltseg_ros.demo_model import DEMO_CHECKPOINT
    from vltseg_ros.model.checkpoint import save_checkpoint
    from vltseg_ros.model.segmentor import build_model

    torch.manual_seed(0)
    tiny = save_checkpoint(build_model("tiny").eval(), root / "gta_1.safetensors")
    shutil.copy(tiny, root / "cityscapes_2.safetensors")
    for name in ("w", "weights", "model"):
        shutil.copy(DEMO_CHECKPOINT, root / f"{name}.safetensors")
    write_image(root / "frame.png", _scene(100000)[0])
    for seed in (100001, 100002):
        write_image(root / "acdc" / f"scene_{seed}.png", _scene(seed)[0])
    bag = root / "demo_bag"
    assert (
        main(["make-bag", "-", str(bag), "--synthetic", "3", "--synthetic-size", "128", "256"])
        == 0
    )
    (root / "labelled_bag").symlink_to(bag)
    (root / "drive.mcap").symlink_to(next(bag.glob("*.mcap")))
    _data_sets(root / "data")
    (root / "config").symlink_to(REPO / "config")
    return root


def _scene(seed: int) -> tuple[np.ndarray, np.ndarray]:
    from vltseg_ros.data.scenes import synthetic_street_scene

    return synthetic_street_scene(128, 256, seed=seed)


def _anomaly_truth(labels: np.ndarray) -> np.ndarray:
    """0 normal, 1 on the cars and a 16x16 box (so both are present), 255 on the sky."""
    truth = (labels == 13).astype(np.uint8)
    truth[96:112, 120:136] = 1
    truth[labels == 10] = 255
    return truth


def _data_sets(root: Path) -> None:
    """Tiny generated data sets in the layouts of docs/training.md and anomaly_evaluation.md."""
    from vltseg_ros.cli.main import main

    cityscapes = root / "cityscapes"
    for split, seed, count in (("val", 100000, 2), ("train", 0, 4)):
        args = [str(cityscapes), "--count", str(count), "--seed", str(seed), "--size", "256x128"]
        assert main(["make-scenes", *args, "--split", split]) == 0
    scenes = {seed: _scene(seed) for seed in range(100010, 100014)}
    (a, a_ids), (b, b_ids), (c, c_ids), (d, d_ids) = scenes.values()
    conditions = {"fog": (a, a_ids), "night": (b, b_ids), "rain": (c, c_ids), "snow": (d, d_ids)}
    for condition, (image, ids) in conditions.items():
        stem = f"GOPR0001_frame_{condition}"
        rgb = root / "acdc" / "rgb_anon" / condition / "val" / "GOPR0001"
        write_image(rgb / f"{stem}_rgb_anon.png", image)
        gt = root / "acdc" / "gt" / condition / "val" / "GOPR0001"
        write_grey(gt / f"{stem}_gt_labelTrainIds.png", ids)
    write_image(root / "bdd100k" / "images" / "10k" / "val" / "b1.jpg", c)
    write_grey(root / "bdd100k" / "labels" / "sem_seg" / "masks" / "val" / "b1.png", c_ids)
    write_image(root / "mapillary" / "validation" / "images" / "m1.jpg", d)
    write_grey(root / "mapillary" / "validation" / "labels" / "m1_labelTrainIds.png", d_ids)
    pairs = [(a, _anomaly_truth(a_ids)), (b, _anomaly_truth(b_ids))]
    road_anomaly = root / "RoadAnomaly_jpg"
    names = []
    for i, (image, truth) in enumerate(pairs):
        names.append(f"frame{i}.jpg")
        write_image(road_anomaly / "frames" / names[-1], image)
        labels = np.where(truth == 1, 2, 0).astype(np.uint8)  # Road Anomaly's anomaly is 2
        write_grey(road_anomaly / "frames" / f"frame{i}.labels" / "labels_semantic.png", labels)
    (road_anomaly / "frame_list.json").write_text(json.dumps(names))
    for i, (image, truth) in enumerate(pairs):
        base = f"04_Maurener_Weg_8_000000_00003{i}"
        write_grey(
            root / "Fishyscapes" / "fishyscapes_lostandfound" / f"000{i}_{base}_labels.png", truth
        )
        write_image(root / "Fishyscapes" / "laf_images" / f"{base}_leftImg8bit.png", image)
        stem = f"validation_{i}"
        write_image(root / "dataset_ObstacleTrack" / "images" / f"{stem}.webp", image)
        masks = root / "dataset_ObstacleTrack" / "labels_masks"
        write_grey(masks / f"{stem}_labels_semantic.png", truth)
