"""Writers of tiny synthetic data sets in each downloaded layout (files as the real ones store
them: 8-bit grey, palette or 16-bit 3-channel PNGs, JPEG images)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

H, W = 6, 8


def image_rgb(seed: int, shape: tuple[int, int] = (H, W)) -> np.ndarray:
    """A random (H, W, 3) uint8 RGB image."""
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def write_image(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1])):
        raise OSError(f"could not write {path}")
    return path


def write_grey(path: Path, ids: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(ids.astype(np.uint8), mode="L").save(path)
    return path


def write_palette(path: Path, ids: np.ndarray) -> Path:
    """Ids as the palette indices of a "P" PNG (GTA5 and Mapillary store labels so)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(ids.astype(np.uint8), mode="P")
    image.putpalette(np.random.default_rng(0).integers(0, 256, 768).astype(np.uint8).tolist())
    image.save(path)
    return path


def write_synthia_label(path: Path, ids: np.ndarray, instances: np.ndarray) -> Path:
    """16-bit 3-channel PNG: class ids in the first (R) channel, instance ids in the second."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.stack([ids, instances, np.zeros_like(ids)], axis=-1).astype(np.uint16)
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1])):
        raise OSError(f"could not write {path}")
    return path


def ids_grid(values: list[int], shape: tuple[int, int] = (H, W)) -> np.ndarray:
    """(H, W) int array cycling through ``values`` row by row (every value present)."""
    flat = np.resize(np.asarray(values), shape[0] * shape[1])
    return flat.reshape(shape)


def cityscapes(root: Path, split: str, frames: dict[str, dict[str, np.ndarray]]) -> Path:
    """``frames``: "<city>_<seq>_<frame>" -> {"labelIds": ..., "labelTrainIds": ...} (either)."""
    for i, (base, labels) in enumerate(frames.items()):
        city = base.split("_")[0]
        write_image(root / "leftImg8bit" / split / city / f"{base}_leftImg8bit.png", image_rgb(i))
        for kind, ids in labels.items():
            write_grey(root / "gtFine" / split / city / f"{base}_gtFine_{kind}.png", ids)
    return root


def acdc(root: Path, split: str, condition: str, name: str, train_ids: np.ndarray) -> Path:
    seq = "GOPR0001"
    write_image(root / "rgb_anon" / condition / split / seq / f"{name}_rgb_anon.png", image_rgb(1))
    write_grey(root / "gt" / condition / split / seq / f"{name}_gt_labelTrainIds.png", train_ids)
    return root


def gta5(root: Path, labels: dict[str, np.ndarray]) -> Path:
    for i, (stem, ids) in enumerate(labels.items()):
        write_image(root / "images" / f"{stem}.png", image_rgb(i))
        write_palette(root / "labels" / f"{stem}.png", ids)
    return root


def synthia(root: Path, stem: str, ids: np.ndarray) -> Path:
    write_image(root / "RGB" / f"{stem}.png", image_rgb(3))
    instances = np.full(ids.shape, 7)
    write_synthia_label(root / "GT" / "LABELS" / f"{stem}.png", ids, instances)
    return root


def bdd100k(root: Path, split: str, stem: str, train_ids: np.ndarray, old: bool = False) -> Path:
    if old:
        image = root / "seg" / "images" / split / f"{stem}.jpg"
        label = root / "seg" / "labels" / split / f"{stem}_train_id.png"
    else:
        image = root / "images" / "10k" / split / f"{stem}.jpg"
        label = root / "labels" / "sem_seg" / "masks" / split / f"{stem}.png"
    write_image(image, image_rgb(4))
    write_grey(label, train_ids)
    return root


def mapillary(root: Path, split_dir: str, stem: str, ids: np.ndarray) -> Path:
    write_image(root / split_dir / "images" / f"{stem}.jpg", image_rgb(5))
    write_palette(root / split_dir / "labels" / f"{stem}.png", ids)
    return root
