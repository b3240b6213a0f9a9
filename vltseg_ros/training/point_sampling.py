"""Point sampling of mask logits and target masks, as Mask2Former trains on points.

The losses and the matching cost of Mask2Former are computed on a few thousand points per mask
instead of on whole masks. Points are continuous (x, y) in [0, 1] x [0, 1] over the whole map,
so the same points read a 1/4-resolution prediction and a full-resolution target mask.

``point_sample`` is detectron2's / mmcv's ``point_sample``: bilinear ``grid_sample`` with
``align_corners=False`` and zero padding (points within half a pixel of the border blend with 0).
``uncertainty_points`` is MMDetection's ``get_uncertain_point_coords_with_randomness`` (also
detectron2's ``get_uncertain_point_coords_with_randomness``) for class-agnostic masks.

Randomness: every function takes an optional ``torch.Generator``; without one torch's global
RNG is used, so ``torch.manual_seed`` makes runs reproducible. A generator may live on another
device than the masks (e.g. a CPU generator while training on CUDA): the numbers are drawn on
the generator's device and moved.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vltseg_ros.errors import ConfigError


def point_sample(input: Tensor, coords: Tensor) -> Tensor:
    """Bilinearly read maps at continuous points.

    Args:
        input: (N, C, H, W) float maps.
        coords: (N, P, 2) float points (x, y) in [0, 1] x [0, 1]; (0, 0) is the top-left corner
            of the top-left pixel, (1, 1) the bottom-right corner of the bottom-right pixel.

    Returns:
        (N, C, P) values of ``input`` at the points (``input``'s dtype).

    Raises:
        ValueError: the shapes do not fit.
    """
    if input.dim() != 4 or coords.dim() != 3 or coords.shape[-1] != 2:
        raise ValueError(
            f"point_sample needs input (N, C, H, W) and coords (N, P, 2), got "
            f"{tuple(input.shape)} and {tuple(coords.shape)}"
        )
    if coords.shape[0] != input.shape[0]:
        raise ValueError(
            f"input has {input.shape[0]} maps but coords {coords.shape[0]} point sets"
        )
    grid = (2.0 * coords.to(input.dtype) - 1.0).unsqueeze(2)
    return F.grid_sample(input, grid, mode="bilinear", align_corners=False).squeeze(3)


def random_points(
    num_sets: int,
    num_points: int,
    device: torch.device | str,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Uniform random points.

    Args:
        num_sets: N, the number of point sets.
        num_points: P, points per set.
        device: where the result lives.
        generator: source of randomness; None: torch's global RNG.

    Returns:
        (N, P, 2) float32 points (x, y), uniform in [0, 1).
    """
    draw_on = device if generator is None else generator.device
    points = torch.rand(
        (num_sets, num_points, 2), generator=generator, device=draw_on, dtype=torch.float32
    )
    return points.to(device)


def uncertainty_points(
    mask_logits: Tensor,
    num_points: int,
    oversample_ratio: float,
    importance_ratio: float,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Importance sampling of points where masks are uncertain (PointRend, Mask2Former).

    Draws ``int(num_points * oversample_ratio)`` uniform points per mask, keeps the
    ``int(importance_ratio * num_points)`` of them whose interpolated logit is closest to 0
    (uncertainty = -|logit|, computed on the sampled logit, not on the pixels) and fills up to
    ``num_points`` with fresh uniform points (these come last).

    Args:
        mask_logits: (N, h, w) float mask logits (class agnostic); not differentiated.
        num_points: P >= 1, points per mask.
        oversample_ratio: >= 1.
        importance_ratio: in [0, 1].
        generator: source of randomness; None: torch's global RNG.

    Returns:
        (N, P, 2) float32 points (x, y) in [0, 1], on ``mask_logits``' device.

    Raises:
        ConfigError: ``num_points``, ``oversample_ratio`` or ``importance_ratio`` out of range.
        ValueError: ``mask_logits`` is not 3-D.
    """
    check_sampling(num_points, oversample_ratio, importance_ratio)
    if mask_logits.dim() != 3:
        raise ValueError(f"mask_logits must be (N, h, w), got {tuple(mask_logits.shape)}")
    num_masks, device = mask_logits.shape[0], mask_logits.device
    num_candidates = int(num_points * oversample_ratio)
    num_uncertain = int(importance_ratio * num_points)
    candidates = random_points(num_masks, num_candidates, device, generator)
    with torch.no_grad():
        logits = point_sample(mask_logits.detach().unsqueeze(1).float(), candidates)[:, 0]
        index = torch.topk(-logits.abs(), k=num_uncertain, dim=1).indices
    chosen = torch.gather(candidates, 1, index.unsqueeze(-1).expand(-1, -1, 2))
    if num_uncertain == num_points:
        return chosen
    uniform = random_points(num_masks, num_points - num_uncertain, device, generator)
    return torch.cat([chosen, uniform], dim=1)


def check_sampling(num_points: int, oversample_ratio: float, importance_ratio: float) -> None:
    """Validate point-sampling settings.

    Raises:
        ConfigError: ``num_points`` < 1, ``oversample_ratio`` < 1 or ``importance_ratio``
            outside [0, 1].
    """
    if num_points < 1:
        raise ConfigError(f"num_points must be >= 1, got {num_points}")
    if oversample_ratio < 1.0:
        raise ConfigError(f"oversample_ratio must be >= 1, got {oversample_ratio}")
    if not 0.0 <= importance_ratio <= 1.0:
        raise ConfigError(f"importance_ratio must be in [0, 1], got {importance_ratio}")
