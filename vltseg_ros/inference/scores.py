"""From Mask2Former's raw class scores to probabilities (with a calibration temperature) and
per-pixel anomaly scores, without retraining.

Mask2Former's raw semantic score of class k at a pixel is ``s_k = sum_q p_q(k) sigmoid(m_q)``:
each query's class probability (the no-object class left out) times its mask. A pixel that
every query's mask rejects has all ``s_k`` near 0; a pixel of a known class has one near 1.
Higher scores mean more anomalous, for every method:

- ``rba``: "Rejected by All" (Nayal et al., ICCV 2023): ``-sum_k tanh(s_k)``, in [-C, 0]. As the
  authors' code computes it (``-logits.tanh().sum(0)`` on Mask2Former's ``sem_seg``), from the
  raw scores, so the project's per-pixel normalization and the calibration temperature do not
  change it. About -0.76 where one class owns the pixel (tanh 1), 0 where no query claims it.
- ``max_logit``: ``-max_k s_k``, in [-num_queries, 0] (the raw scores play the logits' role).
- ``max_probability``: ``1 - max_k p_k`` of the normalized (tempered) probabilities, in
  [0, 1 - 1/C].
- ``entropy``: ``-sum_k p_k log p_k / log C``, in [0, 1].

With a class map (:mod:`vltseg_ros.config.class_map`), :func:`merge_probabilities` turns the
model's class probabilities into the output classes': each the sum of its members'.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from vltseg_ros.config.anomaly_methods import AnomalyMethod, check_method
from vltseg_ros.config.class_map import UNLABELED, BoundClassMap
from vltseg_ros.errors import NonFiniteOutputError

_EPS = 1e-12
_FROM_PROBABILITIES = ("max_probability", "entropy")


def check_finite(raws: list[Tensor], source: str) -> None:
    """Refuse raw scores with a NaN or an infinity (checked with one float32 sum per map: a
    non-finite element makes it non-finite; only then is every element looked at).

    Args:
        raws: (C, h, w) raw scores of the frames of one call, on one device.
        source: what produced them (the engine), for the message.

    Raises:
        NonFiniteOutputError: naming how many frames and pixels are affected.
    """
    if not raws or bool(
        torch.isfinite(torch.stack([r.sum(dtype=torch.float32) for r in raws])).all()
    ):
        return
    bad = [int((~torch.isfinite(r)).any(0).sum()) for r in raws]
    if not any(bad):
        return  # finite scores whose sum overflowed
    raise NonFiniteOutputError(
        f"{source} produced NaN or infinite class scores at {sum(bad)} pixel(s) of "
        f"{sum(b > 0 for b in bad)} of {len(raws)} frame(s): its weights are broken (NaN "
        "weights, or a model that diverged in training) or reduced precision overflowed; try "
        "fp32, and check the checkpoint"
    )


def anomaly_score(raw: Tensor, method: AnomalyMethod = "rba", temperature: float = 1.0) -> Tensor:
    """The (H, W) float32 anomaly score of one frame, on the scores' device.

    Args:
        raw: (C, H, W) float raw semantic scores (non-negative, not normalized).
        method: see the module docstring.
        temperature: of the probabilities max_probability and entropy are computed from.
    """
    probs = apply_temperature(raw, temperature) if method in _FROM_PROBABILITIES else raw
    if method == "rba":
        score = -raw.tanh().sum(0)
    elif method == "max_logit":
        score = -raw.amax(0)
    elif method == "max_probability":
        score = 1.0 - probs.amax(0)
    elif method == "entropy":
        entropy = -(probs * probs.clamp_min(_EPS).log()).sum(0)
        score = entropy / math.log(max(probs.shape[0], 2))
    else:
        check_method(method)
    return score.float()


def apply_temperature(raw: Tensor, temperature: float) -> Tensor:
    """Class probabilities (C, H, W) from raw scores: ``p_k ∝ s_k ** (1 / temperature)``.

    This is temperature scaling of the logits ``log s_k`` (a softmax of ``log s / T``); at
    ``temperature`` 1 it is ``s / s.sum(0)``, the project's untempered normalization.
    """
    if temperature == 1.0:
        return raw / raw.sum(0, keepdim=True).clamp_min(_EPS)
    return torch.softmax(raw.clamp_min(_EPS).log() / temperature, dim=0)


def merge_probabilities(probs: Tensor, class_map: BoundClassMap) -> tuple[Tensor, Tensor, Tensor]:
    """Output-class probabilities, labels and confidence from the model's, on their device.

    The probability of a merged class is the sum of its members' (a pixel 50 % road and 45 %
    sidewalk is 95 % traversable); the label is the output class of the model's winning class
    (the lookup table on the argmax, as ground truth is mapped); the confidence is the
    probability of that label's class. Where the winning class is unmapped (label 255), the
    confidence is the summed probability of all unmapped model classes.

    Args:
        probs: (C, H, W) float model-class probabilities (summing to 1 per pixel).
        class_map: bound to the model's C classes.

    Returns:
        merged: (K, H, W) float, 0 for an id without members; labels: (H, W) uint8 output
        ids (255 = unmapped); confidence: (H, W) float in [0, 1].
    """
    table = _tables(class_map, probs.device)
    merged = probs.new_zeros((class_map.num_classes, *probs.shape[1:]))
    merged.index_add_(0, table["target"], probs.index_select(0, table["source"]))
    labels = table["lut"][probs.max(0).indices]
    picked = merged.gather(0, labels.clamp(max=class_map.num_classes - 1).long()[None])[0]
    if table["unmapped"].numel():
        rest = probs.index_select(0, table["unmapped"]).sum(0)
        picked = torch.where(labels == UNLABELED, rest, picked)
    return merged, labels, picked


@functools.lru_cache(maxsize=16)
def _tables(class_map: BoundClassMap, device: torch.device) -> dict[str, Tensor]:
    """The map's index tensors on ``device`` (copied once per map and device)."""
    index = torch.from_numpy(class_map.index)
    mapped = (index >= 0).nonzero()[:, 0]
    return {
        "source": mapped.to(device),
        "target": index[mapped].to(device),
        "unmapped": (index < 0).nonzero()[:, 0].to(device),
        "lut": torch.from_numpy(class_map.lut).to(device),
    }
