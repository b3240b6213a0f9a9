"""BDD100K 10k semantic segmentation as downloaded (labels already hold train ids).

Current release (``10k_images_<split>.zip`` + ``bdd100k_sem_seg_labels_trainval.zip`` unpacked
in one root)::

    <root>/images/10k/<split>/<name>.jpg
    <root>/labels/sem_seg/masks/<split>/<name>.png

Older release (``bdd100k_seg.zip``)::

    <root>/seg/images/<split>/<name>.jpg
    <root>/seg/labels/<split>/<name>_train_id.png

``split`` is ``train`` or ``val`` (test labels are not public). Masks hold the 19 Cityscapes
train ids with 255 = ignore, read as they are. Domain: ``bdd100k``.
"""

from __future__ import annotations

from pathlib import Path

from vltseg_ros.data.dataset import LabelFormat, Sample, list_images, pair_samples
from vltseg_ros.errors import DatasetError

BDD100K_LAYOUT = (
    "<root>/images/10k/<split>/*.jpg with <root>/labels/sem_seg/masks/<split>/*.png, or "
    "<root>/seg/images/<split>/*.jpg with <root>/seg/labels/<split>/*_train_id.png"
)


def bdd100k_samples(root: Path, split: str) -> list[Sample]:
    """BDD100K 10k image / mask pairs of ``split``, sorted by path (layout: module docstring).

    Raises:
        DatasetError: neither layout's folders exist, or an image has no mask.
    """
    root = Path(root)
    layouts = (
        (root / "images" / "10k" / split, root / "labels" / "sem_seg" / "masks" / split, ""),
        (root / "seg" / "images" / split, root / "seg" / "labels" / split, "_train_id"),
    )
    found = next((layout for layout in layouts if layout[0].is_dir() and layout[1].is_dir()), None)
    if found is None:
        raise DatasetError(f"no BDD100K {split!r} split under {root}: expected {BDD100K_LAYOUT}")
    images_dir, labels_dir, suffix = found

    def candidates(image: Path) -> list[tuple[Path, LabelFormat]]:
        folder = labels_dir / image.parent.relative_to(images_dir)
        return [(folder / f"{image.stem}{suffix}.png", "train")]

    return pair_samples(list_images(images_dir), candidates, "bdd100k")
