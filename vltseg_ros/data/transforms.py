"""The reference (VLTSeg / MMSegmentation) training augmentation, and the evaluation path.

Training (:class:`TrainTransform`), the reference pipeline step by step:

1. ``Resize(scale=(W, H))`` without keeping the aspect ratio: every image to the data set's
   scale (:data:`REFERENCE_TRAIN_SIZES`, e.g. 1280x720 for GTA5, 2048x1024 for Cityscapes; the
   reference uses no random ratio range). OpenCV bilinear for images, nearest for labels.
2. ``RandomCrop(crop_size, cat_max_ratio=0.75)``: a uniformly placed crop; while one class
   covers ``cat_max_ratio`` or more of its non-ignored pixels (or it holds fewer than two
   classes) a new crop is drawn, at most ``crop_tries`` (10) times, the last one kept as is.
3. ``RandomFlip(prob=0.5)``: horizontal, image and labels together.
4. ``PhotoMetricDistortion``: brightness, contrast (before or after the HSV steps, 50/50),
   saturation, hue, each applied with probability 0.5, with mmseg's ranges and uint8 rounding.
5. The model's :class:`~vltseg_ros.config.model_config.Normalization` (RGB mean / std on
   0-255), then
   padding to the crop size when the image was smaller (image 0 after normalization, labels
   255), as mmseg's ``SegDataPreProcessor`` does.

Randomness comes only from a :class:`numpy.random.Generator`: pass one, or an int draw key from
which ``default_rng([seed, key])`` is made. The same seed and key always give the same sample,
whatever the worker process, so a resumed run draws exactly what the interrupted one would have.

Evaluation: no augmentation. Build the data set without a transform and give the (H, W, 3) uint8
RGB image to :class:`~vltseg_ros.inference.predictor.Segmenter` (which applies the model's
``test_scale``, slide windows and normalization and returns labels at the image's size); compare
with the labels at their original resolution, as the reference does. :class:`EvalTransform` only
normalizes, for code that feeds the model directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from vltseg_ros.config.model_config import Normalization
from vltseg_ros.data.label_maps import IGNORE_INDEX
from vltseg_ros.errors import ConfigError

Size = tuple[int, int]

REFERENCE_TRAIN_SIZES: dict[str, tuple[Size, Size]] = {
    "gta5": ((1280, 720), (512, 512)),
    "synthia": ((1280, 720), (512, 512)),
    "cityscapes": ((2048, 1024), (1024, 1024)),
    "acdc": ((1920, 1080), (1024, 1024)),
    "bdd100k": ((2048, 1024), (1024, 1024)),
    "mapillary": ((2048, 1024), (1024, 1024)),
}
"""Reference resize scale (W, H) and crop size (H, W) per training data set (VLTSeg configs
``configs/_base_/datasets/train/*.py``)."""


@dataclass(frozen=True)
class PhotoMetricDistortion:
    """mmseg's ``PhotoMetricDistortion`` on (H, W, 3) uint8 RGB images.

    Each step runs with probability 0.5: brightness ``+ U(-delta, delta)``; contrast
    ``* U(range)``; saturation (HSV S channel) ``* U(range)``; hue (OpenCV's 0-179 H channel)
    ``+ integer in [-delta, delta)`` modulo 180. Every step clips to 0-255 and truncates to uint8.
    """

    brightness_delta: float = 32.0
    contrast_range: tuple[float, float] = (0.5, 1.5)
    saturation_range: tuple[float, float] = (0.5, 1.5)
    hue_delta: int = 18

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The distorted image: (H, W, 3) uint8 RGB in and out."""
        if rng.integers(2):
            image = _scale_shift(
                image, 1.0, rng.uniform(-self.brightness_delta, self.brightness_delta)
            )
        contrast_first = bool(rng.integers(2))
        if contrast_first:
            image = self._contrast(image, rng)
        if rng.integers(2):
            hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
            hsv[:, :, 1] = _scale_shift(hsv[:, :, 1], rng.uniform(*self.saturation_range), 0.0)
            image = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        if rng.integers(2):
            hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
            shift = int(rng.integers(-self.hue_delta, self.hue_delta)) if self.hue_delta else 0
            hsv[:, :, 0] = (hsv[:, :, 0].astype(np.int64) + shift) % 180
            image = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        if not contrast_first:
            image = self._contrast(image, rng)
        return image

    def _contrast(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.integers(2):
            return _scale_shift(image, rng.uniform(*self.contrast_range), 0.0)
        return image


class TrainTransform:
    """The reference training augmentation (module docstring), reproducible from a generator.

    Args:
        scale: (W, H) every image and label map is resized to first.
        crop_size: (H, W) of the output, or one int for a square.
        normalization: the model config's RGB mean / std (0-255 scale).
        cat_max_ratio: largest share one class may cover in a crop (1.0 disables the check).
        flip_prob: probability of a horizontal flip.
        photometric: the color distortion (mmseg's defaults), or None for none.
        ignore_index: label value of unlabeled pixels (not counted by ``cat_max_ratio``).
        crop_tries: how many crops are checked against ``cat_max_ratio``.
        seed: base seed of the generators made from int draw keys.

    Raises:
        ConfigError: a non-positive size, a probability or ratio outside [0, 1].
    """

    def __init__(
        self,
        scale: Size,
        crop_size: int | Size,
        normalization: Normalization | None = None,
        *,
        cat_max_ratio: float = 0.75,
        flip_prob: float = 0.5,
        photometric: PhotoMetricDistortion | None = PhotoMetricDistortion(),
        ignore_index: int = IGNORE_INDEX,
        crop_tries: int = 10,
        seed: int = 0,
    ) -> None:
        crop = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
        if len(scale) != 2 or len(crop) != 2 or min(*scale, *crop) <= 0:
            raise ConfigError(f"scale {scale} and crop_size {crop_size} must be positive pairs")
        if not (0.0 < cat_max_ratio <= 1.0 and 0.0 <= flip_prob <= 1.0 and crop_tries >= 0):
            raise ConfigError(
                f"cat_max_ratio ({cat_max_ratio}) must be in (0, 1], flip_prob ({flip_prob}) "
                f"in [0, 1], crop_tries ({crop_tries}) >= 0"
            )
        self.scale = (int(scale[0]), int(scale[1]))
        self.crop_size = (int(crop[0]), int(crop[1]))
        self.normalization = normalization or Normalization()
        self.normalization.validate()
        self.cat_max_ratio = cat_max_ratio
        self.flip_prob = flip_prob
        self.photometric = photometric
        self.ignore_index = ignore_index
        self.crop_tries = crop_tries
        self.seed = seed

    @classmethod
    def reference(
        cls, dataset: str, normalization: Normalization | None = None, *, seed: int = 0
    ) -> TrainTransform:
        """The reference's transform for training on ``dataset`` (a name of
        :data:`REFERENCE_TRAIN_SIZES`, e.g. ``gta5``: 1280x720, 512 crops).

        Raises:
            ConfigError: no reference sizes for ``dataset``.
        """
        if dataset not in REFERENCE_TRAIN_SIZES:
            raise ConfigError(
                f"no reference training sizes for {dataset!r}; known: "
                f"{', '.join(REFERENCE_TRAIN_SIZES)}"
            )
        scale, crop = REFERENCE_TRAIN_SIZES[dataset]
        return cls(scale, crop, normalization, seed=seed)

    def __call__(
        self, image: np.ndarray, labels: np.ndarray, rng: np.random.Generator | int
    ) -> tuple[Tensor, Tensor]:
        """Augment and normalize one sample.

        Args:
            image: (H, W, 3) uint8 RGB.
            labels: (H, W) uint8 train ids, 255 = ignore.
            rng: the generator to draw from, or an int draw key (``default_rng([seed, key])``).

        Returns:
            (3, crop H, crop W) float32 normalized RGB image and (crop H, crop W) int64 labels.
        """
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng([self.seed, int(rng)])
        image, labels = self.augment(image, labels, rng)
        image_tensor = normalize(image, self.normalization)
        return pad_to(image_tensor, labels, self.crop_size, self.ignore_index)

    def augment(
        self, image: np.ndarray, labels: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Resize, crop, flip and distort: (H, W, 3) uint8 RGB and (H, W) uint8 labels in,
        (h, w, 3) uint8 RGB and (h, w) uint8 labels out, (h, w) the crop size or less when the
        resized image is smaller."""
        image, labels = resize(image, labels, self.scale)
        top, left = random_crop_origin(
            labels, self.crop_size, rng, self.cat_max_ratio, self.ignore_index, self.crop_tries
        )
        rows = slice(top, top + self.crop_size[0])
        cols = slice(left, left + self.crop_size[1])
        image, labels = image[rows, cols], labels[rows, cols]
        if rng.random() < self.flip_prob:
            image, labels = image[:, ::-1], labels[:, ::-1]
        image = np.ascontiguousarray(image)
        if self.photometric is not None:
            image = self.photometric(image, rng)
        return image, np.ascontiguousarray(labels)

    def __repr__(self) -> str:
        return (
            f"TrainTransform(scale={self.scale}, crop_size={self.crop_size}, "
            f"cat_max_ratio={self.cat_max_ratio}, flip_prob={self.flip_prob}, "
            f"photometric={self.photometric}, seed={self.seed})"
        )


class EvalTransform:
    """No augmentation: only normalization, for code that feeds the model directly.

    ``transform(image, labels, key)`` -> ((3, H, W) float32 normalized RGB, (H, W) int64 labels);
    ``key`` is ignored. Most evaluation instead passes the raw uint8 image to the Segmenter.
    """

    def __init__(self, normalization: Normalization | None = None) -> None:
        self.normalization = normalization or Normalization()
        self.normalization.validate()

    def __call__(
        self, image: np.ndarray, labels: np.ndarray, rng: object = None
    ) -> tuple[Tensor, Tensor]:
        """(H, W, 3) uint8 RGB and (H, W) uint8 labels -> normalized image and int64 labels."""
        return normalize(image, self.normalization), torch.from_numpy(labels.astype(np.int64))


def resize(image: np.ndarray, labels: np.ndarray, scale: Size) -> tuple[np.ndarray, np.ndarray]:
    """Resize to ``scale`` = (W, H), ignoring the aspect ratio: (H, W, 3) uint8 RGB image
    (bilinear) and (H, W) uint8 labels (nearest) -> the same at the new size."""
    width, height = scale
    if image.shape[:2] != (height, width):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    if labels.shape != (height, width):
        labels = cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST)
    return image, labels


def random_crop_origin(
    labels: np.ndarray,
    crop_size: Size,
    rng: np.random.Generator,
    cat_max_ratio: float = 0.75,
    ignore_index: int = IGNORE_INDEX,
    tries: int = 10,
) -> tuple[int, int]:
    """(top, left) of a random ``crop_size`` = (H, W) crop of (H, W) uint8 ``labels``, redrawn
    up to ``tries`` times while one class covers ``cat_max_ratio`` or more of its non-ignored
    pixels or it holds fewer than two classes (mmseg's ``RandomCrop``); the last draw is kept."""
    margin_h = max(labels.shape[0] - crop_size[0], 0)
    margin_w = max(labels.shape[1] - crop_size[1], 0)

    def draw() -> tuple[int, int]:
        return int(rng.integers(margin_h + 1)), int(rng.integers(margin_w + 1))

    top, left = draw()
    if cat_max_ratio >= 1.0:
        return top, left
    for _ in range(tries):
        window = labels[top : top + crop_size[0], left : left + crop_size[1]]
        counts = np.bincount(window.ravel(), minlength=256)
        counts[ignore_index] = 0
        counts = counts[counts > 0]
        if counts.size > 1 and counts.max() / counts.sum() < cat_max_ratio:
            break
        top, left = draw()
    return top, left


def normalize(image: np.ndarray, normalization: Normalization) -> Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 ``(image - mean) / std`` (RGB order)."""
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).to(torch.float32)
    mean = torch.tensor(normalization.mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(normalization.std, dtype=torch.float32).view(3, 1, 1)
    return (tensor - mean) / std


def pad_to(
    image: Tensor, labels: np.ndarray, size: Size, ignore_index: int = IGNORE_INDEX
) -> tuple[Tensor, Tensor]:
    """Pad a (3, h, w) normalized image with 0 and (h, w) labels with ``ignore_index`` at the
    bottom / right to ``size`` = (H, W); returns the image and int64 (H, W) label tensor."""
    target = torch.from_numpy(labels.astype(np.int64))
    pad_h, pad_w = size[0] - image.shape[1], size[1] - image.shape[2]
    if pad_h > 0 or pad_w > 0:
        pads = (0, max(pad_w, 0), 0, max(pad_h, 0))
        image = F.pad(image, pads, value=0.0)
        target = F.pad(target, pads, value=ignore_index)
    return image, target


def _scale_shift(values: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """``values * alpha + beta`` in float32, clipped to 0-255 and truncated to uint8 (mmseg)."""
    return np.clip(values.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)
